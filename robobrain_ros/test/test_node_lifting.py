"""3D points through the real node: a tilted plane seen by a distorted RGB-D camera, lifted to millimetres, and
no 3D points (with the reason) whenever the depth and camera_info at hand do not belong to the image.

Real node processes, real rclpy, a real camera publisher (ros_fixtures.Camera). The model server is the
scripted server (robobrain_ros.harness.scripted_server), not vLLM: these tests need answer points they know in
advance, which a model with random weights cannot give. It answers every request with the same points, in
RoboBrain 2.5's 0..1000 coordinates (model.family robobrain2.5), chosen to fall on pixel centres.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Time
from lift_scene_support import PLANE, Lens, render_depth, true_points
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED = GoalStatus.STATUS_SUCCEEDED
NS = '/lift'
WIDTH, HEIGHT = 320, 240
FRAME = 'lift_color_optical_frame'
DEPTH_FRAME = 'lift_depth_optical_frame'
# A wide-angle camera with strong barrel distortion: pinhole lifting is centimetres off near the corners.
LENS = Lens(260.0, 258.0, 159.3, 121.6, 'plumb_bob', (-0.28, 0.09, 0.004, -0.003, -0.012))
# Pixel centres two pixels in from the corners (the median window stays whole), the middle, and one more.
PIXELS = [(2, 2), (317, 2), (2, 237), (317, 237), (160, 120), (60, 200)]
FRESH = 0.3     # [s] max_image_age of camera goals: only frames of the current test's camera qualify
RATE = 5.0      # [Hz] camera: 8 depth frames of history cover 1.6 s, longer than any query here
MILLIMETRES_2 = 2e-3


def answer_text() -> str:
    """The pixel centres above in 0..1000 coordinates: x * 1000 / 320 is exact, y * 1000 / 240 to 1e-10 px."""
    return '[' + ', '.join(f'({(x + 0.5) * 1000 / WIDTH:.10f}, {(y + 0.5) * 1000 / HEIGHT:.10f})'
                           for x, y in PIXELS) + ']'


@pytest.fixture(scope='module')
def server():
    with ScriptedServer(default=Reply(text=answer_text(), chunks=2)) as scripted:
        yield scripted


def params(server: ScriptedServer, **overrides) -> dict:
    values = {'server.base_urls': [server.base_url], 'model.family': 'robobrain2.5', 'queries.max_image_age': 2.0,
              'topics.image': f'{NS}/image', 'topics.compressed_image': '', 'topics.depth': f'{NS}/depth',
              'topics.camera_info': f'{NS}/camera_info', 'camera.depth_sync_tolerance': 0.05}
    values.update(overrides)
    return values


@pytest.fixture(scope='module')
def brain(start_brain, server):
    return start_brain(params(server), name='lift_brain')


@pytest.fixture(scope='module')
def registered_brain(start_brain, server):
    return start_brain(params(server, **{'camera.depth_registered': True}), name='lift_brain_registered')


@pytest.fixture(scope='module')
def plane_depth() -> np.ndarray:
    return render_depth(LENS, PLANE, WIDTH, HEIGHT).astype(np.float32)


def camera_info() -> CameraInfo:
    info = CameraInfo(header=Header(frame_id=FRAME), width=WIDTH, height=HEIGHT, distortion_model=LENS.model)
    info.k = LENS.k
    info.d = list(LENS.d)
    # A raw image: P is the rectified camera's (here simply K), which camera.rectified false must not use.
    info.p = [LENS.fx, 0.0, LENS.cx, 0.0, 0.0, LENS.fy, LENS.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def depth_message(pixels: np.ndarray, frame_id: str) -> Image:
    msg = Image(header=Header(frame_id=frame_id), height=HEIGHT, width=WIDTH, encoding='32FC1', is_bigendian=0,
                step=WIDTH * 4)
    msg.data = pixels.tobytes()
    return msg


def publish_scene(camera, depth: np.ndarray, depth_frame_id: str = FRAME) -> Image:
    """Colour, depth and camera_info of the plane, all stamped alike at RATE; returns the depth message (its
    stamp is the last one published)."""
    colour = rgb_to_image_msg(test_image(WIDTH, HEIGHT, seed=7), Header(frame_id=FRAME))
    depth_msg = depth_message(depth, depth_frame_id)
    camera.set((camera.publisher(Image, f'{NS}/image'), colour), (camera.publisher(Image, f'{NS}/depth'), depth_msg),
               (camera.publisher(CameraInfo, f'{NS}/camera_info'), camera_info()))
    camera.start(rate_hz=RATE)
    # Until discovery matches every stream, and while frames of an earlier test are still fresh, a goal could be
    # answered from other frames: FRESH keeps those out once this camera's streams flow.
    time.sleep(1.5)
    return depth_msg


def query(brain, **goal):
    """A point goal; asked again while discovery has not delivered depth or camera_info yet."""
    for _ in range(6):
        outcome = brain.query('point', 'the plane', wait_timeout=60.0, **goal)
        message = outcome.answer.info.status.message
        if 'no depth within' not in message and 'no camera_info' not in message:
            break
        time.sleep(0.5)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status
    assert [(p.x, p.y) for p in outcome.answer.points] == [pytest.approx((x + 0.5, y + 0.5)) for x, y in PIXELS]
    return outcome.answer


def assert_on_the_plane(answer) -> None:
    assert answer.info.status.message == '' and answer.info.header.frame_id == FRAME
    assert [p.valid for p in answer.points_3d] == [True] * len(PIXELS)
    lifted = np.array([(p.position.x, p.position.y, p.position.z) for p in answer.points_3d])
    pixels = np.array([(p.x, p.y) for p in answer.points])
    error = np.linalg.norm(lifted - true_points(LENS, PLANE, pixels), axis=1)
    assert error.max() < MILLIMETRES_2, error
    # The scene would catch a pinhole model: without D, the corner points are centimetres away.
    pinhole = Lens(LENS.fx, LENS.fy, LENS.cx, LENS.cy)
    ignoring_d = lifted[:4, 2:] * np.concatenate([pinhole.rays(pixels[:4] - 0.5), np.ones((4, 1))], axis=1)
    assert np.linalg.norm(ignoring_d - true_points(LENS, PLANE, pixels[:4]), axis=1).min() > 0.02


def assert_no_3d(answer, reason: str) -> None:
    assert answer.points_3d == [] and len(answer.points) == len(PIXELS)
    assert reason in answer.info.status.message, answer.info.status.message


def goal_image(stamp: Time, frame_id: str = FRAME) -> Image:
    return rgb_to_image_msg(test_image(WIDTH, HEIGHT, seed=7), Header(stamp=stamp, frame_id=frame_id))


def test_camera_frames_of_a_distorted_camera_lift_onto_the_plane(brain, camera, plane_depth):
    publish_scene(camera, plane_depth)
    assert_on_the_plane(query(brain, max_image_age=FRESH))


def test_depth_in_another_frame_is_not_paired(brain, camera, plane_depth):
    publish_scene(camera, plane_depth, depth_frame_id=DEPTH_FRAME)
    assert_no_3d(query(brain, max_image_age=FRESH),
                 f"the depth image is in frame '{DEPTH_FRAME}', the image in '{FRAME}'")


def test_registered_depth_in_another_frame_lifts(registered_brain, camera, plane_depth):
    publish_scene(camera, plane_depth, depth_frame_id=DEPTH_FRAME)
    assert_on_the_plane(query(registered_brain, max_image_age=FRESH))


def test_goal_image_without_a_stamp_gets_no_3d(brain, camera, plane_depth):
    publish_scene(camera, plane_depth)
    assert_no_3d(query(brain, image=goal_image(Time())), 'the goal image has no stamp')


def test_goal_image_of_another_camera_gets_no_3d(brain, camera, plane_depth):
    depth_msg = publish_scene(camera, plane_depth)
    stamp = depth_msg.header.stamp
    answer = query(brain, image=goal_image(Time(sec=stamp.sec, nanosec=stamp.nanosec), 'usb_cam_optical_frame'))
    assert_no_3d(answer, f"camera_info is for frame '{FRAME}', the image is in frame 'usb_cam_optical_frame'")


def test_goal_image_with_the_depth_frames_stamp_and_frame_lifts(brain, camera, plane_depth):
    depth_msg = publish_scene(camera, plane_depth)
    stamp = depth_msg.header.stamp   # a stamp the node has seen on a depth frame of this scene
    assert_on_the_plane(query(brain, image=goal_image(Time(sec=stamp.sec, nanosec=stamp.nanosec))))
