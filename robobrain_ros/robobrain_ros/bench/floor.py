"""The floor: what a bare rclpy action round trip costs between two processes on this machine.

The node's overhead is reported as this floor plus what the node adds. Nothing of the node is in it: per executor
kind (single: SingleThreadedExecutor, multi: MultiThreadedExecutor with its default threads, events: rclpy's
experimental EventsExecutor) a server process and a client process (bench/floor_server.py) run side by side, both
spinning that kind. The server is a plain Node whose ActionServer for Point accepts every goal and succeeds it at
once with an empty result; the client times each goal from send_goal_async to the result (and to the goal's
acceptance), waiting with executor.spin_until_future_complete(future, timeout_sec=...).

Cells: executor x goal (empty: instruction 'x' only; image: a 1280x720 rgb8 sensor_msgs/Image, 2,764,800 bytes of
data, in goal.image) x pacing (idle: a 20 ms pause between goals, the client spinning through it; back_to_back: the
next goal sent as soon as the result arrived). Each round sends a block of goals to every cell, the cells in a
shuffled (seeded) order, so slow drifts of the machine hit every cell alike; the first block of a cell starts with
a few warm-up goals, not recorded.

Kept goals: an rclpy action server keeps each finished goal for its result_timeout and lists it in every status
message it publishes, which every client decodes in Python. The floor's servers keep them 1 s, and each block
starts once the server has dropped those of the block before, so a goal meets at most the goals of its own block
(the mean is reported per cell). Not less than 1 s: a result must outlive the time from the goal's end to its
client's result request, which the slowest client here (Jazzy's MultiThreadedExecutor) stretches to hundreds of
ms, and back to back at ~3 ms a goal even 0.1 s would keep ~30, near a block's mean. What each kept goal costs is
measured apart (`kept_goals`): the single executor, back to back, a server keeping its goals 300 s, round trips
after 0, 200, 500 and 1000 finished goals, and a linear fit of their medians.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from robobrain_ros.bench.common import load, machine, summary
from robobrain_ros.bench.floor_server import (
    ANSWER,
    EXECUTORS,
    GOAL_TIMEOUT,
    IDLE_PAUSE,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    PACINGS,
    PAYLOADS,
    empty_goal,
    image_goal,
)

RESULT_TIMEOUT = 1           # [s] how long the floor's servers keep a finished goal (see the module docstring)
KEPT_RESULT_TIMEOUT = 300    # [s] longer than the kept-goals measurement: every finished goal stays
KEPT_LEVELS = (0, 200, 500, 1000)
KEPT_GOALS = 50              # round trips measured at each level
WARMUP = 3                   # goals before a cell's first block, not recorded
SERIALISE_REPEATS = 20
SEED = 0
START_TIMEOUT = 90.0         # [s] for a client to find its server and get a probe goal through
# [s] the parent's own limit per goal of a request, on top of a fixed margin: a client reports a goal that takes
# GOAL_TIMEOUT itself, so this only ends a client that hangs outright.
PARENT_SECONDS_PER_GOAL = 1.0
PARENT_MARGIN = 2 * GOAL_TIMEOUT + 30.0
# The PyPI wheels set no ROS_DISTRO; rclpy's major version tells the distribution.
DISTRO_OF_RCLPY_MAJOR = {3: 'humble', 7: 'jazzy', 9: 'kilted'}

EXECUTOR_NAMES = {'single': 'SingleThreadedExecutor', 'multi': 'MultiThreadedExecutor',
                  'events': 'EventsExecutor (experimental)'}
PAYLOAD_NAMES = {'empty': "empty (instruction 'x')", 'image': f'{IMAGE_WIDTH}x{IMAGE_HEIGHT} rgb8 image'}
PACING_NAMES = {'idle': f'idle ({IDLE_PAUSE * 1e3:.0f} ms between goals)', 'back_to_back': 'back to back'}
JSON_NAME = 'floor.json'


class ChildFailed(RuntimeError):
    """A floor_server process died, hung or never came up."""


class Child:
    """One floor_server process in a session of its own; its stderr (and a server's stdout) go to a log file."""

    def __init__(self, role: str, executor: str, action: str, result_timeout: int, log_dir: Path) -> None:
        import robobrain_ros
        self.name = f'{action} {role}'
        self.log_path = log_dir / f'{action}_{role}.log'
        # The child imports this very package, wherever it comes from (a source tree on PYTHONPATH, colcon's).
        package_root = str(Path(robobrain_ros.__file__).resolve().parents[1])
        env = {**os.environ, 'PYTHONUNBUFFERED': '1',
               'PYTHONPATH': os.pathsep.join(p for p in (package_root, os.environ.get('PYTHONPATH', '')) if p)}
        command = [sys.executable, '-m', 'robobrain_ros.bench.floor_server', role, '--executor', executor,
                   '--action', action, '--result-timeout', str(result_timeout)]
        is_client = role == 'client'
        with open(self.log_path, 'w') as log:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.PIPE if is_client else subprocess.DEVNULL,
                stdout=subprocess.PIPE if is_client else log, stderr=log, text=True, start_new_session=True)
        self._answers: queue.Queue[str | None] = queue.Queue()
        if is_client:
            threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        for line in self.process.stdout:
            if line.startswith(ANSWER):   # anything else a library prints there is not an answer
                self._answers.put(line[len(ANSWER):])
        self._answers.put(None)

    def answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise ChildFailed(f'{self.name}: no answer in {timeout:.0f} s\nits log ends:\n{self.log_tail()}') from None
        if line is None:
            self.process.wait(5.0)
            raise ChildFailed(f'{self.name} exited with code {self.process.returncode}\nits log ends:\n'
                              f'{self.log_tail()}')
        return json.loads(line)

    def request(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            self.process.stdin.write(json.dumps(command) + '\n')
            self.process.stdin.flush()
        except OSError as error:
            raise ChildFailed(f'{self.name} is gone ({error})\nits log ends:\n{self.log_tail()}') from None
        return self.answer(timeout)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ''

    def stop(self, timeout: float = 10.0) -> None:
        """A client is asked to quit, a server gets SIGTERM (both then destroy their node and shut rclpy down);
        SIGKILL of the whole session when that takes longer."""
        if self.process.poll() is None:
            try:
                if self.process.stdin is not None:
                    self.process.stdin.write('{"cmd": "quit"}\n')
                    self.process.stdin.close()
                else:
                    self.process.terminate()
                self.process.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5.0)


class Pair:
    """A server and its client, both spinning `executor`, on an action of their own."""

    def __init__(self, executor: str, action: str, result_timeout: int, log_dir: Path) -> None:
        self.executor = executor
        self.server = Child('server', executor, action, result_timeout, log_dir)
        self.client = Child('client', executor, action, result_timeout, log_dir)

    def wait_ready(self) -> None:
        reply = self.client.answer(START_TIMEOUT)
        if 'error' in reply:
            raise ChildFailed(f"{self.executor} client: {reply['error']}\nthe server's log ends:\n"
                              f'{self.server.log_tail()}')

    def request(self, command: dict[str, Any], goals: int) -> dict[str, Any]:
        return self.client.request(command, PARENT_MARGIN + goals * PARENT_SECONDS_PER_GOAL)

    def stop(self) -> None:
        self.client.stop()
        self.server.stop()


def rclpy_version() -> str:
    """rclpy's version from its package.xml in the ament index (ROS installs and the PyPI wheels both have it)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        root = ElementTree.parse(f"{get_package_share_directory('rclpy')}/package.xml").getroot()
        return (root.findtext('version') or '').strip() or 'unknown'
    except Exception:   # no ament index, no rclpy in it, unreadable XML: unknown
        return 'unknown'


def wheel_version() -> str | None:
    """The version of the installed ros-rclpy wheel, where rclpy came from PyPI (it may differ from package.xml's)."""
    try:
        return metadata.version('ros-rclpy')
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    rclpy = rclpy_version()
    major = re.match(r'\d+', rclpy)
    distro = os.environ.get('ROS_DISTRO', '')
    return {'rclpy': rclpy, 'rclpy_wheel': wheel_version(),
            'ros_distro': distro or DISTRO_OF_RCLPY_MAJOR.get(int(major[0]) if major else -1, ''),
            'ros_distro_from': 'ROS_DISTRO' if distro else "rclpy's version (ROS_DISTRO unset)",
            'python': platform.python_version(), 'rmw': os.environ.get('RMW_IMPLEMENTATION', '')}


def serialisation_cost(repeats: int = SERIALISE_REPEATS) -> dict[str, Any]:
    """serialize_message of each goal, ms: part of what a goal's send costs, shown apart."""
    from rclpy.serialization import serialize_message
    out = {}
    for name, goal in (('image', image_goal()), ('empty', empty_goal())):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            data = serialize_message(goal)
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = {'bytes': len(data), **summary(times)}
    return out


def cell_key(executor: str, payload: str, pacing: str) -> str:
    return f'{executor}/{payload}/{pacing}'


def start_pairs(executors: tuple[str, ...], result_timeout: int, log_dir: Path) -> tuple[dict[str, Pair], dict]:
    """A started, connected pair per executor, and the error of each one that did not come up."""
    pairs = {kind: Pair(kind, f'floor_{kind}', result_timeout, log_dir) for kind in executors}
    failed = {}
    for kind in list(pairs):
        try:
            pairs[kind].wait_ready()
        except ChildFailed as error:
            failed[kind] = str(error)
            pairs.pop(kind).stop()
    return pairs, failed


def measure_cells(pairs: dict[str, Pair], cells: dict[str, dict], repetitions: int, block: int, warmup: int,
                  seed: int, log) -> None:
    """Fill each cell's samples, round by round."""
    rng, sent = random.Random(seed), 0
    while sent < repetitions:
        goals = min(block, repetitions - sent)
        order = [key for key, cell in cells.items() if 'error' not in cell]
        rng.shuffle(order)
        for key in order:
            cell = cells[key]
            if 'error' in cell:   # its pair failed earlier in this round
                continue
            command = {'cmd': 'block', 'payload': cell['payload'], 'pacing': cell['pacing'], 'goals': goals,
                       'warmup': 0 if cell['samples']['round_trip_ms'] else warmup}
            try:
                reply = pairs[cell['executor']].request(command, goals + command['warmup'])
            except ChildFailed as error:   # the pair is unusable: every cell of its executor ends here
                pairs.pop(cell['executor']).stop()
                for other in cells.values():
                    if other['executor'] == cell['executor']:
                        other['error'] = str(error)
                continue
            if 'error' in reply:
                cell['error'] = reply['error']
                continue
            for name, values in reply.items():
                cell['samples'][name] += [round(v, 4) for v in values]
        sent += goals
        log(f'floor: {sent} of {repetitions} goals per cell')


def summarise_cell(cell: dict[str, Any]) -> dict[str, Any]:
    samples = cell['samples']
    # No samples (a cell whose pair failed first): no statistics, not summary()'s NaN, which JSON lacks.
    stats = {name: summary(samples[name]) if samples[name] else {'n': 0} for name in ('round_trip_ms', 'accepted_ms')}
    return {**cell, **stats, 'kept_mean': statistics.fmean(samples['kept']) if samples['kept'] else None}


def measure_kept(levels: tuple[int, ...], goals: int, log_dir: Path) -> dict[str, Any]:
    """Round trips after each level of kept goals, and the fit."""
    results: dict[str, Any] = {'executor': 'single', 'result_timeout_s': KEPT_RESULT_TIMEOUT, 'goals': goals,
                               'levels': {}}
    pair = Pair('single', 'floor_kept', KEPT_RESULT_TIMEOUT, log_dir)
    try:
        pair.wait_ready()
        reply = pair.request({'cmd': 'kept', 'levels': list(levels), 'goals': goals}, max(levels) + len(levels) * goals)
    except ChildFailed as error:
        reply = {'error': str(error)}
    finally:
        pair.stop()
    if 'error' in reply:
        return {**results, 'error': reply['error']}
    for level, measured in reply['levels'].items():
        samples = [round(v, 4) for v in measured['round_trip_ms']]
        results['levels'][level] = {'kept': measured['kept'], 'round_trip_ms': summary(samples), 'samples': samples}
    xs = [level['kept'] for level in results['levels'].values()]
    if len(set(xs)) > 1:
        fit = statistics.linear_regression(xs, [level['round_trip_ms']['median']
                                                for level in results['levels'].values()])
        results['us_per_kept_goal'], results['fit_intercept_ms'] = fit.slope * 1e3, fit.intercept
    return results


def run(repetitions: int, block: int = 50, log=print, executors: tuple[str, ...] = EXECUTORS,
        payloads: tuple[str, ...] = PAYLOADS, pacings: tuple[str, ...] = PACINGS,
        kept_levels: tuple[int, ...] = KEPT_LEVELS, kept_goals: int = KEPT_GOALS, warmup: int = WARMUP,
        seed: int = SEED) -> dict[str, Any]:
    """The floor: `repetitions` round trips per cell, in blocks of `block`, then the kept-goals measurement."""
    from robobrain_ros.harness.shm_cleanup import clean
    started = time.perf_counter()
    results: dict[str, Any] = {
        **versions(), 'machine': machine(), 'repetitions': repetitions, 'block': block, 'warmup': warmup,
        'seed': seed, 'result_timeout_s': RESULT_TIMEOUT, 'idle_pause_ms': IDLE_PAUSE * 1e3,
        'client_wait': f'executor.spin_until_future_complete(future, timeout_sec={GOAL_TIMEOUT:g})',
        'image': {'width': IMAGE_WIDTH, 'height': IMAGE_HEIGHT, 'encoding': 'rgb8',
                  'bytes': 3 * IMAGE_WIDTH * IMAGE_HEIGHT},
        'serialise_goal_ms': serialisation_cost(), 'load_at_start': load()}
    cells = {cell_key(e, p, q): {'executor': e, 'payload': p, 'pacing': q,
                                 'samples': {'round_trip_ms': [], 'accepted_ms': [], 'kept': []}}
             for e in executors for p in payloads for q in pacings}
    with tempfile.TemporaryDirectory(prefix='robobrain-bench-floor-') as logs:   # an error quotes its log's end
        log(f'floor: starting a server and a client per executor ({", ".join(executors)})')
        pairs, failed = start_pairs(executors, RESULT_TIMEOUT, Path(logs))
        try:
            for cell in cells.values():
                if cell['executor'] in failed:
                    cell['error'] = failed[cell['executor']]
            measure_cells(pairs, cells, repetitions, block, warmup, seed, log)
        finally:
            for pair in pairs.values():
                pair.stop()
        log('floor: kept goals')
        results['kept_goals'] = measure_kept(kept_levels, kept_goals, Path(logs))
    clean()   # a process killed above left its Fast DDS segment (64 MiB) in /dev/shm: only dead ones' go
    results['cells'] = {key: summarise_cell(cell) for key, cell in cells.items()}
    results['load_at_end'] = load()
    results['seconds'] = time.perf_counter() - started
    return results


# ---------------------------------------------------------------- report
def _ms(value: float) -> str:
    return f'{value:.2f}'


def first_line(error: str) -> str:
    """An error's first line, fit for a table cell (the rest, a log's end, is in floor.json)."""
    return error.splitlines()[0].replace('|', '\\|')


def ordered_cells(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells in the order of EXECUTORS, PAYLOADS, PACINGS (floor.json has its keys sorted)."""
    return sorted(results['cells'].values(), key=lambda c: (EXECUTORS.index(c['executor']),
                                                             PAYLOADS.index(c['payload']), PACINGS.index(c['pacing'])))


def section(results: dict[str, Any]) -> str:
    """'### The floor: ...': a markdown section with a table row per cell, then serialisation and kept goals."""
    lines = ["### The floor: rclpy's own action round trip", '',
             'What a bare rclpy action round trip costs between two processes on this machine, nothing of the node '
             'in it: a plain Node whose ActionServer for Point succeeds every goal at once with an empty result, '
             'and an ActionClient in another process, both spinning the executor named; the client waits with '
             f"`{results['client_wait']}`. The node's overhead is this floor plus what the node adds.", '',
             '| executor | goal | pacing | round trip: median ms | p95 ms | mean ms | goal accepted: median ms '
             '| finished goals kept (mean) | n |', '|---|---|---|---|---|---|---|---|---|']
    for cell in ordered_cells(results):
        names = (EXECUTOR_NAMES[cell['executor']], PAYLOAD_NAMES[cell['payload']], PACING_NAMES[cell['pacing']])
        trip, accepted = cell['round_trip_ms'], cell['accepted_ms']
        if 'error' in cell:
            row = f"error: {first_line(cell['error'])} | | | | | {trip['n']}"
        else:
            row = (f"{_ms(trip['median'])} | {_ms(trip['p95'])} | {_ms(trip['mean'])} | {_ms(accepted['median'])} "
                   f"| {cell['kept_mean']:.1f} | {trip['n']}")
        lines.append('| ' + ' | '.join(names) + ' | ' + row + ' |')
    image, empty = results['serialise_goal_ms']['image'], results['serialise_goal_ms']['empty']
    lines += ['', f"Serialising the goal (`rclpy.serialization.serialize_message`, median of {image['n']}): with the "
              f"image ({results['image']['bytes']:,} bytes of pixels, {image['bytes']:,} serialised) "
              f"{_ms(image['median'])} ms, empty {empty['median'] * 1e3:.0f} µs.", '']
    lines += kept_lines(results['kept_goals'])
    wheel = results.get('rclpy_wheel')
    rclpy = results['rclpy'] + (f' (wheel ros-rclpy {wheel})' if wheel and wheel != results['rclpy'] else '')
    lines += ['', f"{results['repetitions']} goals per cell in blocks of {results['block']}, every round going round "
              f"the cells in a shuffled order (seed {results['seed']}); {results['warmup']} warm-up goals per cell not "
              f"counted. The servers keep a finished goal {results['result_timeout_s']} s and each block starts once "
              "its server has dropped the block before's, so a goal meets at most those of its own block: the kept "
              'column times the per-goal cost above (measured for the single executor, back to back) estimates what '
              'they add to a cell. '
              f"rclpy {rclpy}, {results['ros_distro']}; Python {results['python']}; "
              f"{results['rmw'] or 'default rmw'}; {results['machine']['cores']} cores; load {results['load_at_start']}"
              f" at the start, {results['load_at_end']} at the end; {results['seconds']:.0f} s in all; raw numbers in "
              f'[benchmarks/{JSON_NAME}](benchmarks/{JSON_NAME}).']
    return '\n'.join(lines) + '\n'


def kept_lines(kept: dict[str, Any]) -> list[str]:
    head = (f"What kept finished goals cost: {EXECUTOR_NAMES[kept['executor']]}, empty goals back to back, the server "
            f"keeping every finished goal ({kept['result_timeout_s']} s), {kept['goals']} round trips at each level")
    if 'error' in kept:
        return [f"{head}: error: {first_line(kept['error'])}"]
    lines = [head + ':', '', '| finished goals kept | round trip: median ms | p95 ms |', '|---|---|---|']
    lines += [f"| {s['kept']} | {_ms(s['round_trip_ms']['median'])} | {_ms(s['round_trip_ms']['p95'])} |"
              for s in sorted(kept['levels'].values(), key=lambda s: s['kept'])]
    if 'us_per_kept_goal' in kept:
        lines += ['', f"Linear fit of the medians: {kept['us_per_kept_goal']:.1f} µs more per kept goal "
                      f"({_ms(kept['fit_intercept_ms'])} ms with none)."]
    return lines


def text_summary(results: dict[str, Any]) -> str:
    lines = [f"floor (rclpy {results['rclpy']}, {results['ros_distro']}): round trip median / p95 ms"]
    cells = ordered_cells(results)
    for executor in dict.fromkeys(cell['executor'] for cell in cells):
        parts = [f"{cell['payload']} {cell['pacing']} " + ('error' if 'error' in cell else
                                                           f"{_ms(cell['round_trip_ms']['median'])} / "
                                                           f"{_ms(cell['round_trip_ms']['p95'])}")
                 for cell in cells if cell['executor'] == executor]
        lines.append(f'  {executor}: ' + '; '.join(parts))
    kept = results['kept_goals']
    lines.append(f"  serialise image goal {results['serialise_goal_ms']['image']['median']:.2f} ms; kept goals: "
                 + (f"{kept['us_per_kept_goal']:.1f} us per kept goal" if 'us_per_kept_goal' in kept
                    else kept.get('error', 'no fit').splitlines()[0]))
    return '\n'.join(lines)


def write(results: dict[str, Any], docs: Path) -> list[Path]:
    """docs/benchmarks/floor.json (BENCHMARKS.md takes section() from the report)."""
    path = Path(docs) / 'benchmarks' / JSON_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + '\n')
    return [path]
