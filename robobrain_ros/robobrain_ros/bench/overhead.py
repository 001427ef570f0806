"""Node overhead: the same model work done by a direct HTTP request and through the node, interleaved.

Each repetition runs five modes in a shuffled order: (a) `direct`, the exact body the node would send for the
raw frame, posted and streamed by DirectClient; (b) `goal_image`, a Point goal carrying the raw frame; (c)
`topic`, a Point goal without image, the node taking the newest frame of the camera topic (published by this
process); (d) `direct_jpeg`, the body with the camera's JPEG of the frame, which is what the node sends for
(e) `goal_compressed`, a Point goal carrying that JPEG as a CompressedImage (passed through unchanged). All
generate exactly the same tokens (temperature 0, min_tokens = max_tokens), so the paired difference node -
direct of one repetition is the node's cost, with the server's noise mostly cancelled: (b) and (c) against (a),
(e) against (d), whose server work (decoding the JPEG, rounding its size) is the same.
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

MODES = ('direct', 'goal_image', 'topic', 'direct_jpeg', 'goal_compressed')
BASELINES = {'goal_image': 'direct', 'topic': 'direct', 'goal_compressed': 'direct_jpeg'}
LATENCY_FIELDS = ('image_wait', 'preprocess', 'queue', 'first_token', 'generation', 'postprocess', 'total')


def start_camera(ctx: BenchContext, rgb, rate_hz: float = 15.0):
    """Publish rgb on the benchmark topic at rate_hz (returns the running Camera; stop() it)."""
    from std_msgs.msg import Header

    from robobrain_ros.harness.camera_publisher import Camera
    from robobrain_ros.node.image_conversion import rgb_to_image_msg
    camera = Camera(ctx.camera_node)
    msg = rgb_to_image_msg(rgb, Header(frame_id='bench_camera'))
    camera.set((camera.create_image_publisher(ctx.image_topic), msg))
    return camera.start(rate_hz)


def goal_image_msg(rgb):
    from std_msgs.msg import Header

    from robobrain_ros.node.image_conversion import rgb_to_image_msg
    return rgb_to_image_msg(rgb, Header(frame_id='bench_camera'))


def camera_jpeg(rgb, quality: int = 90) -> bytes:
    """The frame as a camera's compressed stream carries it (image_transport's default JPEG quality is 95)."""
    import cv2
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def compressed_goal_image(jpeg: bytes):
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header
    return CompressedImage(header=Header(frame_id='bench_camera'), format='jpeg', data=jpeg)


def node_sample(ctx: BenchContext, timeout: float = 60.0, **goal) -> dict[str, Any]:
    """One Point goal through the node: client-side seconds plus the node's own latency breakdown."""
    try:
        outcome = ctx.brain.query('point', INSTRUCTION, wait_timeout=timeout, **goal)
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
    jpeg = camera_jpeg(rgb)
    bodies = {'direct': node_request_body(rgb, ctx.model, INSTRUCTION, ctx.tokens),
              'direct_jpeg': node_request_body(jpeg, ctx.model, INSTRUCTION, ctx.tokens)}
    goals = {'goal_image': {'image': goal_image_msg(rgb)}, 'topic': {},
             'goal_compressed': {'compressed_image': compressed_goal_image(jpeg)}}
    rng = random.Random(seed)
    load_before = load()
    camera = start_camera(ctx, rgb)
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        time.sleep(0.5)   # a first frame in the node's cache
        with DirectClient(ctx.base_url) as direct:
            def measure(mode: str) -> dict[str, Any]:
                if mode in bodies:
                    r = direct.post(bodies[mode])
                    return {'seconds': r.seconds, 'first_token_s': r.first_token_s, 'prompt_tokens': r.prompt_tokens,
                            'completion_tokens': r.completion_tokens, 'text': r.text, 'error': r.error}
                return node_sample(ctx, **goals[mode])

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
    result: dict[str, Any] = {'repetitions': len(samples['direct']), 'load_before': load_before,
                              'load_after': load_after, 'modes': {}, 'paired_overhead_ms': {}, 'same_work': {},
                              'baselines': {m: b for m, b in BASELINES.items() if m in samples}}
    for mode in MODES:
        if mode not in samples:
            continue
        rows = samples[mode]
        entry: dict[str, Any] = {'seconds_ms': summary([s['seconds'] * 1e3 for s in rows])}
        if mode not in BASELINES:
            entry['first_token_ms'] = summary([s['first_token_s'] * 1e3 for s in rows if s['first_token_s']])
            entry['errors'] = sum(1 for s in rows if s['error'])
        else:
            entry['statuses'] = sorted({s['status'] for s in rows})
            entry['latency_ms'] = {name: summary([s['latency_ms'][name] for s in rows if 'latency_ms' in s])
                                   for name in LATENCY_FIELDS}
            direct = {s['rep']: s for s in samples[BASELINES[mode]]}
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
    result['direct_tokens'] = {'prompt_tokens': sorted({s['prompt_tokens'] for m in set(BASELINES.values())
                                                        for s in samples.get(m, [])}),
                               'completion_tokens': sorted({s['completion_tokens'] for m in set(BASELINES.values())
                                                            for s in samples.get(m, [])})}
    result['samples'] = {mode: [{k: v for k, v in s.items() if k != 'text'} for s in rows]
                         for mode, rows in samples.items()}
    return result
