"""The brain node's inputs and outputs beyond one action: camera topics (raw, compressed, depth, camera_info),
the ~/task topic, 3D lifting, markers, the annotated image, cancel and the server slot, /diagnostics.

Real node processes, real rclpy, the real vLLM server with the tiny model.
"""

from __future__ import annotations

import json
import re
import socket

import cv2
import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String
from visualization_msgs.msg import Marker, MarkerArray

from robobrain_interfaces.msg import PointsAnswer, QueryStatus
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.node.image_conversion import image_to_rgb, rgb_to_image_msg
from robobrain_ros.protocol import annotate

SUCCEEDED, ABORTED, CANCELED = (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED,
                                GoalStatus.STATUS_CANCELED)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Small frames: three streams of them at 20 Hz stay light for DDS on a loaded 2-core CI machine.
FX, FY, CX, CY = 250.0, 260.0, 160.0, 120.0
WIDTH, HEIGHT = 320, 240
FRAME = 'rgbd_optical_frame'
FRESH = 0.3   # [s] max_image_age of the goals below


@pytest.fixture(scope='module')
def brain(start_brain, vllm_server):
    """A brain with a full RGB-D camera under /rgbd."""
    # Random weights answer "nothing found" ([]) more often than not: these tests need points to lift and draw.
    return start_brain({'server.base_urls': [vllm_server.base_url], 'model.max_tokens': 96,
                        'model.temperature': 0.0, 'queries.max_image_age': 2.0, 'model.allow_empty_answer': False,
                        'topics.image': '/rgbd/image', 'topics.compressed_image': '/rgbd/image/compressed',
                        'topics.depth': '/rgbd/depth', 'topics.camera_info': '/rgbd/camera_info',
                        'camera.depth_sync_tolerance': 0.1},
                       name='rgbd_brain')


def camera_info() -> CameraInfo:
    info = CameraInfo(header=Header(frame_id=FRAME), width=WIDTH, height=HEIGHT, distortion_model='plumb_bob')
    info.k = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
    return info


def depth_image(encoding: str, metres: float) -> Image:
    if encoding == '16UC1':
        pixels = np.full((HEIGHT, WIDTH), round(metres * 1000), dtype=np.uint16)
    else:
        pixels = np.full((HEIGHT, WIDTH), metres, dtype=np.float32)
    msg = Image(header=Header(frame_id=FRAME), height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=0,
                step=WIDTH * pixels.itemsize)
    msg.data = pixels.tobytes()
    return msg


def expected_position(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Pinhole back-projection of a point in [0, W] x [0, H] image coordinates (pixel centres at +0.5)."""
    return ((x - 0.5 - CX) * z / FX, (y - 0.5 - CY) * z / FY, z)


def rgbd(camera, depth_encoding: str, metres: float, compressed: bool = False):
    clock = camera._node.get_clock()
    # The camera fixture stopped the previous test's streams: none of their frames is stamped after this.
    switched = clock.now().nanoseconds * 1e-9
    rgb = test_image(WIDTH, HEIGHT, seed=5)
    if compressed:
        ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        colour = CompressedImage(header=Header(frame_id=FRAME), format='jpeg', data=jpeg.tobytes())
        colour_pub = camera.publisher(CompressedImage, '/rgbd/image/compressed')
    else:
        colour = rgb_to_image_msg(rgb, Header(frame_id=FRAME))
        colour_pub = camera.publisher(Image, '/rgbd/image')
    camera.set((colour_pub, colour), (camera.publisher(Image, '/rgbd/depth'), depth_image(depth_encoding, metres)),
               (camera.publisher(CameraInfo, '/rgbd/camera_info'), camera_info()))
    camera.start()
    # Frames of an earlier test may still be fresh in the node's cache: goals ask for frames younger than FRESH,
    # which only this camera can deliver once its streams reach the node. Wait until they do (every publisher
    # matched by every subscriber of its topic: the brain) and the earlier frames are older than FRESH.
    node = camera._node
    assert wait_until(lambda: all(0 < node.count_subscribers(p.topic_name) <= p.get_subscription_count()
                                  for p, _ in camera._messages), 30.0), 'the camera never matched the brain'
    assert wait_until(lambda: clock.now().nanoseconds * 1e-9 - switched > FRESH, 30.0)
    return rgb


class Received(list):
    """Messages a subscription received; .subscription is the subscription."""

    subscription = None


def collect(node, msg_type, topic: str, qos=10) -> Received:
    received = Received()
    received.subscription = node.create_subscription(msg_type, topic, received.append, qos)
    return received


@pytest.mark.parametrize('encoding, metres', [('16UC1', 1.5), ('32FC1', 0.75)])
def test_points_are_lifted_with_depth_and_camera_info(brain, camera, encoding, metres):
    rgbd(camera, encoding, metres)
    outcome = brain.query('point', 'the cup', max_image_age=FRESH)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    answer = outcome.answer
    assert answer.info.header.frame_id == FRAME and answer.info.image_source == '/rgbd/image'
    assert len(answer.points_3d) == len(answer.points) >= 1, answer.info.status.message
    for pixel, lifted in zip(answer.points, answer.points_3d):
        assert lifted.valid and lifted.depth == pytest.approx(metres)
        ex, ey, ez = expected_position(pixel.x, pixel.y, metres)
        position = lifted.position
        assert (position.x, position.y, position.z) == (pytest.approx(ex, abs=1e-6), pytest.approx(ey, abs=1e-6),
                                                        pytest.approx(ez, abs=1e-6))


def test_trajectory_becomes_a_path_in_the_camera_frame(brain, camera):
    rgbd(camera, '32FC1', 2.0)
    outcome = brain.query('trajectory', 'move the cup left', max_image_age=FRESH)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    answer = outcome.answer
    valid = [p for p in answer.points_3d if p.valid]
    assert valid and len(answer.path.poses) == len(valid)
    assert answer.path.header.frame_id == FRAME
    for pose, lifted in zip(answer.path.poses, valid):
        assert pose.header.frame_id == FRAME and pose.pose.orientation.w == 1.0
        assert (pose.pose.position.x, pose.pose.position.z) == (lifted.position.x, lifted.position.z)


def test_box_centre_is_lifted(brain, camera):
    rgbd(camera, '16UC1', 1.2)
    outcome = brain.query('ground', 'the plate', max_image_age=FRESH)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    answer = outcome.answer
    assert answer.has_box and answer.center_3d.valid, (answer.info.status.message, answer.center, answer.center_3d)
    ex, ey, ez = expected_position(answer.center.x, answer.center.y, 1.2)
    assert answer.center_3d.position.x == pytest.approx(ex, abs=1e-6)
    assert answer.center_3d.position.z == pytest.approx(ez, abs=1e-6)


def test_compressed_frames_are_used(brain, camera, ros_client):
    images = collect(ros_client.node, Image, '/rgbd_brain/annotated_image')
    rgbd(camera, '16UC1', 1.0, compressed=True)
    # The node draws the annotated image only for a subscriber: this one must have matched first.
    assert wait_until(lambda: images.subscription.get_publisher_count() > 0, 30.0), 'the output never matched'
    outcome = brain.query('point', 'the cup', max_image_age=FRESH)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    info = outcome.answer.info
    assert info.image_source == '/rgbd/image/compressed'
    assert (info.original_width, info.original_height) == (WIDTH, HEIGHT)
    # The camera's JPEG went to the server unchanged (320x240 only rounds to 308x252); the annotated image
    # decodes it on its own thread.
    assert (info.model_width, info.model_height) == (308, 252)
    assert wait_until(lambda: any((m.width, m.height) == (WIDTH, HEIGHT) for m in images), 5.0), 'no annotated image'


def test_markers_and_annotated_image_show_the_answer(brain, camera, ros_client):
    node = ros_client.node
    markers = collect(node, MarkerArray, '/rgbd_brain/markers')
    images = collect(node, Image, '/rgbd_brain/annotated_image')
    rgb = rgbd(camera, '32FC1', 1.0)
    # The subscriptions must have matched the brain's publishers before the answer is published.
    assert wait_until(lambda: markers.subscription.get_publisher_count() > 0
                      and images.subscription.get_publisher_count() > 0, 30.0), 'the outputs never matched'
    outcome = brain.query('point', 'the cup', max_image_age=FRESH)
    assert outcome.status == SUCCEEDED
    answer = outcome.answer
    assert any(p.valid for p in answer.points_3d), answer.info.status.message
    assert wait_until(lambda: markers, 5.0), 'no markers'
    assert wait_until(lambda: images, 5.0), 'no annotated image'

    array = markers[-1].markers
    assert array[0].action == Marker.DELETEALL
    spheres = [m for m in array if m.type == Marker.SPHERE_LIST]
    assert len(spheres) == 1 and spheres[0].header.frame_id == FRAME and spheres[0].ns == 'robobrain/points'
    assert [(p.x, p.y, p.z) for p in spheres[0].points] == [
        (p.position.x, p.position.y, p.position.z) for p in answer.points_3d if p.valid]
    labels = [m for m in array if m.type == Marker.TEXT_VIEW_FACING]
    assert len(labels) == len(spheres[0].points)

    drawn = image_to_rgb(images[-1])
    assert images[-1].header.frame_id == FRAME and drawn.shape == rgb.shape
    colour = np.array(annotate.POINT_COLOUR, dtype=np.uint8)
    radius = annotate.mark_radius((WIDTH, HEIGHT))
    for point in answer.points:
        x, y = min(int(point.x), WIDTH - 1), min(int(point.y), HEIGHT - 1)
        window = drawn[max(0, y - radius - 2):y + radius + 3, max(0, x - radius - 2):x + radius + 3]
        assert (window == colour).all(axis=-1).any(), f'no point mark near ({x}, {y})'
    band = annotate.title_band_height((WIDTH, HEIGHT))
    assert (drawn[:band] != rgb[:band]).any() and (drawn[band:] != rgb[band:]).any()


def test_task_topic_answers_on_the_output_topic(brain, camera, ros_client):
    node = ros_client.node
    answers = collect(node, PointsAnswer, '/rgbd_brain/points', LATCHED)
    rgbd(camera, '16UC1', 1.0)
    publisher = node.create_publisher(String, '/rgbd_brain/task', 10)
    assert wait_until(lambda: publisher.get_subscription_count() > 0, 5.0)
    publisher.publish(String(data='the topic cup'))
    assert wait_until(lambda: any(a.info.instruction == 'the topic cup' for a in answers), 60.0)
    answer = next(a for a in answers if a.info.instruction == 'the topic cup')
    assert answer.info.status.code == QueryStatus.OK and answer.info.task == 'pointing'
    assert answer.info.header.frame_id == FRAME and answer.points


def test_cancel_aborts_the_server_request_and_frees_the_slot(start_brain, vllm_server):
    forced = 3000   # tokens the server would generate without the cancel (about 3 s of the tiny model)
    brain = start_brain({'server.base_urls': [vllm_server.base_url], 'model.structured_outputs': False,
                         'model.max_tokens': forced, 'model.extra_body': json.dumps({'min_tokens': forced}),
                         'model.temperature': 0.0, 'queries.max_concurrent': 1, 'topics.image': ''},
                        name='cancel_brain')

    def generated() -> float:
        return sum(v for k, v in vllm_server.metrics().items() if k.startswith('vllm:generation_tokens_total'))

    def running() -> list[float]:
        return [v for k, v in vllm_server.metrics().items() if k.startswith('vllm:num_requests_running')]

    before = generated()
    handle = brain.send('point', brain.goal('point', 'the cup', image=rgb_to_image_msg(test_image(), Header())))
    assert handle.wait_accepted(10.0), brain.process.log()[-3000:]
    assert wait_until(lambda: any(f.tokens > 0 for f in handle.outcome.feedback), 30.0), 'generation never started'
    handle.cancel()
    outcome = handle.wait(30.0)
    assert outcome.status == CANCELED and outcome.answer.info.status.code == QueryStatus.CANCELED
    # Once the goal is canceled the server must stop generating for it: had it not aborted the request, it would
    # run until it had generated `forced` tokens. It is no longer running, and it stopped short of that.
    assert wait_until(lambda: running() and sum(running()) == 0, 30.0, period=0.2), running()
    assert generated() - before < forced, 'the request ran to its full length'
    # max_concurrent is 1: a new goal can only generate if the canceled one gave its slot back.
    after = brain.send('point', brain.goal('point', 'again', image=rgb_to_image_msg(test_image(), Header())))
    assert wait_until(lambda: any(f.tokens > 0 for f in after.outcome.feedback), 30.0), 'the slot was not freed'
    after.cancel()
    assert after.wait(30.0).status == CANCELED


def test_no_frame_aborts_with_no_image(start_brain, vllm_server):
    brain = start_brain({'server.base_urls': [vllm_server.base_url], 'topics.image': '/nobody/publishes/this',
                         'topics.compressed_image': ''}, name='blind_brain')
    outcome = brain.query('point', 'the cup', timeout=1.0)
    message = outcome.answer.info.status.message
    assert outcome.status == ABORTED and outcome.answer.info.status.code == QueryStatus.NO_IMAGE, message
    assert '/nobody/publishes/this' in message
    # It waited for the goal's own 1 s timeout (what was left of it), which the message names, not the node's
    # default 60 s.
    waited = re.search(r'within the goal timeout \(([0-9.e+-]+) s\)', message)
    assert waited and float(waited.group(1)) <= 1.0, message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_unreachable_server_node_stays_up_and_says_so(start_brain, ros_client):
    url = f'http://127.0.0.1:{free_port()}/v1'
    diagnostics = collect(ros_client.node, DiagnosticArray, '/diagnostics')
    brain = start_brain({'server.base_urls': [url], 'server.health_period': 0.5}, name='lonely_brain')

    def server_status():
        for array in reversed(diagnostics):
            for status in array.status:
                if status.name == '/lonely_brain: model server':
                    return status
        return None

    assert wait_until(lambda: server_status() is not None, 10.0)
    status = server_status()
    assert status.level == DiagnosticStatus.ERROR and 'unreachable' in status.message
    # SERVER_UNREACHABLE, not TIMEOUT: the goal ended on the unreachable server, not on its goal timeout.
    outcome = brain.query('point', 'the cup', image=rgb_to_image_msg(test_image(), Header()))
    assert outcome.status == ABORTED and outcome.answer.info.status.code == QueryStatus.SERVER_UNREACHABLE, \
        outcome.answer.info.status
    assert brain.process.alive()
    assert 'unreachable' in brain.process.log()
