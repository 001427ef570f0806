"""Concurrency: N simultaneous goals against the same N goals one after another, and against N direct requests.

For each N the three ways run in a shuffled order per repetition: `node_parallel` (N Point goals sent at
once, frame from the camera topic), `node_sequential` (the same N goals, each sent when the previous
answered) and `direct_parallel` (the N request bodies posted at once, what the server can batch without the
node). node_parallel close to direct_parallel and well below node_sequential means the node does not
serialise what the server batches.
"""

from __future__ import annotations

import random
import time
from typing import Any

from robobrain_ros.bench.common import (
    INSTRUCTION,
    BenchContext,
    bench_frame,
    load,
    summary,
)
from robobrain_ros.bench.direct import DirectClient, node_request_body
from robobrain_ros.bench.overhead import start_camera

WAYS = ('node_parallel', 'node_sequential', 'direct_parallel')
LEVELS = (1, 2, 4, 8, 16)   # goals at once


def wait_all(handles, timeout: float) -> tuple[list[float], list[str]]:
    """(seconds, status) of each goal; a goal without a result within timeout [s] counts as 'timeout'."""
    end = time.perf_counter() + timeout
    seconds, statuses = [], []
    for handle in handles:
        try:
            outcome = handle.wait(max(0.0, end - time.perf_counter()))
            seconds.append(outcome.seconds)
            statuses.append(outcome.status_name)
        except TimeoutError:
            seconds.append(timeout)
            statuses.append('timeout')
    return seconds, statuses


def node_parallel(ctx: BenchContext, n: int, timeout: float = 60.0, image=None) -> tuple[float, list[float], list[str]]:
    start = time.perf_counter()
    handles = [ctx.brain.send('point', ctx.brain.goal('point', INSTRUCTION, image=image)) for _ in range(n)]
    seconds, statuses = wait_all(handles, timeout)
    return time.perf_counter() - start, seconds, statuses


def node_sequential(ctx: BenchContext, n: int, timeout: float = 60.0) -> tuple[float, list[float], list[str]]:
    start = time.perf_counter()
    seconds, statuses = [], []
    for _ in range(n):
        one, status = wait_all([ctx.brain.send('point', ctx.brain.goal('point', INSTRUCTION))], timeout)
        seconds += one
        statuses += status
    return time.perf_counter() - start, seconds, statuses


def run(ctx: BenchContext, levels: tuple[int, ...] = LEVELS, repetitions: int = 5,
        seed: int = 11) -> dict[str, Any]:
    rgb = bench_frame(1280, 720)
    body = node_request_body(rgb, ctx.model, INSTRUCTION, ctx.tokens)
    rng = random.Random(seed)
    load_before = load()
    raw: dict[int, dict[str, list[dict[str, Any]]]] = {n: {way: [] for way in WAYS} for n in levels}
    camera = start_camera(ctx, rgb)
    try:
        time.sleep(0.5)
        with DirectClient(ctx.base_url) as direct:
            def measure(way: str, n: int) -> dict[str, Any]:
                if way == 'direct_parallel':
                    start = time.perf_counter()
                    results = direct.post_many([body] * n)
                    wall = time.perf_counter() - start
                    return {'wall_s': wall, 'goal_s': [r.seconds for r in results],
                            'statuses': sorted({'error' if r.error else 'succeeded' for r in results})}
                wall, seconds, statuses = (node_parallel if way == 'node_parallel' else node_sequential)(ctx, n)
                return {'wall_s': wall, 'goal_s': seconds, 'statuses': sorted(set(statuses))}

            for way in WAYS:   # warm-up
                measure(way, 2)
            for rep in range(repetitions):
                for n in levels:
                    order = list(WAYS)
                    rng.shuffle(order)
                    for way in order:
                        raw[n][way].append(measure(way, n))
    finally:
        camera.stop()
    levels_out = {}
    for n in levels:
        entry = {}
        for way in WAYS:
            rows = raw[n][way]
            entry[way] = {'wall_ms': summary([r['wall_s'] * 1e3 for r in rows]),
                          'goal_ms': summary([s * 1e3 for r in rows for s in r['goal_s']]),
                          'statuses': sorted({s for r in rows for s in r['statuses']})}
        par, seq, dpar = (entry[w]['wall_ms']['median'] for w in WAYS)
        entry['speedup_vs_sequential'] = seq / par if par else float('nan')
        entry['node_vs_direct_parallel'] = par / dpar if dpar else float('nan')
        levels_out[str(n)] = entry
    return {'levels': levels_out, 'repetitions': repetitions, 'load_before': load_before, 'load_after': load(),
            'raw': {str(n): ways for n, ways in raw.items()}}
