"""Where the node's time goes: each step of its path timed alone, in this process, with the node's own code.

The node's QueryInfo.latency splits a goal into preprocess / first_token / generation / postprocess; this
module times the pieces inside and around them (conversion, resize, encode, request JSON, DDS
(de)serialisation of the frame, answer drawing and the annotated image message) with the same functions
on the same 1280x720 frame.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from robobrain_ros.bench.common import INSTRUCTION, bench_frame, summary


def _time(function: Callable[[], object], repeats: int) -> dict[str, float]:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return summary(samples)


def run(repeats: int = 30) -> dict[str, Any]:
    import cv2
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from robobrain_ros.node.image_conversion import image_to_rgb, rgb_to_image_msg
    from robobrain_ros.protocol import (
        Answer,
        AnswerPoint,
        ImageBudget,
        ModelFamily,
        Task,
        build_request,
        draw_annotations,
        model_input_size,
        prepare_image,
    )

    rgb = bench_frame(1280, 720)
    msg = rgb_to_image_msg(rgb, Header(frame_id='bench_camera'))
    wire = serialize_message(msg)
    received = deserialize_message(wire, Image)
    budget = ImageBudget()
    size = model_input_size((1280, 720), budget)
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    prepared = prepare_image(rgb, budget)
    body = build_request(Task.POINTING, INSTRUCTION, [prepared], False, ModelFamily.ROBOBRAIN_2_0, model='m',
                         max_tokens=32, temperature=0.0).body
    answer = Answer(task=Task.POINTING, raw='', points=[AnswerPoint(100.0, 200.0), AnswerPoint(640.0, 360.0)])
    steps = {
        'serialize Image (client/camera side of DDS)': lambda: serialize_message(msg),
        'deserialize Image (node side of DDS)': lambda: deserialize_message(wire, Image),
        'image_to_rgb (received rgb8 message)': lambda: image_to_rgb(received),
        'resize to the budget (cv2 INTER_LINEAR)': lambda: cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR),
        'cvtColor + JPEG encode q90': lambda: cv2.imencode('.jpg', cv2.cvtColor(resized, cv2.COLOR_RGB2BGR),
                                                           [cv2.IMWRITE_JPEG_QUALITY, 90]),
        'prepare_image (resize + encode + base64)': lambda: prepare_image(rgb, budget),
        'build_request (body)': lambda: build_request(Task.POINTING, INSTRUCTION, [prepared], False,
                                                      ModelFamily.ROBOBRAIN_2_0, model='m', max_tokens=32,
                                                      temperature=0.0),
        'json.dumps of the body (HTTP)': lambda: json.dumps(body),
        'draw_annotations (annotated image)': lambda: draw_annotations(rgb, answer, 'pointing: x'),
        'rgb_to_image_msg (annotated image message)': lambda: rgb_to_image_msg(rgb, msg.header),
        'serialize annotated Image (publish)': lambda: serialize_message(rgb_to_image_msg(rgb, msg.header)),
    }
    return {'frame': '1280x720', 'message_bytes': len(wire), 'body_bytes': len(json.dumps(body)),
            'steps_ms': {name: _time(step, repeats) for name, step in steps.items()}}
