"""Fleet: several brain nodes (one per robot: own process, own camera) sharing one model server.

Each repetition runs two ways in a shuffled order: `fleet`, every robot's client sends `goals_each` Point goals
to its own node at once (frames from that robot's camera topic), and the wall time runs until the last of all
goals answered; `direct`, the same number of request bodies (the exact body a node builds for that frame)
posted at once. The ratio fleet / direct is what the nodes add when the server batches a whole fleet's goals.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from robobrain_ros.bench.common import CPU_FORCED_TOKENS, INSTRUCTION, bench_frame, load, node_params, summary
from robobrain_ros.bench.concurrency import wait_all
from robobrain_ros.bench.direct import DirectClient, node_request_body

WAYS = ('fleet', 'direct')


def run(base_url: str, model: str, robots: int = 8, goals_each: int = 4, repetitions: int = 5,
        frame_size: tuple[int, int] = (640, 480), camera_hz: float = 5.0, seed: int = 13,
        log=lambda message: None) -> dict[str, Any]:
    import psutil
    from std_msgs.msg import Header

    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness.brain_process import BrainProcess
    from robobrain_ros.harness.camera_publisher import Camera
    from robobrain_ros.node.image_conversion import rgb_to_image_msg

    rgb = bench_frame(*frame_size)
    body = node_request_body(rgb, model, INSTRUCTION, CPU_FORCED_TOKENS)   # the nodes force as many (node_params)
    log_dir = Path(tempfile.mkdtemp(prefix='robobrain-bench-fleet-'))
    brains, clients, cameras = [], [], []
    rng = random.Random(seed)
    raw: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    try:
        for i in range(robots):
            name = f'robot{i}_brain'
            brains.append(BrainProcess(node_params(base_url, model, image_topic=f'/robot{i}/image'), name=name,
                                       log_dir=log_dir).start())
        for i, brain in enumerate(brains):
            client = BrainClient(brain_name=f'/robot{i}_brain', node_name=f'fleet_client_{i}')
            clients.append(client)
            if not client.wait_for_server('point', 120.0):
                raise RuntimeError(f'robot {i} brain did not come up: {brain.log()[-3000:]}')
            camera = Camera(client.node)
            camera.set((camera.create_image_publisher(f'/robot{i}/image'),
                        rgb_to_image_msg(rgb, Header(frame_id=f'robot{i}_camera'))))
            cameras.append(camera.start(camera_hz))
        log(f'{robots} brain nodes up')
        time.sleep(1.0)   # a first frame in every node's cache
        load_before = load()

        def fleet_once() -> dict[str, Any]:
            start = time.perf_counter()
            handles = [client.send('point', client.goal('point', INSTRUCTION))
                       for client in clients for _ in range(goals_each)]
            seconds, statuses = wait_all(handles, 120.0)
            return {'wall_s': time.perf_counter() - start, 'goal_s': seconds, 'statuses': sorted(set(statuses))}

        with DirectClient(base_url) as direct:
            def direct_once() -> dict[str, Any]:
                start = time.perf_counter()
                results = direct.post_many([body] * (robots * goals_each))
                return {'wall_s': time.perf_counter() - start, 'goal_s': [r.seconds for r in results],
                        'statuses': sorted({'error' if r.error else 'succeeded' for r in results})}

            ways = {'fleet': fleet_once, 'direct': direct_once}
            for way in WAYS:   # warm-up
                ways[way]()
            for rep in range(repetitions):
                order = list(WAYS)
                rng.shuffle(order)
                for way in order:
                    raw[way].append(ways[way]())
                log(f'repetition {rep + 1}: ' + ', '.join(f"{w} {raw[w][-1]['wall_s'] * 1e3:.0f} ms" for w in WAYS))
        rss = [psutil.Process(b.process.pid).memory_info().rss / 2**20 for b in brains]
    finally:
        for camera in cameras:
            camera.stop()
        for client in clients:
            client.close()
        for brain in brains:
            brain.stop()
    out: dict[str, Any] = {'robots': robots, 'goals_each': goals_each, 'repetitions': repetitions,
                           'frame': f'{frame_size[0]}x{frame_size[1]} rgb8 @ {camera_hz:g} Hz per robot',
                           'load_before': load_before, 'load_after': load(),
                           'node_rss_mib': summary(rss), 'raw': raw}
    for way in WAYS:
        rows = raw[way]
        out[way] = {'wall_ms': summary([r['wall_s'] * 1e3 for r in rows]),
                    'goal_ms': summary([s * 1e3 for r in rows for s in r['goal_s']]),
                    'statuses': sorted({s for r in rows for s in r['statuses']})}
    fleet_ms, direct_ms = out['fleet']['wall_ms']['median'], out['direct']['wall_ms']['median']
    out['fleet_vs_direct'] = fleet_ms / direct_ms if direct_ms else float('nan')
    return out
