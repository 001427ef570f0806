"""Goal intake: how soon does the node accept each of N goals sent at once, and how soon do their results come?

Two brain node processes run side by side against one ScriptedServer (no model work: each answer streams in ~1 s,
so every goal of a burst is in flight together): the node as shipped (rclpy's EventsExecutor) and the same node on
its fallback executor (`executor:=single_threaded`, rclpy's SingleThreadedExecutor). Bursts of N Point goals with
the camera's JPEG in the goal go to each in turn, the order alternating; per goal the client records the time from
send() to the server's accept and to the result. The client is one BrainClient in this process for both nodes: its
own sending is in both ways' numbers alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from robobrain_ros.bench.common import INSTRUCTION, bench_frame, load, node_params, summary
from robobrain_ros.bench.report import write_marked_section

WAYS = {'events': "the node as shipped (rclpy's EventsExecutor)",
        'single_threaded': "the fallback (executor:=single_threaded, rclpy's SingleThreadedExecutor)"}


def jpeg_goal_image():
    from sensor_msgs.msg import CompressedImage
    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(bench_frame(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    image = CompressedImage(format='jpeg', data=jpeg.tobytes())
    image.header.frame_id = 'robobrain_bench_camera_optical_frame'
    return image


def run(bursts: int, sizes: tuple[int, ...] = (8, 32), log=print) -> dict[str, Any]:
    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness.brain_process import BrainProcess
    from robobrain_ros.harness.scripted_server import MODEL, Reply, ScriptedServer

    log_dir = Path(tempfile.mkdtemp(prefix='robobrain-bench-intake-'))
    image = jpeg_goal_image()
    results: dict[str, Any] = {'bursts': bursts, 'sizes': list(sizes), 'ways': WAYS, 'load_at_start': load(),
                               'goal_image_bytes': len(image.data), 'samples': {}}
    processes, clients = {}, {}
    with ScriptedServer(default=Reply(chunks=4, chunk_delay=0.25)) as server:
        try:
            for way in WAYS:
                params = node_params(server.base_url, MODEL, **{'queries.max_concurrent': 64, 'queries.max_queued': 16,
                                                                'model.extra_body': '{}', 'executor': way})
                processes[way] = BrainProcess(params, name=f'robobrain_intake_{way}', log_dir=log_dir).start()
                clients[way] = BrainClient(brain_name=f'/robobrain_intake_{way}', node_name=f'intake_client_{way}')
            for way, client in clients.items():
                if not client.wait_for_server('point', 60.0):
                    raise RuntimeError(f'the {way} node did not come up: {processes[way].log()[-3000:]}')
                if f'executor: {way}' not in processes[way].log():   # the comparison is of two executors
                    raise RuntimeError(f'the {way} node spins another executor: {processes[way].log()[-3000:]}')
            for size in sizes:
                samples = results['samples'][str(size)] = {way: [] for way in WAYS}
                for burst in range(bursts):
                    for way in (list(WAYS) if burst % 2 == 0 else list(WAYS)[::-1]):
                        client = clients[way]
                        handles = [client.send('point', client.goal('point', INSTRUCTION, compressed_image=image))
                                   for _ in range(size)]
                        outcomes = [handle.wait(120.0) for handle in handles]
                        samples[way].append({
                            'accepted_ms': [o.accepted_seconds * 1e3 for o in outcomes],
                            'result_ms': [o.seconds * 1e3 for o in outcomes],
                            'succeeded': sum(o.status_name == 'succeeded' for o in outcomes)})
                        last = samples[way][-1]
                        log(f'intake N={size} burst {burst} {way}: accepted median '
                            f"{statistics.median(last['accepted_ms']):.0f} ms, last {max(last['accepted_ms']):.0f} ms,"
                            f" {last['succeeded']}/{size} succeeded")
                        time.sleep(0.5)
        finally:
            for client in clients.values():
                client.close()
            for process in processes.values():
                process.stop()
    results['summary'] = {size: {way: _summarise(bursts_of_way) for way, bursts_of_way in by_way.items()}
                          for size, by_way in results['samples'].items()}
    results['load_at_end'] = load()
    return results


def _summarise(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the bursts of each burst's median and last acceptance, and of its median result time."""
    return {'accepted_median_ms': statistics.median(statistics.median(b['accepted_ms']) for b in bursts),
            'accepted_last_ms': statistics.median(max(b['accepted_ms']) for b in bursts),
            'accepted_last_ms_range': [min(max(b['accepted_ms']) for b in bursts),
                                       max(max(b['accepted_ms']) for b in bursts)],
            'result_median_ms': statistics.median(statistics.median(b['result_ms']) for b in bursts),
            'result_last_ms': statistics.median(max(b['result_ms']) for b in bursts),
            'result_ms': summary([t for b in bursts for t in b['result_ms']]),
            'succeeded': sum(b['succeeded'] for b in bursts),
            'goals': sum(len(b['accepted_ms']) for b in bursts)}


# ---------------------------------------------------------------- report
START = '<!-- goal-intake:start (written by python -m robobrain_ros.bench --only intake) -->'
END = '<!-- goal-intake:end -->'
JSON_NAME = 'intake.json'


def markdown(results: dict[str, Any]) -> str:
    lines = [START, '', '| goals at once | way | accepted: median goal | accepted: last goal (range over bursts) '
             '| result: median goal | result: last goal (the burst) | succeeded |', '|---|---|---|---|---|---|---|']
    for size, by_way in results['summary'].items():
        for way, s in by_way.items():
            low, high = s['accepted_last_ms_range']
            lines.append(f"| {size} | {WAYS[way]} | {s['accepted_median_ms']:.0f} ms "
                         f"| {s['accepted_last_ms']:.0f} ms ({low:.0f}-{high:.0f}) | {s['result_median_ms']:.0f} ms "
                         f"| {s['result_last_ms']:.0f} ms | {s['succeeded']} / {s['goals']} |")
    lines += ['', (f"{results['bursts']} bursts per size and way, alternating; medians over the bursts; the goal "
                   f"carries a {results['goal_image_bytes'] / 1e3:.0f} kB JPEG; load {results['load_at_start']} at the "
                   f"start, {results['load_at_end']} at the end; raw numbers in "
                   f'[benchmarks/{JSON_NAME}](benchmarks/{JSON_NAME}).'), '', END]
    return '\n'.join(lines) + '\n'


def write(results: dict[str, Any], docs: Path) -> list[Path]:
    """docs/benchmarks/intake.json, and the table between the goal-intake markers of docs/BENCHMARKS.md."""
    return write_marked_section(docs, START, END, 'Goal intake', markdown(results), JSON_NAME, results)


def text_summary(results: dict[str, Any]) -> str:
    return 'goal intake: ' + '; '.join(
        f"N={size} {way}: last accepted {s['accepted_last_ms']:.0f} ms" for size, by_way in results['summary'].items()
        for way, s in by_way.items())
