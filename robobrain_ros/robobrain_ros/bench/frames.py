"""Camera frames between processes: does the node get the frames a camera on the same host publishes?

A camera process (`python -m robobrain_ros.bench.frames camera ...`) publishes rgb8 frames of a given size at
a given rate (sensor-data QoS, stamped now) for a given time, starting once the node's subscription matched,
while Point goals on the camera topic run through the node back to back. The node counts what it received and
the longest wait between two frames (/diagnostics 'frames received', 'largest frame gap [s]', kept by its
FrameCache); its RSS and CPU are sampled over the camera's window. The first `quiet` seconds of that window run
no goals: the node's CPU then is what receiving frames costs. Every case starts a fresh node and camera:
  transport  'profile'  config/fastdds_large_frames.xml in both processes (what scripts/env.sh sets)
             'defaults' Fast DDS's defaults (the profile variables removed from both processes)
  node       'deserialising' the node as shipped: every frame deserialised into a message on arrival
             'raw'           the same node with raw subscriptions: frames kept as serialized bytes,
                             deserialised when a goal takes one (raw_frames.py; measured worse: see
                             docs/BENCHMARKS.md)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import psutil

from robobrain_ros.bench.common import INSTRUCTION, load, node_params, summary
from robobrain_ros.bench.memory import RssSampler
from robobrain_ros.bench.report import write_marked_section

TOPIC = '/robobrain_bench_frames/image'
NODE_NAME = 'robobrain_frames'
# name -> (width, height, rate [Hz]): issue 14's targets.
SIZES = {'1080p30': (1920, 1080, 30.0), '4k15': (3840, 2160, 15.0)}
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
TARGET_FRACTION = 0.9
TARGET_GAP_S = 0.2


# ---------------------------------------------------------------- the camera process
def camera_main(width: int, height: int, rate: float, seconds: float, topic: str) -> int:
    """Publish for `seconds` once a subscriber matched; print 'started', then one JSON line of what was sent."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from robobrain_ros.bench.common import bench_frame
    from robobrain_ros.node.image_conversion import rgb_to_image_msg

    rclpy.init()
    node = rclpy.create_node('robobrain_bench_camera')
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    msg = rgb_to_image_msg(bench_frame(width, height), Header(frame_id='bench_camera'))
    matched_by = time.monotonic() + 60.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < matched_by:
        time.sleep(0.05)
    time.sleep(1.0)     # the match settles on the reader's side too
    print('started', flush=True)
    cpu_before = psutil.Process().cpu_times()
    start = time.monotonic()
    published = late = 0
    last = largest_gap = 0.0    # [s] the camera's own longest interval between two publishes (a busy CPU)
    while time.monotonic() - start < seconds:
        msg.header.stamp = node.get_clock().now().to_msg()
        now = time.monotonic()
        largest_gap = max(largest_gap, now - last) if published else 0.0
        last = now
        publisher.publish(msg)
        published += 1
        delay = start + published / rate - time.monotonic()    # on schedule, not rate x sleep
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    elapsed = time.monotonic() - start
    cpu = psutil.Process().cpu_times()
    print(json.dumps({'published': published, 'seconds': elapsed, 'late_ticks': late, 'largest_gap_s': largest_gap,
                      'cpu_percent': 100.0 * (cpu.user + cpu.system - cpu_before.user - cpu_before.system) / elapsed,
                      'frame_bytes': len(msg.data)}), flush=True)
    time.sleep(1.0)     # the last frames are delivered before the writer goes
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------- the node variant for the paired comparison
def raw_node_main() -> None:
    """The brain node with raw subscriptions: frames kept as serialized bytes, deserialised when a goal takes one."""
    from robobrain_ros.bench.raw_frames import raw_frame
    from robobrain_ros.node import brain_node
    from robobrain_ros.node.frame_cache import CachedFrame

    class RawBrainNode(brain_node.BrainNode):
        def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):
            raw = msg_type in (brain_node.Image, brain_node.CompressedImage)
            return super().create_subscription(msg_type, topic, callback, qos_profile, raw=raw, **kwargs)

        def _cached(self, serialized: bytes, msg_type: type, topic: str) -> CachedFrame:
            return raw_frame(serialized, msg_type, compressed=msg_type is brain_node.CompressedImage, topic=topic,
                             received=self._now())

    brain_node.BrainNode = RawBrainNode    # main() builds the node by this name
    brain_node.main()


# ---------------------------------------------------------------- one case
@contextlib.contextmanager
def transport(profile: bool):
    """Processes started inside get the large-frame profile (as env.sh sets it) or Fast DDS's defaults."""
    saved = {name: os.environ.get(name) for name in PROFILE_VARIABLES}
    if profile and not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        raise RuntimeError('FASTDDS_DEFAULT_PROFILES_FILE is not set: source scripts/env.sh')
    if not profile:
        for name in PROFILE_VARIABLES:
            os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


class CameraDiagnostics:
    """The newest key/values of the node's camera status on /diagnostics."""

    def __init__(self, node, status_name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        self.values: dict[str, str] = {}
        self._name = status_name
        self._subscription = node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 10)
        self._node = node

    def _on_array(self, array) -> None:
        for status in array.status:
            if status.name == self._name:
                self.values = {kv.key: kv.value for kv in status.values}

    def close(self) -> None:
        self._node.destroy_subscription(self._subscription)


class GoalLoop:
    """Point goals on the camera topic, one after the other, until stopped; statuses and seconds kept."""

    def __init__(self, client) -> None:
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.outcomes: list[tuple[str, float, str]] = []    # (status, seconds, status message)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self._client.query('point', INSTRUCTION, wait_timeout=30.0)
            except TimeoutError:
                self.outcomes.append(('timeout', 30.0, ''))
                continue
            info = outcome.answer.info if outcome.answer is not None else None
            self.outcomes.append((outcome.status_name, outcome.seconds, info.status.message if info else ''))

    def __enter__(self) -> GoalLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(35.0)


def run_case(base_url: str, model: str, size: str, seconds: float, profile: bool, node: str,
             quiet: float = 10.0) -> dict[str, Any]:
    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness import brain_process
    from robobrain_ros.harness.brain_process import BrainProcess

    width, height, rate = SIZES[size]
    log_dir = Path(tempfile.mkdtemp(prefix='robobrain-bench-frames-'))
    params = node_params(base_url, model, image_topic=TOPIC)
    executable = [sys.executable, '-m', 'robobrain_ros.bench.frames', 'raw-node']
    with transport(profile), contextlib.ExitStack() as stack:
        if node == 'raw':
            stack.enter_context(mock.patch.object(brain_process, 'brain_executable', lambda: executable))
        brain = BrainProcess(params, name=NODE_NAME, log_dir=log_dir).start()
        camera = subprocess.Popen(
            [sys.executable, '-m', 'robobrain_ros.bench.frames', 'camera', str(width), str(height), str(rate),
             str(seconds), TOPIC], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = diagnostics = None
    try:
        client = BrainClient(brain_name=f'/{NODE_NAME}', node_name='robobrain_bench_frames_client')
        if not client.wait_for_server('point', 60.0):
            raise RuntimeError(f'the brain node did not come up: {brain.log()[-3000:]}')
        diagnostics = CameraDiagnostics(client.node, f'/{NODE_NAME}: camera')
        process = psutil.Process(brain.process.pid)
        lines = iter(camera.stdout.readline, '')
        camera_log = []
        for line in lines:
            camera_log.append(line)
            if line.strip() == 'started':
                break
        load_before = load()
        with RssSampler(brain.process.pid, period=0.5) as rss:
            cpu_start, start = process.cpu_times(), time.monotonic()
            time.sleep(quiet)
            cpu_before, started = process.cpu_times(), time.monotonic()
            with GoalLoop(client) as goals:
                sent = None
                for line in lines:
                    camera_log.append(line)
                    if line.startswith('{'):
                        sent = json.loads(line)
                        break
                cpu_after, ended = process.cpu_times(), time.monotonic()
                # RSS counts the touched pages of the shared-memory segments (the camera's frames) too: USS is
                # the node's own memory.
                full = process.memory_full_info()
        camera.wait(30.0)
        if sent is None:
            raise RuntimeError('the camera process ended without a report: ' + ''.join(camera_log)[-3000:])
        time.sleep(2.5)   # the node publishes /diagnostics once a second
        values = dict(diagnostics.values)
    finally:
        if diagnostics is not None:
            diagnostics.close()
        if client is not None:
            client.close()
        if camera.poll() is None:
            camera.kill()
            camera.wait(5.0)
        brain.stop()
    received = int(values.get('frames received', '0'))
    gap = float(values.get('largest frame gap [s]', 'nan'))
    statuses: dict[str, int] = {}
    for status, _, _ in goals.outcomes:
        statuses[status] = statuses.get(status, 0) + 1
    messages = sorted({message for status, _, message in goals.outcomes if status != 'succeeded' and message})
    fraction = received / sent['published'] if sent['published'] else 0.0
    return {
        'size': size, 'width': width, 'height': height, 'rate_hz': rate, 'transport': 'profile' if profile
        else 'defaults', 'node': node, 'seconds': sent['seconds'],
        'published': sent['published'], 'camera_late_ticks': sent['late_ticks'], 'frame_bytes': sent['frame_bytes'],
        'camera_largest_gap_s': sent.get('largest_gap_s'),
        'received': received, 'received_fraction': fraction, 'receive_rate_hz': received / sent['seconds'],
        'largest_gap_s': gap if received > 1 else None,
        'target_met': fraction >= TARGET_FRACTION and received > 1 and gap <= TARGET_GAP_S,
        'node_cpu_percent': cpu_percent(cpu_before, cpu_after, ended - started),
        'node_cpu_percent_no_goals': cpu_percent(cpu_start, cpu_before, started - start), 'quiet_seconds': quiet,
        'node_rss_mib': summary(rss.samples), 'node_uss_mib_at_end': full.uss / 2**20,
        'node_shared_mib_at_end': full.shared / 2**20, 'camera_cpu_percent': sent['cpu_percent'],
        'goals': {'statuses': statuses, 'seconds': summary([s for _, s, _ in goals.outcomes]),
                  'failure_messages': messages[:3]},
        'load_before': load_before, 'load_after': load(),
    }


def cpu_percent(before, after, seconds: float) -> float:
    """A process's CPU use between two psutil cpu_times() samples [% of one core]."""
    return 100.0 * (after.user + after.system - before.user - before.system) / seconds


CASES = {   # name -> (size, profile, node)
    '1080p30': ('1080p30', True, 'deserialising'), '4k15': ('4k15', True, 'deserialising'),
    '1080p30_defaults': ('1080p30', False, 'deserialising'), '4k15_defaults': ('4k15', False, 'deserialising'),
    '1080p30_raw': ('1080p30', True, 'raw'), '4k15_raw': ('4k15', True, 'raw'),
}


def run(base_url: str, model: str, seconds: float = 60.0, cases: list[str] | None = None) -> dict[str, Any]:
    """Each case in turn (default: all), with the given server; results by case name."""
    quiet = min(10.0, seconds / 6)
    results: dict[str, Any] = {'seconds_per_case': seconds, 'quiet_seconds': quiet, 'server': base_url,
                               'model': model, 'cases': {}}
    for name in cases or list(CASES):
        size, profile, node = CASES[name]
        print(f'== frames: {name} ({seconds:g} s)', file=sys.stderr, flush=True)
        results['cases'][name] = run_case(base_url, model, size, seconds, profile, node, quiet)
        print(json.dumps({k: v for k, v in results['cases'][name].items() if k != 'goals'}), file=sys.stderr,
              flush=True)
    return results


# ---------------------------------------------------------------- report
START = '<!-- camera-frames:start (written by python -m robobrain_ros.bench --only frames) -->'
END = '<!-- camera-frames:end -->'
JSON_NAME = 'frames.json'


def markdown(results: dict[str, Any]) -> str:
    lines = [START, '', ('| case | frames | transport | node | received of published | receive rate '
                         "| largest gap (camera's own) | >= 90%, gap <= 200 ms | node CPU: frames only / with goals "
                         '| node RSS median / max (own, USS) | camera CPU | goals ok / sent, median |'),
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for name, c in results['cases'].items():
        gap = f"{c['largest_gap_s'] * 1e3:.0f} ms" if c['largest_gap_s'] is not None else '-'
        if c.get('camera_largest_gap_s') is not None:
            gap += f" ({c['camera_largest_gap_s'] * 1e3:.0f} ms)"
        cpu_no_goals = f"{c['node_cpu_percent_no_goals']:.0f}%" if 'node_cpu_percent_no_goals' in c else '-'
        uss = f"{c['node_uss_mib_at_end']:.0f} MiB" if 'node_uss_mib_at_end' in c else '-'
        goals = c['goals']
        sent = sum(goals['statuses'].values())
        lines.append(
            f"| {name} | {c['width']}x{c['height']} @ {c['rate_hz']:g} Hz ({c['frame_bytes'] / 1e6:.1f} MB) "
            f"| {c['transport']} | {c['node']} | {c['received']} of {c['published']} "
            f"({100 * c['received_fraction']:.1f}%) | {c['receive_rate_hz']:.1f} Hz | {gap} "
            f"| {'yes' if c['target_met'] else 'no'} | {cpu_no_goals} / {c['node_cpu_percent']:.0f}% "
            f"| {c['node_rss_mib']['median']:.0f} / {c['node_rss_mib']['max']:.0f} MiB ({uss}) "
            f"| {c['camera_cpu_percent']:.0f}% "
            f"| {goals['statuses'].get('succeeded', 0)} / {sent}, {goals['seconds']['median']:.2f} s |")
    lines += ['', (f"{results['seconds_per_case']:g} s per case (goals from {results.get('quiet_seconds', 0):g} s "
                   f"on); server {results['model']} at {results['server']}; "
                   f'raw numbers in [benchmarks/{JSON_NAME}](benchmarks/{JSON_NAME}). CPU: 100% is one core.'),
              '', END]
    return '\n'.join(lines) + '\n'


def write(results: dict[str, Any], docs: Path) -> list[Path]:
    """docs/benchmarks/frames.json, and the table between the camera-frames markers of docs/BENCHMARKS.md."""
    return write_marked_section(docs, START, END, 'Camera frames', markdown(results), JSON_NAME, results)


def text_summary(results: dict[str, Any]) -> str:
    return 'camera frames: ' + '; '.join(
        f"{name}: {c['received']}/{c['published']}, gap {c['largest_gap_s']}, node CPU {c['node_cpu_percent']:.0f}%"
        for name, c in results['cases'].items())


def main(argv: list[str]) -> int:
    if argv[:1] == ['camera']:
        width, height, rate, seconds, topic = argv[1:6]
        return camera_main(int(width), int(height), float(rate), float(seconds), topic)
    if argv[:1] == ['raw-node']:
        sys.argv = [sys.argv[0]] + argv[1:]
        raw_node_main()
        return 0
    raise SystemExit('usage: python -m robobrain_ros.bench.frames camera W H RATE SECONDS TOPIC | '
                     'raw-node --ros-args ... (the benchmark itself: python -m robobrain_ros.bench '
                     '--only frames)')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
