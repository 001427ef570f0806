"""The serve CLI as a subprocess: dry-run output, config errors, refusals, a real start."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from test_serve_command import SEED_32B_YAML

from robobrain_ros.harness import tiny_server as vllm_fixture
from robobrain_ros.serve.supervisor import server_cpus

PKG_PARENT = Path(vllm_fixture.__file__).resolve().parents[2]
CONFIG_DIR = PKG_PARENT / 'config' / 'serve'


def vllm_python():
    py = vllm_fixture.vllm_python()
    if not os.path.exists(py):
        pytest.fail(f'vLLM interpreter not found: {py} (set ROBOBRAIN_VLLM_PYTHON)', pytrace=False)
    return py


def cli_env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(PKG_PARENT), env.get('PYTHONPATH')) if p)
    for k in ('USE_FLAGGEMS', 'VLLM_PLUGINS', 'ROBOBRAIN_PLUGIN_PROBE', 'ROBOBRAIN_API_KEY',
              'ROBOBRAIN_FLAGGEMS_EXCLUDE', 'ROBOBRAIN_FLAGGEMS_PLATFORM'):
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, '-m', 'robobrain_ros.serve', *args],
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def seed_file(tmp_path):
    p = tmp_path / '32b.yaml'
    p.write_text(SEED_32B_YAML)
    return p


def test_dry_run_seed_prints_exact_command_and_env(seed_file):
    r = run_cli('--config', str(seed_file), '--platform', 'ascend',
                '--python', '/opt/py/bin/python3', '--dry-run')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == ('/opt/py/bin/python3 -m vllm.entrypoints.cli.main serve '
                         '/data/weights/RoboBrain2.0-32B/ --served-model-name '
                         'RoboBrain2.0-32B-ascend-flagos --tensor-parallel-size 8 '
                         '--gpu-memory-utilization 0.8 --host 10.1.15.113 --port 9010 '
                         '--block-size 128 --enforce-eager --no-enable-prefix-caching '
                         '--no-enable-chunked-prefill')
    assert '# platform: ascend' in r.stdout
    assert '# CPUs: all (reserved_cpus: 0)' in r.stdout
    # The model path and the interpreter are for another host: warnings only.
    assert 'RoboBrain2.0-32B/ does not exist' in r.stderr
    assert '/opt/py/bin/python3' in r.stderr


def test_dry_run_shipped_ascend_config_env_and_plugins():
    r = run_cli('--config', 'robobrain2_32b_ascend', '--python', '/nonexistent/python', '--dry-run',
                env=cli_env(VLLM_PLUGINS='ascend'))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for line in ('VLLM_USE_V1=1', 'USE_FLAGGEMS=true',
                 'PYTORCH_NPU_ALLOC_CONF=max_split_size_mb:256',
                 'VLLM_PLUGINS=ascend,robobrain_flaggems'):
        assert line in out.splitlines()
    assert "VLLM_PLUGINS='ascend' would skip" in r.stderr
    assert out.splitlines()[-1].endswith(
        '--tensor-parallel-size 8 --gpu-memory-utilization 0.8 --host 127.0.0.1 --port 9010 '
        '--block-size 128 --enforce-eager --no-enable-prefix-caching --no-enable-chunked-prefill')


def test_dry_run_all_shipped_configs_validate_against_vllm():
    py = vllm_python()
    for name in ('robobrain2_32b_ascend', 'robobrain2_7b_cuda', 'cpu_smoke'):
        r = run_cli('--config', str(CONFIG_DIR / f'{name}.yaml'), '--python', py, '--dry-run')
        assert r.returncode == 0, (name, r.stderr)
        assert "argument parser" in r.stdout


def test_api_key_is_passed_and_masked(seed_file):
    r = run_cli('--config', str(seed_file), '--platform', 'cuda', '--dry-run',
                env=cli_env(ROBOBRAIN_API_KEY='s3cret'))
    assert r.returncode == 0
    assert 'VLLM_API_KEY=***' in r.stdout and 's3cret' not in r.stdout


def test_unknown_key_names_closest_from_vllm_parser(tmp_path):
    cfg = tmp_path / 'typo.yaml'
    cfg.write_text(SEED_32B_YAML.replace('tensor_parallel_size', 'tensor_paralel_size'))
    r = run_cli('--config', str(cfg), '--python', vllm_python(), '--platform', 'cpu', '--dry-run')
    assert r.returncode == 2
    assert "unknown vLLM option 'tensor_paralel_size'" in r.stderr
    assert 'tensor_parallel_size' in r.stderr
    assert "argument parser" in r.stderr  # vLLM's own list was used


def test_wrong_type_is_an_error(tmp_path):
    cfg = tmp_path / 'type.yaml'
    cfg.write_text(SEED_32B_YAML.replace('enforce_eager: true', 'enforce_eager: "yes"'))
    r = run_cli('--config', str(cfg), '--platform', 'cpu', '--dry-run')
    assert r.returncode == 2
    assert 'engine_args.enforce_eager must be true or false' in r.stderr


def test_missing_config_file(tmp_path):
    r = run_cli('--config', str(tmp_path / 'nope.yaml'), '--dry-run')
    assert r.returncode == 2 and 'nope.yaml' in r.stderr


def test_missing_model_path_is_an_error_on_real_start(tmp_path):
    r = run_cli('--config', 'cpu_smoke', '--python', vllm_python(),
                '--model', str(tmp_path / 'no_model'))
    assert r.returncode == 2
    assert f'model path {tmp_path / "no_model"} does not exist' in r.stderr


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli('--config', 'cpu_smoke', '--python', vllm_python(), '--model', str(tmp_path),
                    '--port', str(port))
    assert r.returncode == 1
    assert f'port {port} on 127.0.0.1 is already in use' in r.stderr


def test_use_flaggems_without_flag_gems_refuses(tmp_path):
    # cpu_smoke sets USE_FLAGGEMS=false in its env; a config that turns it on:
    cfg = tmp_path / 'gems.yaml'
    cfg.write_text((CONFIG_DIR / 'cpu_smoke.yaml').read_text().replace(
        'USE_FLAGGEMS: false', 'USE_FLAGGEMS: true'))
    r = run_cli('--config', str(cfg), '--python', vllm_python(), '--model', str(tmp_path))
    assert r.returncode != 0
    assert 'USE_FLAGGEMS is true' in r.stderr and 'flag_gems' in r.stderr


def _descendants(pid):
    try:
        return {(p.pid, p.create_time()) for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def _alive(procs):
    left = []
    for pid, ctime in procs:
        try:
            p = psutil.Process(pid)
            if p.create_time() == ctime and p.status() != psutil.STATUS_ZOMBIE:
                left.append((pid, p.name()))
        except psutil.Error:
            pass
    return left


def test_real_start_via_entry_point_with_plugin_probe_then_sigint(tmp_path):
    """One real start proves: python -m robobrain_ros.serve works end to end, the plugin is
    discovered and called inside vLLM's processes, the API key reaches vLLM (it refuses requests
    without it) but no command line, printed line or log, and SIGINT stops everything."""
    key = 'rb-real-start-key-93b1'
    auth = {'Authorization': f'Bearer {key}'}
    py = vllm_python()
    model_dir = vllm_fixture.build_tiny_model(py)
    probe = tmp_path / 'plugin_probe.jsonl'
    ready = tmp_path / 'ready.json'
    log = tmp_path / 'server.log'
    from robobrain_ros.serve.supervisor import free_port
    port = free_port()
    err = open(tmp_path / 'cli.stderr', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'robobrain_ros.serve',
         '--config', str(CONFIG_DIR / 'cpu_smoke.yaml'), '--python', py, '--model', str(model_dir), '--port', str(port),
         '--log-file', str(log), '--ready-file', str(ready)],
        env=cli_env(ROBOBRAIN_PLUGIN_PROBE=probe, ROBOBRAIN_API_KEY=key), stdout=subprocess.DEVNULL, stderr=err)
    seen = set()
    try:
        deadline = time.monotonic() + 600
        while not ready.exists():
            seen |= _descendants(proc.pid)
            assert proc.poll() is None, ((tmp_path / 'cli.stderr').read_text()
                                         + (log.read_text()[-3000:] if log.exists() else ''))
            assert time.monotonic() < deadline, 'server not ready in 600 s; log: ' + str(log)
            time.sleep(1)
        seen |= _descendants(proc.pid)
        info = json.loads(ready.read_text())
        assert info['base_url'] == f'http://127.0.0.1:{port}/v1'
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(info['base_url'] + '/models', timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(info['base_url'] + '/models', headers=auth),
                                    timeout=10) as r:
            assert [m['id'] for m in json.loads(r.read())['data']] == ['robobrain-tiny']
        body = {'model': 'robobrain-tiny', 'max_tokens': 8, 'temperature': 0,
                'messages': [{'role': 'user', 'content': 'Point at the cup.'}],
                'structured_outputs': {'choice': ['yes', 'no']}}
        req = urllib.request.Request(info['base_url'] + '/chat/completions',
                                     data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json', **auth})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert json.loads(r.read())['choices'][0]['message']['content'] in ('yes', 'no')

        records = [json.loads(line) for line in probe.read_text().splitlines()]
        pids = {r['pid'] for r in records}
        assert info['pid'] in pids                       # the API server process
        engine = [r for r in records if r['pid'] != info['pid']]
        assert engine, records                           # ... and the engine core process
        assert all(r['pid'] in {p for p, _ in seen} for r in records)
        assert any('EngineCore' in r['name'] or 'VLLM' in r['name'] for r in engine), engine
        # cpu_smoke.yaml keeps one CPU for the robot: the server and its engine run on the others.
        expected = server_cpus(1, os.sched_getaffinity(0))[0] or os.sched_getaffinity(0)
        assert {pid: os.sched_getaffinity(pid) for pid in pids} == {pid: expected for pid in pids}
        running = [psutil.Process(pid) for pid in {proc.pid} | {p for p, _ in _descendants(proc.pid)}]
        assert len(running) >= 3 and not [p.pid for p in running if key in ' '.join(p.cmdline())], \
            'the API key is on a command line'
    finally:
        seen |= _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            err.close()
    stderr = (tmp_path / 'cli.stderr').read_text()
    assert rc == 0, stderr
    assert key not in stderr and key not in log.read_text()
    assert 'got SIGINT; stopping the server' in stderr
    time.sleep(0.5)
    assert _alive(seen) == [], ('left behind', _alive(seen))
    assert not ready.exists()


def failing_vllm_python(tmp_path: Path) -> Path:
    """An interpreter stand-in whose probe reports vLLM and whose server exits at once (a failed start)."""
    script = tmp_path / 'python'
    script.write_text('#!/bin/sh\n'
                      'case "$2" in *ROBOBRAIN_PROBE*) echo \'ROBOBRAIN_PROBE {"vllm": true}\'; exit 0;; esac\n'
                      'exit 3\n')
    script.chmod(0o755)
    return script


def test_a_failed_start_leaves_a_ready_file_it_did_not_write(tmp_path):
    ready = tmp_path / 'ready.json'
    ready.write_text('{"base_url": "from another run"}')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    r = run_cli('--config', 'cpu_smoke', '--platform', 'cpu', '--python', str(failing_vllm_python(tmp_path)),
                '--model', str(tmp_path), '--port', str(port), '--ready-file', str(ready), '--timeout', '60')
    assert r.returncode == 1 and 'exited with code 3 before it was ready' in r.stderr, r.stderr
    assert ready.read_text() == '{"base_url": "from another run"}'


FLAGGEMS_CUDA_YAML = '''
platform: cuda
env:
  USE_FLAGGEMS: "true"
flaggems_exclude: [default, -mm, -mm_out, index_select]
serve:
  - serve_id: vllm_model
    engine: vllm
    engine_args:
      model: /data/weights/RoboBrain2.0-7B
'''


def dry_run_of(tmp_path, config_text: str, **env):
    config = tmp_path / 'fg.yaml'
    config.write_text(config_text)
    return run_cli('--config', str(config), '--python', '/nonexistent/python', '--dry-run', env=cli_env(**env))


def test_dry_run_shows_the_flaggems_exclusions_it_hands_the_plugin(tmp_path):
    r = dry_run_of(tmp_path, FLAGGEMS_CUDA_YAML, ROBOBRAIN_FLAGGEMS_PLATFORM='cuda-hopper')
    assert r.returncode == 0, r.stderr
    assert 'ROBOBRAIN_FLAGGEMS_EXCLUDE=default,-mm,-mm_out,index_select' in r.stdout.splitlines()
    summary = next(line for line in r.stdout.splitlines() if line.startswith('# FlagGems on cuda-hopper: '))
    assert '(the cuda-hopper default + index_select - mm,mm_out)' in summary
    ops = summary.split('): ', 1)[1].split(', ')
    assert 'mul' in ops and 'index_select' in ops and 'mm' not in ops and 'addmm' in ops


def test_the_environment_overrides_the_configs_flaggems_exclusions(tmp_path):
    r = dry_run_of(tmp_path, FLAGGEMS_CUDA_YAML, ROBOBRAIN_FLAGGEMS_EXCLUDE='none')
    assert r.returncode == 0, r.stderr
    assert 'ROBOBRAIN_FLAGGEMS_EXCLUDE=none' in r.stdout.splitlines()
    assert "ROBOBRAIN_FLAGGEMS_EXCLUDE='none' from the environment overrides the config" in r.stderr
    assert '# FlagGems on cuda: no ops left to PyTorch' in r.stdout


def test_a_bad_flaggems_exclusion_spec_is_a_config_error(tmp_path):
    r = dry_run_of(tmp_path, FLAGGEMS_CUDA_YAML.replace('[default, -mm, -mm_out, index_select]', '[default, "-"]'))
    assert r.returncode == 2
    assert 'flaggems_exclude' in r.stderr and 'lone "-"' in r.stderr


@pytest.mark.parametrize('tp, dp', [('1', '1'), ('2', '1'), ('4', '2'), ('8', '1')])
def test_shipped_32b_cuda_config_shards_as_asked(tp, dp):
    """The seed's 32B entry on CUDA: tensor and data parallelism from the environment (issue 15)."""
    r = run_cli('--config', 'robobrain2_32b_cuda', '--python', '/nonexistent/python', '--dry-run',
                env=cli_env(ROBOBRAIN_TP=tp, ROBOBRAIN_DP=dp, USE_FLAGGEMS='true'))
    assert r.returncode == 0, r.stderr
    command = r.stdout.splitlines()[-1]
    assert f' --tensor-parallel-size {tp} --data-parallel-size {dp} ' in command
    assert ' --served-model-name RoboBrain2.0-32B ' in command and ' --max-num-seqs 32 ' in command
    assert '# FlagGems on cuda: 12 ops left to PyTorch (the cuda default)' in r.stdout
