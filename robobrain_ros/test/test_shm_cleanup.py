"""Fast DDS shared-memory files of dead processes are removed from /dev/shm; those of live processes never.

Issue 21: a process ended by SIGKILL or os._exit leaves its Fast DDS segment in /dev/shm (with the large-frame
profile: the whole segment, allocated; 31 of them, 4.3 GB, after one test session). robobrain_ros.harness.shm_cleanup
removes a segment (or port) only when its lock file is not held, which is how Fast DDS itself tells a dead owner;
ros_fixtures runs it at the end of every test session and scripts/test.sh at the end of a run.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robobrain_ros.harness import shm_cleanup

SHM = Path(shm_cleanup.SHM_DIR)
# An rclpy process: prints 'up' once its participant (and so its segment) exists, then waits.
PARTICIPANT = '''
import os, sys, rclpy
rclpy.init()
node = rclpy.create_node('shm_cleanup_probe')
print('up', flush=True)
sys.stdin.readline()                 # until a line comes or stdin closes
if sys.argv[1] == 'exit':
    os._exit(0)                      # no clean shutdown: what a hard exit leaves
node.destroy_node()
rclpy.shutdown()
'''


# ---------------------------------------------------------------- the rule, on files of our own
def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding an exclusive flock on `path`, as a live Fast DDS participant does."""
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import fcntl, os, sys
        fd = os.open({str(path)!r}, os.O_RDONLY)
        fcntl.flock(fd, fcntl.{'LOCK_SH' if path.name.endswith('_sl') else 'LOCK_EX'})
        print('locked', flush=True)
        sys.stdin.read()
        ''')], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'locked'
    return holder


def make(directory: Path, *names: str, size: int = 0) -> None:
    for name in names:
        (directory / name).write_bytes(b'\0' * (size if not name.endswith(('_el', '_sl')) else 0))


def test_files_of_dead_owners_go_those_of_live_owners_stay(tmp_path):
    live_segment, dead_segment = 'fastdds_0123456789abcdef', 'fastdds_fedcba9876543210'
    make(tmp_path, live_segment, f'{live_segment}_el', dead_segment, f'{dead_segment}_el', size=4096)
    make(tmp_path, 'fastdds_port25411', 'fastdds_port25411_el', 'sem.fastdds_port25411_mutex')   # dead port
    make(tmp_path, 'fastdds_port25400', 'fastdds_port25400_sl', 'sem.fastdds_port25400_mutex')   # shared, live
    make(tmp_path, 'fastrtps_00000000000000aa', 'fastrtps_00000000000000aa_el')    # Fast DDS 2 (Humble, Jazzy)
    others = ['psm_1234abcd', 'sem.mp-abc', 'fastdds_00000000000000bb', 'fast_datasharing_01.0f.aa.bb_0.0.1.2']
    make(tmp_path, *others)  # other programs', a segment without a lock file, a data-sharing segment: not ours to judge
    holders = [hold_lock(tmp_path / f'{live_segment}_el'), hold_lock(tmp_path / 'fastdds_port25400_sl')]
    try:
        result = shm_cleanup.clean(str(tmp_path), min_age=0)
    finally:
        for holder in holders:
            holder.communicate('')
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live_segment, f'{live_segment}_el', 'fastdds_port25400', 'fastdds_port25400_sl',
                           'sem.fastdds_port25400_mutex', *others])
    assert sorted(result.removed) == sorted([
        dead_segment, f'{dead_segment}_el', 'fastdds_port25411', 'fastdds_port25411_el',
        'sem.fastdds_port25411_mutex', 'fastrtps_00000000000000aa', 'fastrtps_00000000000000aa_el'])
    assert sorted(result.kept) == ['fastdds_0123456789abcdef', 'fastdds_port25400']
    assert result.freed_bytes >= 4096


def test_a_lock_file_younger_than_min_age_is_left_alone(tmp_path):
    make(tmp_path, 'fastdds_0123456789abcdef', 'fastdds_0123456789abcdef_el')
    assert shm_cleanup.clean(str(tmp_path), min_age=60).removed == []
    assert shm_cleanup.clean(str(tmp_path), min_age=0).removed != []


def test_dry_run_removes_nothing(tmp_path):
    make(tmp_path, 'fastdds_0123456789abcdef', 'fastdds_0123456789abcdef_el')
    result = shm_cleanup.clean(str(tmp_path), min_age=0, dry_run=True)
    assert len(result.removed) == 2 and len(list(tmp_path.iterdir())) == 2


def test_the_cleaner_holds_the_lock_while_it_removes(tmp_path, monkeypatch):
    """A segment is removed while the cleaner holds its lock: an owner taking the name meanwhile fails to lock it."""
    make(tmp_path, 'fastdds_0123456789abcdef', 'fastdds_0123456789abcdef_el')
    seen = []
    real_unlink = os.unlink

    def unlink(path):
        if path.endswith('_el'):
            fd = os.open(path, os.O_RDONLY)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append(path)
            finally:
                os.close(fd)
        real_unlink(path)

    monkeypatch.setattr(shm_cleanup.os, 'unlink', unlink)
    shm_cleanup.clean(str(tmp_path), min_age=0)
    assert seen and not list(tmp_path.iterdir())


def test_script_runs_without_the_package(tmp_path):
    """scripts/test.sh runs the file with whatever python3 is on PATH (no venv, no ROS)."""
    make(tmp_path, 'fastdds_0123456789abcdef', 'fastdds_0123456789abcdef_el')
    out = subprocess.run([sys.executable, '-I', shm_cleanup.__file__, '--dir', str(tmp_path), '--min-age', '0'],
                         capture_output=True, text=True, timeout=30, check=True)
    assert '1 Fast DDS segments/ports of dead processes removed' in out.stdout, out.stdout + out.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- real Fast DDS participants
def participant_env(profile: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')}
    if profile:
        xml = str(Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_frames.xml')
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = env['FASTRTPS_DEFAULT_PROFILES_FILE'] = xml
    return env


def segments_locked_by(pid: int) -> list[Path]:
    """The Fast DDS segments (and their lock files) a process owns: those whose lock file it holds open."""
    found = []
    for fd in Path(f'/proc/{pid}/fd').iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        match = shm_cleanup.LOCK_FILE.match(target.name)
        if target.parent == SHM and match and '_port' not in match['name']:
            found += [target, SHM / match['name']]
    return found


def start_participant(how: str, profile: bool = False) -> tuple[subprocess.Popen, list[Path]]:
    """A participant process ('live': a clean shutdown when stdin closes; 'exit': os._exit) and its segments."""
    process = subprocess.Popen([sys.executable, '-c', PARTICIPANT, how], env=participant_env(profile),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if line != 'up':
        process.kill()
        pytest.fail(f'participant did not start: {line} {process.communicate()[1][-2000:]}')
    return process, segments_locked_by(process.pid)


def test_segment_of_a_killed_process_goes_that_of_a_live_process_stays():
    live, live_files = start_participant('live')
    killed, killed_files = start_participant('live', profile=True)     # the large-frame profile's segment
    try:
        assert live_files and killed_files
        assert all(path.exists() for path in live_files + killed_files)
        big = max(path.stat().st_blocks * 512 for path in killed_files)
        assert big >= 64 * 2**20, "the profile's segment is allocated whole at start"
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert all(path.exists() for path in killed_files), "Fast DDS leaves a SIGKILLed process's segment"
        result = shm_cleanup.clean(min_age=0)
        assert not any(path.exists() for path in killed_files), result
        assert all(path.exists() for path in live_files), f"a live process's segment was removed: {result}"
        assert result.freed_bytes >= big
    finally:
        for process in (live, killed):
            if process.poll() is None:
                process.communicate('', timeout=30)
    assert live.returncode == 0, live.stderr
    assert not any(path.exists() for path in live_files), 'a clean exit removes its own segment'


def test_segment_of_a_process_ended_by_os_exit_is_removed():
    process, owned = start_participant('exit')
    process.communicate('go\n', timeout=30)
    assert owned and all(path.exists() for path in owned), 'os._exit leaves the segment'
    shm_cleanup.clean(min_age=0)
    assert not any(path.exists() for path in owned)


# ---------------------------------------------------------------- the test session's own cleanup
def test_a_test_session_removes_what_its_killed_processes_left(tmp_path):
    """ros_fixtures' pytest_sessionfinish: a session whose test SIGKILLs a ROS process leaves no segment of it."""
    record = tmp_path / 'segments.txt'
    (tmp_path / 'test_inner.py').write_text(textwrap.dedent(f'''
        import os, signal, subprocess, sys, time
        from pathlib import Path
        from robobrain_ros.harness.shm_cleanup import LOCK_FILE

        def test_kill_a_participant():
            process = subprocess.Popen([sys.executable, '-c', {PARTICIPANT!r}, 'live'], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
            assert process.stdout.readline().strip() == 'up'
            owned = []
            for fd in Path(f'/proc/{{process.pid}}/fd').iterdir():
                target = os.readlink(fd)
                match = LOCK_FILE.match(os.path.basename(target))
                if target.startswith('/dev/shm/') and match and '_port' not in match['name']:
                    owned += [target, '/dev/shm/' + match['name']]
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            time.sleep(1.5)    # older than the cleaner's min_age
            assert owned and all(os.path.exists(path) for path in owned)
            Path({str(record)!r}).write_text('\\n'.join(owned))
        '''))
    env = participant_env(False)
    # ros_fixtures.py is a module of the test folder (not of the package): on the inner session's path.
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get('PYTHONPATH', '')]))
    inner = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'ros_fixtures',
                            str(tmp_path / 'test_inner.py')],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert inner.returncode == 0, inner.stdout + inner.stderr
    owned = record.read_text().split()
    assert owned and not any(os.path.exists(path) for path in owned), owned
    assert 'shm cleanup: ' in inner.stdout, inner.stdout
