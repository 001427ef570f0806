"""lift_answer_points: which depth frame and camera_info an image may be lifted with, and the reason when none.

A real FrameCache with messages built from plain objects (the module reads message fields only), so these run
without ROS. The node-level counterparts, through a real node process, are in test_node_lifting.py.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from lift_scene_support import PLANE, Lens, render_depth, true_points

from robobrain_ros.node.depth_lifting import LiftSettings, lift_answer_points
from robobrain_ros.node.frame_cache import CachedFrame, FrameCache
from robobrain_ros.protocol.answer import AnswerPoint

WIDTH, HEIGHT = 160, 120
FRAME = 'rgbd_color_optical_frame'
STAMP = 1_700_000_000.25          # [s] the camera's frames, colour and depth alike
LENS = Lens(130.0, 129.0, 79.6, 60.8, 'plumb_bob', (-0.28, 0.09, 0.004, -0.003, -0.012))
POINTS = [AnswerPoint(2.5, 2.5), AnswerPoint(157.5, 117.5), AnswerPoint(80.5, 60.5)]
SETTINGS = LiftSettings(sync_tolerance=0.05, depth_wait=0.0, window=5, depth_registered=False, rectified=False)


def header(stamp: float, frame_id: str = FRAME) -> SimpleNamespace:
    sec = math.floor(stamp)
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=round((stamp - sec) * 1e9)), frame_id=frame_id)


def depth_message(stamp: float, frame_id: str = FRAME, encoding: str = '32FC1') -> SimpleNamespace:
    pixels = render_depth(LENS, PLANE, WIDTH, HEIGHT).astype(np.float32)
    return SimpleNamespace(header=header(stamp, frame_id), height=HEIGHT, width=WIDTH, encoding=encoding,
                           is_bigendian=0, step=WIDTH * 4, data=pixels.tobytes())


def camera_info(frame_id: str = FRAME, p=None) -> SimpleNamespace:
    return SimpleNamespace(header=header(STAMP, frame_id), width=WIDTH, height=HEIGHT, k=LENS.k, d=list(LENS.d),
                           distortion_model=LENS.model, p=[0.0] * 12 if p is None else p)


def frames(depth=None, info=None, depth_stamp: float = STAMP) -> FrameCache:
    """A cache holding one depth frame and camera_info (each: given, or that of the camera)."""
    cache = FrameCache()
    depth = depth_message(depth_stamp) if depth is None else depth
    cache.put_depth(CachedFrame(msg=depth, compressed=False, topic='/rgbd/depth', stamp=depth_stamp,
                                received=depth_stamp))
    cache.put_camera_info(camera_info() if info is None else info)
    return cache


def assert_on_the_plane(lifted) -> None:
    positions = np.array([(p.x, p.y, p.z) for p in lifted])
    pixels = np.array([(p.x, p.y) for p in POINTS])
    assert all(p.valid for p in lifted)
    assert np.linalg.norm(positions - true_points(LENS, PLANE, pixels), axis=1).max() < 2e-3


def lift(cache: FrameCache, colour_header=None, from_goal: bool = False, settings: LiftSettings = SETTINGS,
         **kwargs):
    colour_header = header(STAMP) if colour_header is None else colour_header
    return lift_answer_points(POINTS, colour_header, (WIDTH, HEIGHT), from_goal, cache, settings, **kwargs)


def test_camera_frame_with_its_depth_and_camera_info_lifts_onto_the_plane():
    lifted, reason = lift(frames())
    assert reason == ''
    assert_on_the_plane(lifted)


def test_no_points_no_reason():
    assert lift_answer_points([], header(STAMP), (WIDTH, HEIGHT), False, frames(), SETTINGS) == ([], '')


def test_goal_image_without_a_stamp_is_not_lifted_with_the_live_depth():
    # The live depth frame is "now", as a stamp-0 goal image's age is: the old code paired them.
    lifted, reason = lift(frames(), header(0.0), from_goal=True)
    assert lifted == [] and 'the goal image has no stamp' in reason


def test_goal_image_with_a_stamp_and_the_cameras_frame_lifts():
    lifted, reason = lift(frames(), header(STAMP + 0.01), from_goal=True)
    assert reason == ''
    assert_on_the_plane(lifted)


def test_image_of_another_frame_than_camera_info_is_not_lifted():
    lifted, reason = lift(frames(), header(STAMP, 'usb_cam_optical_frame'), from_goal=True)
    assert lifted == []
    assert reason == (f"no 3D points: camera_info is for frame '{FRAME}', the image is in frame "
                      "'usb_cam_optical_frame'")


def test_depth_of_another_time_is_not_paired():
    lifted, reason = lift(frames(depth_stamp=STAMP - 0.2))
    assert lifted == [] and reason == 'no 3D points: no depth within 0.05 s of the image'


def test_depth_in_another_frame_is_lifted_only_when_registered():
    cache = frames(depth=depth_message(STAMP, 'rgbd_depth_optical_frame'))
    lifted, reason = lift(cache)
    assert lifted == []
    assert reason.startswith("no 3D points: the depth image is in frame 'rgbd_depth_optical_frame', the image in "
                             f"'{FRAME}'") and 'camera.depth_registered' in reason
    lifted, reason = lift(cache, settings=replace(SETTINGS, depth_registered=True))
    assert reason == ''
    assert_on_the_plane(lifted)


def test_camera_frames_without_stamps_pair_by_the_cache_stamp():
    """A driver that leaves stamps at zero: the frame cache stamps colour and depth with their receipt time."""
    lifted, reason = lift(frames(), header(0.0), colour_stamp=STAMP + 0.02)
    assert reason == ''
    assert_on_the_plane(lifted)


def test_missing_camera_info():
    cache = FrameCache()
    cache.put_depth(CachedFrame(depth_message(STAMP), compressed=False, topic='/rgbd/depth', stamp=STAMP,
                                received=STAMP))
    assert lift(cache) == ([], 'no 3D points: no camera_info received')


def test_rectified_setting_uses_p():
    # P of a rectified pinhole camera: the raw lens's depth image lifted through it is off the plane.
    p = [100.0, 0.0, 80.0, 0.0, 0.0, 100.0, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    lifted, reason = lift(frames(info=camera_info(p=p)), settings=replace(SETTINGS, rectified=True))
    assert reason == ''
    z = lifted[0].z
    assert (lifted[0].x, lifted[0].y) == pytest.approx(((2.0 - 80.0) * z / 100.0, (2.0 - 60.0) * z / 100.0))
    lifted, reason = lift(frames(), settings=replace(SETTINGS, rectified=True))
    assert lifted == [] and 'P is not set' in reason


@pytest.mark.parametrize('cache, words', [
    (frames(depth=depth_message(STAMP, encoding='mono8')), "unsupported depth encoding 'mono8'"),
    (frames(info=SimpleNamespace(**{**vars(camera_info()), 'distortion_model': 'fov'})),
     "unknown distortion model 'fov' with non-zero D"),
    (frames(info=SimpleNamespace(**{**vars(camera_info()), 'width': 40, 'height': 30})),
     'camera_info is for 40x30'),
])
def test_unusable_data_gives_the_reason(cache, words):
    lifted, reason = lift(cache)
    assert lifted == [] and reason.startswith('no 3D points: ') and words in reason
