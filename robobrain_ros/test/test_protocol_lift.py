"""lift_points with a pinhole camera: back-projection with the median depth over valid pixels.

Distorted and rectified cameras, other depth resolutions and refusals: test_lift_scene.py.
"""

import math

import numpy as np
import pytest

from robobrain_ros.protocol.answer import AnswerPoint
from robobrain_ros.protocol.camera_model import CameraModel
from robobrain_ros.protocol.lift import DepthSource, LiftedPoint, lift_points

WIDTH, HEIGHT = 8, 6
K = [100.0, 0.0, 4.0, 0.0, 50.0, 3.0, 0.0, 0.0, 1.0]
CAMERA = CameraModel.from_fields(WIDTH, HEIGHT, K, (), 'plumb_bob', [0.0] * 12)
SIZE = (WIDTH, HEIGHT)


def lift(points, depth, camera, depth_unit, window=5):
    """lift_points on a raw image the size of the depth image."""
    return lift_points(points, SIZE, depth, depth_unit, camera, False, window)


def _centre(column: int, row: int) -> AnswerPoint:
    """Continuous coordinates of a pixel's centre."""
    return AnswerPoint(column + 0.5, row + 0.5)


def test_from_fields_reads_row_major_k_and_p():
    p = list(range(12))
    camera = CameraModel.from_fields(WIDTH, HEIGHT, K, [0.1, 0.2], 'plumb_bob', p)
    assert camera.k == ((100.0, 0.0, 4.0), (0.0, 50.0, 3.0), (0.0, 0.0, 1.0))
    assert camera.p == ((0.0, 1.0, 2.0, 3.0), (4.0, 5.0, 6.0, 7.0), (8.0, 9.0, 10.0, 11.0))
    assert camera.d == (0.1, 0.2) and camera.distortion_model == 'plumb_bob'
    assert CameraModel.from_fields(WIDTH, HEIGHT, [K[:3], K[3:6], K[6:]], [], '', p) == CameraModel.from_fields(
        WIDTH, HEIGHT, K, (), '', p)
    with pytest.raises(ValueError, match='9 values'):
        CameraModel.from_fields(WIDTH, HEIGHT, K[:8], (), 'plumb_bob', p)
    with pytest.raises(ValueError, match='P 12'):
        CameraModel.from_fields(WIDTH, HEIGHT, K, (), 'plumb_bob', p[:9])
    with pytest.raises(ValueError, match='size must be positive'):
        CameraModel.from_fields(0, HEIGHT, K, (), 'plumb_bob', p)


def test_uniform_millimetre_depth_gives_exact_point():
    depth = np.full((HEIGHT, WIDTH), 2000, np.uint16)
    (lifted,) = lift([_centre(6, 4)], depth, CAMERA, 0.001)
    # u = 6, v = 4: x = (6 - 4) * 2 / 100, y = (4 - 3) * 2 / 50
    assert lifted == LiftedPoint(pytest.approx(0.04), pytest.approx(0.04), pytest.approx(2.0), True, pytest.approx(2.0),
                                 DepthSource.IMAGE)


def test_metre_float_depth_gives_exact_point():
    depth = np.full((HEIGHT, WIDTH), 1.5, np.float32)
    (lifted,) = lift([_centre(1, 0)], depth, CAMERA, 1.0)
    assert (lifted.x, lifted.y, lifted.z) == pytest.approx(((1 - 4) * 1.5 / 100, (0 - 3) * 1.5 / 50, 1.5))
    assert lifted.valid and lifted.depth == pytest.approx(1.5)


def test_principal_point_lies_on_the_optical_axis():
    depth = np.full((HEIGHT, WIDTH), 3000, np.uint16)
    (lifted,) = lift([AnswerPoint(4.5, 3.5)], depth, CAMERA, 0.001)
    assert (lifted.x, lifted.y, lifted.z) == pytest.approx((0.0, 0.0, 3.0))


def test_holes_are_skipped_by_the_median_of_valid_depths():
    depth = np.zeros((HEIGHT, WIDTH), np.uint16)
    depth[3, 5], depth[4, 6], depth[5, 7] = 1000, 1200, 1100  # the point's own pixel (6, 4) is 1200
    depth[0, 0] = 9000  # outside the 3x3 window: ignored
    (lifted,) = lift([_centre(6, 4)], depth, CAMERA, 0.001, window=3)
    assert lifted.valid and lifted.z == pytest.approx(1.1)
    (single,) = lift([_centre(6, 4)], depth, CAMERA, 0.001, window=1)
    assert single.z == pytest.approx(1.2)


def test_nan_and_inf_are_holes_in_float_depth():
    depth = np.full((HEIGHT, WIDTH), np.nan, np.float32)
    depth[2, 2] = np.inf
    depth[2, 3] = -1.0
    depth[1, 1] = 0.8
    lifted = lift([_centre(2, 2), _centre(6, 5)], depth, CAMERA, 1.0, window=3)
    assert lifted[0].valid and lifted[0].z == pytest.approx(0.8)
    assert not lifted[1].valid


def test_window_is_clipped_at_the_image_border():
    depth = np.full((HEIGHT, WIDTH), 500, np.uint16)
    depth[0, 0] = 700
    depth[0, 1] = depth[1, 0] = depth[1, 1] = 0
    (lifted,) = lift([_centre(0, 0)], depth, CAMERA, 0.001, window=5)
    # window rows 0..2, columns 0..2: eight valid values, seven 500 and one 700 -> median 0.5
    assert lifted.z == pytest.approx(0.5)


def _assert_invalid(lifted: LiftedPoint) -> None:
    assert not lifted.valid
    assert (lifted.x, lifted.y, lifted.z) == (0.0, 0.0, 0.0)
    assert math.isnan(lifted.depth)


def test_no_valid_depth_is_invalid():
    depth = np.zeros((HEIGHT, WIDTH), np.uint16)
    (lifted,) = lift([_centre(3, 3)], depth, CAMERA, 0.001)
    _assert_invalid(lifted)


@pytest.mark.parametrize(
    'point',
    [AnswerPoint(-0.1, 2.0), AnswerPoint(8.01, 2.0), AnswerPoint(2.0, 6.5), AnswerPoint(math.nan, 1.0),
     AnswerPoint(1.0, math.inf)],
)
def test_out_of_image_points_are_invalid(point):
    depth = np.full((HEIGHT, WIDTH), 1000, np.uint16)
    (lifted,) = lift([point], depth, CAMERA, 0.001)
    _assert_invalid(lifted)


def test_points_on_the_far_border_are_inside():
    depth = np.full((HEIGHT, WIDTH), 1000, np.uint16)
    (lifted,) = lift([AnswerPoint(8.0, 6.0, clipped=True)], depth, CAMERA, 0.001, window=1)
    assert lifted.valid and lifted.x == pytest.approx((7.5 - 4) / 100) and lifted.y == pytest.approx((5.5 - 3) / 50)


def test_one_result_per_point_in_order():
    depth = np.full((HEIGHT, WIDTH), 1000, np.uint16)
    depth[:, 4:] = 2000
    lifted = lift([_centre(0, 0), AnswerPoint(-1, 0), _centre(7, 0)], depth, CAMERA, 0.001, window=1)
    assert [p.valid for p in lifted] == [True, False, True]
    assert [p.depth for p in lifted[::2]] == pytest.approx([1.0, 2.0])
    assert lift([], depth, CAMERA, 0.001) == []


def test_size_mismatch_names_both_sizes():
    with pytest.raises(ValueError, match=r'depth 6x8 is not registered to the 8x6 image \(aspect ratios differ\)'):
        lift([_centre(0, 0)], np.zeros((8, 6), np.uint16), CAMERA, 0.001)


def test_depth_of_twice_the_resolution_is_sampled_under_the_point():
    depth = np.full((2 * HEIGHT, 2 * WIDTH), 1000, np.uint16)
    depth[9, 13] = 3000   # under colour pixel (6, 4): depth pixels 12..13 x 8..9
    (lifted,) = lift_points([AnswerPoint(6.9, 4.9)], SIZE, depth, 0.001, CAMERA, False, 1)
    assert lifted.z == pytest.approx(3.0)
    assert (lifted.x, lifted.y) == pytest.approx(((6.4 - 4) * 3 / 100, (4.4 - 3) * 3 / 50))


@pytest.mark.parametrize(('kwargs', 'message'),
                         [({'depth_unit': 0.0}, 'depth_unit'), ({'depth_unit': 0.001, 'window': 0}, 'window')])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lift([_centre(0, 0)], np.zeros((HEIGHT, WIDTH), np.uint16), CAMERA, **kwargs)
    with pytest.raises(ValueError, match='single-channel'):
        lift([], np.zeros((HEIGHT, WIDTH, 3), np.uint16), CAMERA, 0.001)
