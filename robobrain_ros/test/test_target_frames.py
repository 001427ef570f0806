"""Answers in the robot's frames, pure: the transform arithmetic (tf2's convention, p_target = R p_source + t), the
stamp chosen for the lookup, and RoboBrain 2.5's own depths lifted with camera_info. No ROS here."""

import math

import numpy as np
import pytest

from robobrain_ros.protocol.answer import AnswerPoint
from robobrain_ros.protocol.camera_model import CameraModel
from robobrain_ros.protocol.lift import DepthSource, LiftedPoint, lift_with_model_depth, prefer_measured
from robobrain_ros.protocol.rigid_transform import RigidTransform, lookup_stamp, transform_lifted

HALF = math.sqrt(0.5)
# REP 103: a camera optical frame (z forward, x right, y down) mounted at (0.2, 0, 0.5) in base_link, looking
# along base_link's x: optical z -> base x, optical x -> base -y, optical y -> base -z.
OPTICAL_IN_BASE = RigidTransform((0.2, 0.0, 0.5), (-0.5, 0.5, -0.5, 0.5))


def test_identity_keeps_points():
    points = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    assert RigidTransform().apply(points) == pytest.approx(points)


def test_rotation_then_translation_as_tf2_does():
    yaw_90 = RigidTransform((1.0, 0.0, 0.0), (0.0, 0.0, HALF, HALF))
    # (1, 0, 0) turned 90 degrees about z is (0, 1, 0); then moved by (1, 0, 0).
    assert yaw_90.apply(np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx([1.0, 1.0, 0.0])


def test_the_optical_frame_convention_lands_in_front_of_the_robot():
    # 2 m straight ahead of the camera, 0.1 m to the image's right and 0.3 m down.
    ahead = OPTICAL_IN_BASE.apply(np.array([[0.1, 0.3, 2.0]]))[0]
    assert ahead == pytest.approx([2.2, -0.1, 0.2])


def test_a_rotation_matrix_is_orthonormal_and_the_quaternion_must_be_unit():
    r = RigidTransform((0, 0, 0), (0.1, -0.7, 0.3, math.sqrt(1 - 0.01 - 0.49 - 0.09))).matrix()
    assert r @ r.T == pytest.approx(np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='not a rigid transform'):
        RigidTransform((0, 0, 0), (0, 0, 0, 2.0))
    with pytest.raises(ValueError, match='not a rigid transform'):
        RigidTransform((math.nan, 0, 0))


def test_transform_lifted_moves_valid_points_only_and_keeps_depth_and_source():
    valid = LiftedPoint(0.1, 0.3, 2.0, True, 2.0, DepthSource.MODEL)
    invalid = LiftedPoint(0.0, 0.0, 0.0, False, math.nan)
    moved, still_invalid = transform_lifted([valid, invalid], OPTICAL_IN_BASE)
    assert (moved.x, moved.y, moved.z) == pytest.approx((2.2, -0.1, 0.2))
    assert moved.valid and moved.depth == 2.0 and moved.source is DepthSource.MODEL
    assert still_invalid is invalid


@pytest.mark.parametrize('header, cached, from_goal, expected', [
    (12.5, 13.0, False, 12.5),     # the camera's stamp: when the image was taken, not when it arrived
    (0.0, 13.0, False, 13.0),      # a driver that leaves stamps at zero: the frame cache's receipt time
    (12.5, None, True, 12.5),      # a goal image with a stamp
    (0.0, 99.0, True, None),       # a goal image without one: no time to look up, no guess
    (0.0, None, False, None),
])
def test_the_lookup_uses_the_images_stamp(header, cached, from_goal, expected):
    assert lookup_stamp(header, cached, from_goal) == expected


# A 640x480 pinhole camera: fx = fy = 500, principal point at the centre of pixel (320, 240).
CAMERA = CameraModel.from_fields(640, 480, [500.0, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1], (), 'plumb_bob', [0.0] * 12)


def test_model_depth_lifts_with_the_calibration():
    points = [AnswerPoint(320.5, 240.5), AnswerPoint(570.5, 115.5), AnswerPoint(10.0, 10.0)]
    lifted = lift_with_model_depth(points, [1.0, 2.0, math.nan], (640, 480), CAMERA, rectified=False)
    assert lifted[0] == LiftedPoint(0.0, 0.0, 1.0, True, 1.0, DepthSource.MODEL)
    # (570 - 320) / 500 * 2 = 1.0 right, (115 - 240) / 500 * 2 = -0.5 up.
    assert (lifted[1].x, lifted[1].y, lifted[1].z) == pytest.approx((1.0, -0.5, 2.0))
    assert not lifted[2].valid and lifted[2].source is DepthSource.NONE   # the model gave no depth there


@pytest.mark.parametrize('depth', [0.0, -1.0, math.inf])
def test_model_depth_that_is_not_a_distance_is_invalid(depth):
    (lifted,) = lift_with_model_depth([AnswerPoint(320.5, 240.5)], [depth], (640, 480), CAMERA, False)
    assert not lifted.valid


def test_model_depth_needs_camera_info_of_the_image():
    with pytest.raises(ValueError, match='camera_info is for 640x480, but the image is 320x240'):
        lift_with_model_depth([AnswerPoint(1, 1)], [1.0], (320, 240), CAMERA, False)
    with pytest.raises(ValueError, match='2 model depths for 1 points'):
        lift_with_model_depth([AnswerPoint(1, 1)], [1.0, 2.0], (640, 480), CAMERA, False)


def test_the_depth_image_wins_and_the_model_fills_its_holes():
    measured = [LiftedPoint(0, 0, 1.5, True, 1.5, DepthSource.IMAGE), LiftedPoint(0, 0, 0, False, math.nan)]
    model = [LiftedPoint(0, 0, 1.4, True, 1.4, DepthSource.MODEL), LiftedPoint(0, 0, 2.0, True, 2.0, DepthSource.MODEL)]
    assert [p.source for p in prefer_measured(measured, model)] == [DepthSource.IMAGE, DepthSource.MODEL]
