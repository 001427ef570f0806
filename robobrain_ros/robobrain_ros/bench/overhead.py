"""Node overhead: the same model work done by a direct HTTP request and through the node, interleaved.

Each repetition runs three modes in a shuffled order: (a) `direct`, the exact body the node would send,
posted and streamed by DirectClient; (b) `goal_image`, a Point goal carrying the frame; (c) `topic`, a Point
goal without image, the node taking the newest frame of the camera topic (published by this process). All
three generate exactly the same tokens (temperature 0, min_tokens = max_tokens), so the paired difference
node - direct of one repetition is the node's cost, with the server's noise mostly cancelled.
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

MODES = ('direct', 'goal_image', 'topic')
LATENCY_FIELDS = ('image_wait', 'preprocess', 'queue', 'first_token', 'generation', 'postprocess', 'total')


def start_camera(ctx: BenchContext, rgb, rate_hz: float = 15.0):
    """Publish rgb on the benchmark topic at rate_hz (returns the running Camera; stop() it)."""
    from std_msgs.msg import Header

    from robobrain_ros.node.image_conversion import rgb_to_image_msg
    from robobrain_ros.testing.ros_fixtures import Camera
    camera = Camera(ctx.camera_node)
    msg = rgb_to_image_msg(rgb, Header(frame_id='bench_camera'))
    camera.set((camera.create_image_publisher(ctx.image_topic), msg))
    return camera.start(rate_hz)


def goal_image_msg(rgb):
    from std_msgs.msg import Header

    from robobrain_ros.node.image_conversion import rgb_to_image_msg
    return rgb_to_image_msg(rgb, Header(frame_id='bench_camera'))


def node_sample(ctx: BenchContext, image=None, timeout: float = 60.0) -> dict[str, Any]:
    """One Point goal through the node: client-side seconds plus the node's own latency breakdown."""
    try:
        outcome = ctx.brain.query('point', INSTRUCTION, image=image, wait_timeout=timeout)
    except TimeoutError:   # a lost goal or result: counted, not fatal
        return {'seconds': timeout, 'status': 'timeout'}
    info = outcome.answer.info if outcome.answer is not None else None
    sample = {'seconds': outcome.seconds, 'status': outcome.status_name}
    if info is not None:
        sample['latency_ms'] = {name: float(getattr(info.latency, name)) for name in LATENCY_FIELDS}
        sample.update(prompt_tokens=int(info.prompt_tokens), completion_tokens=int(info.completion_tokens),
                      text=info.raw_completion, status_message=info.status.message)
    return sample


def run(ctx: BenchContext, repetitions: int = 40, warmup: int = 3, seed: int = 7) -> dict[str, Any]:
    rgb = bench_frame(1280, 720)
    body = node_request_body(rgb, ctx.model, INSTRUCTION, ctx.tokens)
    image = goal_image_msg(rgb)
    rng = random.Random(seed)
    load_before = load()
    camera = start_camera(ctx, rgb)
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        time.sleep(0.5)   # a first frame in the node's cache
        with DirectClient(ctx.base_url) as direct:
            def measure(mode: str) -> dict[str, Any]:
                if mode == 'direct':
                    r = direct.post(body)
                    return {'seconds': r.seconds, 'first_token_s': r.first_token_s, 'prompt_tokens': r.prompt_tokens,
                            'completion_tokens': r.completion_tokens, 'text': r.text, 'error': r.error}
                return node_sample(ctx, image=image if mode == 'goal_image' else None)

            for _ in range(warmup):
                for mode in MODES:
                    measure(mode)
            for rep in range(repetitions):
                order = list(MODES)
                rng.shuffle(order)
                for mode in order:
                    sample = measure(mode)
                    sample['rep'] = rep
                    samples[mode].append(sample)
    finally:
        camera.stop()
    return analyse(samples, load_before, load())


def analyse(samples: dict[str, list[dict[str, Any]]], load_before: list[float],
            load_after: list[float]) -> dict[str, Any]:
    direct = {s['rep']: s for s in samples['direct']}
    result: dict[str, Any] = {'repetitions': len(samples['direct']), 'load_before': load_before,
                              'load_after': load_after, 'modes': {}, 'paired_overhead_ms': {}, 'same_work': {}}
    for mode in MODES:
        rows = samples[mode]
        entry: dict[str, Any] = {'seconds_ms': summary([s['seconds'] * 1e3 for s in rows])}
        if mode == 'direct':
            entry['first_token_ms'] = summary([s['first_token_s'] * 1e3 for s in rows if s['first_token_s']])
            entry['errors'] = sum(1 for s in rows if s['error'])
        else:
            entry['statuses'] = sorted({s['status'] for s in rows})
            entry['latency_ms'] = {name: summary([s['latency_ms'][name] for s in rows if 'latency_ms' in s])
                                   for name in LATENCY_FIELDS}
            outside = [s['seconds'] * 1e3 - s['latency_ms']['total'] for s in rows if 'latency_ms' in s]
            entry['outside_pipeline_ms'] = summary(outside)
            paired = [s['seconds'] * 1e3 - direct[s['rep']]['seconds'] * 1e3 for s in rows if s['rep'] in direct]
            result['paired_overhead_ms'][mode] = summary(paired)
            # Same model work: equal prompt and completion tokens, and the same greedy text.
            result['same_work'][mode] = {
                'prompt_tokens': sorted({s.get('prompt_tokens', -1) for s in rows}),
                'completion_tokens': sorted({s.get('completion_tokens', -1) for s in rows}),
                'text_equal_to_direct': all(s.get('text') == direct[s['rep']]['text']
                                            for s in rows if s['rep'] in direct),
            }
        result['modes'][mode] = entry
    result['direct_tokens'] = {'prompt_tokens': sorted({s['prompt_tokens'] for s in samples['direct']}),
                               'completion_tokens': sorted({s['completion_tokens'] for s in samples['direct']})}
    result['samples'] = {mode: [{k: v for k, v in s.items() if k != 'text'} for s in rows]
                         for mode, rows in samples.items()}
    return result
