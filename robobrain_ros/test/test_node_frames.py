"""Answers a robot can act on, through a real node process: two cameras in one node, answers in a target frame
looked up at the image's stamp, NO_TRANSFORM that keeps the pixel answer, standard messages (~/poses), and
RoboBrain 2.5's own depths lifted with camera_info.

The node is the real brain node (brain_node.main) with a STAND-IN for tf2 (stand_in_transforms_brain.py: tf2 has
no wheels, so CI cannot run it; the tf2 adapter is run by hand, docs/FRAMES.md). The model server is the
scripted server: these tests need answer points known in advance, which a random-weight model cannot give. It
answers in RoboBrain 2.5's 0..1000 coordinates (model.family robobrain2.5), chosen to fall on pixel centres.
"""

from __future__ import annotations

import base64
import io
import json
import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseArray
from PIL import Image as PILImage
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from robobrain_interfaces.msg import LiftedPoint, QueryStatus
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, ABORTED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED
NAME = 'frames_brain'
NS = '/frames_test'
HALF = math.sqrt(0.5)
# REP 103: the wrist camera's optical frame at (0.2, 0, 0.5) in base_link, looking along base_link's x.
WRIST_IN_BASE = {'translation': [0.2, 0.0, 0.5], 'rotation': [-0.5, 0.5, -0.5, 0.5]}
CAMERAS = {   # name -> (width, height, optical frame, depth topic or '')
    'head': (640, 480, 'head_color_optical_frame', ''),
    'wrist': (320, 240, 'wrist_color_optical_frame', f'{NS}/wrist/depth'),
}
DEPTH = 1.0             # [m] the wrist camera sees a wall 1 m in front of it
FOCAL = 200.0           # [px] both cameras
# Two pixel centres of each image, as fractions of its size: its principal point and 100 px right, 100 px up.
PIXELS = {name: [(w / 2 + 0.5, h / 2 + 0.5), (w / 2 + 100.5, h / 2 - 99.5)] for name, (w, h, _, _) in CAMERAS.items()}
MODEL_DEPTHS = (0.8, 1.6)   # [m] the depths a RoboBrain 2.5 trajectory gives its two waypoints


def relative(name: str) -> list[tuple[float, float]]:
    width, height = CAMERAS[name][:2]
    return [(x * 1000 / width, y * 1000 / height) for x, y in PIXELS[name]]


def point_text(name: str) -> str:
    return '[' + ', '.join(f'({x:.10f}, {y:.10f})' for x, y in relative(name)) + ']'


def trajectory_text(name: str) -> str:
    return '[' + ', '.join(f'({x:.10f}, {y:.10f}, {d})' for (x, y), d in zip(relative(name), MODEL_DEPTHS)) + ']'


@pytest.fixture(scope='module')
def server():
    # Both cameras' answers fall on the same relative pixels: the head's answer is scaled to 640x480.
    with ScriptedServer(default=Reply(text=point_text('wrist'), chunks=2)) as scripted:
        scripted.rule('follow the edge', Reply(text=trajectory_text('head'), chunks=2))
        yield scripted


@pytest.fixture(scope='module')
def lookups(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('frames') / 'lookups.jsonl'


@pytest.fixture(scope='module')
def brain(start_brain, server, lookups):
    params = {'server.base_urls': [server.base_url], 'model.family': 'robobrain2.5', 'queries.max_image_age': 2.0,
              'cameras.names': ['head', 'wrist'], 'frames.target_frame': 'base_link'}
    for name, (_, _, _, depth) in CAMERAS.items():
        params.update({f'cameras.{name}.image': f'{NS}/{name}/image', f'cameras.{name}.compressed_image': '',
                       f'cameras.{name}.camera_info': f'{NS}/{name}/camera_info', f'cameras.{name}.depth': depth})
    stand_in = json.dumps({'transforms': {'base_link<-wrist_color_optical_frame': WRIST_IN_BASE},
                           'record': str(lookups)})
    command = [sys.executable, str(Path(__file__).with_name('stand_in_transforms_brain.py'))]
    return start_brain(params, name=NAME, command=command, env={'ROBOBRAIN_STAND_IN_TRANSFORMS': stand_in})


def camera_info(name: str) -> CameraInfo:
    width, height, frame, _ = CAMERAS[name]
    info = CameraInfo(header=Header(frame_id=frame), width=width, height=height, distortion_model='plumb_bob')
    # K puts pixel centres at integers: the principal point pixel (w/2, h/2) has its centre at w/2 + 0.5.
    info.k = [FOCAL, 0.0, width / 2, 0.0, FOCAL, height / 2, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    info.p = [FOCAL, 0.0, width / 2, 0.0, 0.0, FOCAL, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


@pytest.fixture(scope='module')
def scene(module_camera, brain):
    """Both cameras stream colour and camera_info, the wrist also depth, all at 5 Hz, stamped alike."""
    camera = module_camera
    messages = []
    for index, (name, (width, height, frame, depth_topic)) in enumerate(CAMERAS.items()):
        colour = rgb_to_image_msg(test_image(width, height, seed=index), Header(frame_id=frame))
        messages += [(camera.publisher(Image, f'{NS}/{name}/image'), colour),
                     (camera.publisher(CameraInfo, f'{NS}/{name}/camera_info'), camera_info(name))]
        if depth_topic:
            depth = Image(header=Header(frame_id=frame), height=height, width=width, encoding='32FC1', step=width * 4,
                          data=np.full((height, width), DEPTH, np.float32).tobytes())
            messages.append((camera.publisher(Image, depth_topic), depth))
    camera.set(*messages)
    camera.start(rate_hz=5.0)
    # Until discovery has matched depth and camera_info, an answer has no 3D points: wait for a lifted one.
    for _ in range(40):
        outcome = brain.query('point', 'the wall', camera='wrist', target_frame='wrist_color_optical_frame')
        if outcome.status == SUCCEEDED and any(p.valid for p in outcome.answer.points_3d):
            break
        time.sleep(0.25)
    else:
        pytest.fail(f'the wrist camera never gave a lifted answer: {outcome.answer.info.status}')
    yield camera
    camera.stop()


def sent_size(server: ScriptedServer) -> tuple[int, int]:
    """Size of the image in the newest request the server received."""
    content = server.requests[-1].body['messages'][0]['content']
    url = next(part['image_url']['url'] for part in content if part['type'] == 'image_url')
    return PILImage.open(io.BytesIO(base64.b64decode(url.split(',', 1)[1]))).size


def positions(points) -> list[tuple[float, float, float]]:
    return [(p.position.x, p.position.y, p.position.z) for p in points]


def test_a_goal_naming_the_wrist_camera_gets_the_wrist_frame_at_the_server(brain, server, scene):
    outcome = brain.query('point', 'the wall', camera='wrist')
    assert outcome.status == SUCCEEDED, outcome.answer.info.status
    info = outcome.answer.info
    assert (info.camera, info.image_source, info.header.frame_id) == ('wrist', f'{NS}/wrist/image',
                                                                       'wrist_color_optical_frame')
    # 320x240 is a multiple of 28 neither way: the budget rounds it to 308x252, never to the head's 4:3 640x480.
    assert sent_size(server) == (308, 252)
    assert [(p.x, p.y) for p in outcome.answer.points] == [pytest.approx(p) for p in PIXELS['wrist']]


def test_a_goal_without_a_camera_uses_the_first_one(brain, server, scene):
    outcome = brain.query('ask', 'what is there?')
    assert outcome.answer.info.camera == 'head' and outcome.answer.info.image_source == f'{NS}/head/image'
    assert sent_size(server) == (644, 476)


def test_an_unknown_camera_ends_the_goal_bad_goal_with_the_list(brain, server, scene):
    sent = len(server.requests)
    outcome = brain.query('point', 'the wall', camera='belly')
    assert outcome.status == ABORTED
    status = outcome.answer.info.status
    assert status.code == QueryStatus.BAD_GOAL
    assert status.message == "unknown camera 'belly': this node has head, wrist (cameras.names)"
    assert len(server.requests) == sent


def test_the_3d_answer_is_in_the_target_frame_at_the_images_stamp(brain, scene, lookups):
    poses: list[PoseArray] = []
    arrived = threading.Event()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def on_poses(msg: PoseArray) -> None:
        poses.append(msg)
        arrived.set()

    subscription = brain.node.create_subscription(PoseArray, f'/{NAME}/poses', on_poses, latched)
    try:
        arrived.wait(10.0)    # the latched poses of the scene's warm-up goal
        arrived.clear()
        outcome = brain.query('point', 'the wall', camera='wrist', target_frame='base_link')
        assert outcome.status == SUCCEEDED, outcome.answer.info.status
        info = outcome.answer.info
        assert info.frame_3d == 'base_link' and info.header.frame_id == 'wrist_color_optical_frame'
        # Optical (0, 0, 1) and (0.5, -0.5, 1) [m] -> base_link: 1 m ahead of the camera at (0.2, 0, 0.5).
        assert positions(outcome.answer.points_3d) == [pytest.approx((1.2, 0.0, 0.5)), pytest.approx((1.2, -0.5, 1.0))]
        assert [p.depth_source for p in outcome.answer.points_3d] == [LiftedPoint.DEPTH_IMAGE] * 2
        # The node asked for that transform at the image's stamp, not at "now".
        stamp = info.header.stamp.sec + info.header.stamp.nanosec * 1e-9
        last = json.loads(lookups.read_text().splitlines()[-1])
        assert (last['target'], last['source']) == ('base_link', 'wrist_color_optical_frame')
        assert last['stamp'] == pytest.approx(stamp, abs=1e-6)
        # The same points as a standard PoseArray, stamped as the image, in base_link.
        assert arrived.wait(10.0), 'no PoseArray on ~/poses'
        latest = poses[-1]
        assert latest.header.frame_id == 'base_link' and latest.header.stamp == info.header.stamp
        assert [(p.position.x, p.position.y, p.position.z) for p in latest.poses] == positions(outcome.answer.points_3d)
    finally:
        brain.node.destroy_subscription(subscription)


def test_the_parameters_target_frame_applies_when_the_goal_names_none(brain, scene):
    outcome = brain.query('point', 'the wall', camera='wrist')
    assert outcome.status == SUCCEEDED and outcome.answer.info.frame_3d == 'base_link'
    assert positions(outcome.answer.points_3d)[0] == pytest.approx((1.2, 0.0, 0.5))


def test_the_optical_frame_as_target_needs_no_transform(brain, scene, lookups):
    before = lookups.read_text()
    outcome = brain.query('point', 'the wall', camera='wrist', target_frame='wrist_color_optical_frame')
    assert outcome.answer.info.frame_3d == 'wrist_color_optical_frame'
    assert positions(outcome.answer.points_3d) == [pytest.approx((0.0, 0.0, 1.0)), pytest.approx((0.5, -0.5, 1.0))]
    assert lookups.read_text() == before


def test_no_transform_keeps_the_pixel_answer_and_says_why(brain, scene):
    outcome = brain.query('point', 'the wall', camera='wrist', target_frame='map')
    assert outcome.status == ABORTED
    answer = outcome.answer
    assert answer.info.status.code == QueryStatus.NO_TRANSFORM
    message = answer.info.status.message
    assert message.startswith("no 3D points in 'map': no transform from 'wrist_color_optical_frame' at the image "
                              'stamp '), message
    assert '"map" passed to lookupTransform argument target_frame does not exist' in message
    assert [(p.x, p.y) for p in answer.points] == [pytest.approx(p) for p in PIXELS['wrist']]
    assert answer.points_3d == [] and answer.info.frame_3d == ''


def test_robobrain_2_5_trajectory_depths_lift_without_a_depth_image(brain, scene):
    # The head camera has no depth topic: the model's own depths and camera_info give the 3D waypoints.
    outcome = brain.query('trajectory', 'follow the edge', camera='head', target_frame='head_color_optical_frame')
    assert outcome.status == SUCCEEDED, outcome.answer.info.status
    answer = outcome.answer
    assert [p.depth_source for p in answer.points_3d] == [LiftedPoint.DEPTH_MODEL] * 2
    # (0, 0) * 0.8 and (100, -100) / 200 * 1.6 [m]
    assert positions(answer.points_3d) == [pytest.approx((0.0, 0.0, 0.8)), pytest.approx((0.8, -0.8, 1.6))]
    assert answer.info.frame_3d == 'head_color_optical_frame'
    assert answer.path.header.frame_id == 'head_color_optical_frame' and len(answer.path.poses) == 2
    assert "3D points from the model's depths" in answer.info.status.message


def test_without_tf2_a_target_frame_parameter_fails_configure_naming_what_to_install(start_brain, server):
    try:
        import tf2_ros  # noqa: F401
        pytest.skip('tf2_ros is installed here: this test is about a machine without it')
    except ImportError:
        pass
    from robobrain_ros.harness.brain_process import BrainProcess, wait_until
    with BrainProcess({'server.base_urls': [server.base_url], 'frames.target_frame': 'base_link'},
                      name='frames_without_tf2') as process:
        assert wait_until(lambda: 'configure failed' in process.log(), 30.0), process.log()
        assert ("configure failed: frames.target_frame is 'base_link', but tf2_ros is not installed, and target "
                'frames need it: install it with your ROS 2 (apt install ros-$ROS_DISTRO-tf2-ros-py') in process.log()


def test_every_parameter_of_the_cameras_has_a_value(brain):
    # A declared parameter without a value makes the get_parameters service answer nothing (`ros2 param dump`).
    from rcl_interfaces.srv import GetParameters, ListParameters
    from test_node_lifecycle import call

    names = call(brain.node, ListParameters, f'/{NAME}/list_parameters', ListParameters.Request()).result.names
    values = call(brain.node, GetParameters, f'/{NAME}/get_parameters', GetParameters.Request(names=names)).values
    assert {'cameras.names', 'cameras.wrist.depth', 'cameras.wrist.depth_registered'} <= set(names)
    assert len(values) == len(names)
    by_name = dict(zip(names, values))
    assert list(by_name['cameras.names'].string_array_value) == ['head', 'wrist']
    assert by_name['cameras.wrist.depth_wait'].double_value == 0.2     # camera.depth_wait, not overridden
