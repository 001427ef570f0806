"""lift_points against a scene of known geometry: a tilted plane seen by distorted cameras, to millimetres.

The depth images are rendered by casting each pixel's ray through the lens model (lift_scene_support.py, its
own implementation of the distortion formulas) onto the plane; lifted points must land on the plane where the
picked pixel's ray meets it. Pinhole-only lifting (K without D, what the node did before) is shown to be
centimetres off near the edges of the same scene, so these tests tell a distorted camera from a pinhole one.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from lift_scene_support import PLANE, Lens, render_depth, true_points

from robobrain_ros.protocol.answer import AnswerPoint
from robobrain_ros.protocol.camera_model import CameraModel
from robobrain_ros.protocol.lift import lift_points

WIDTH, HEIGHT = 640, 480
MILLIMETRES_2 = 2e-3   # [m]
LENSES = {
    'plumb_bob': Lens(520.0, 515.0, 318.7, 243.2, 'plumb_bob', (-0.28, 0.09, 0.004, -0.003, -0.012)),
    'rational_polynomial': Lens(520.0, 515.0, 318.7, 243.2, 'rational_polynomial',
                                (-0.15, 0.05, 0.003, -0.002, 0.002, 0.2, 0.02, 0.001)),
    'equidistant': Lens(400.0, 401.0, 321.4, 238.9, 'equidistant', (0.08, -0.02, 0.006, -0.001)),
}
NO_P = [0.0] * 12
# Continuous coordinates of pixel centres: the four corner pixels and the middle of each edge (where the lens
# distorts most), the principal point's neighbourhood, and a few in between.
CORNERS_AND_EDGES = [(0.5, 0.5), (639.5, 0.5), (0.5, 479.5), (639.5, 479.5),
                     (320.5, 0.5), (320.5, 479.5), (0.5, 240.5), (639.5, 240.5)]
INNER = [(318.5, 243.5), (100.5, 400.5), (500.5, 77.5), (211.5, 150.5)]
# Two pixels in from the border: a 5x5 window around them is whole, so its median is the centre's depth.
NEAR_EDGES = [(2.5, 2.5), (637.5, 2.5), (2.5, 477.5), (637.5, 477.5), (320.5, 2.5), (2.5, 240.5)]


def camera_of(lens: Lens, width: int = WIDTH, height: int = HEIGHT, p=NO_P, model: str | None = None,
              d=None) -> CameraModel:
    return CameraModel.from_fields(width, height, lens.k, lens.d if d is None else d,
                                   lens.model if model is None else model, p)


def lift(pixels, depth: np.ndarray, camera: CameraModel, rectified: bool = False, window: int = 1,
         unit: float = 1.0, colour_size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """(N, 3) lifted positions; every point must be valid."""
    lifted = lift_points([AnswerPoint(x, y) for x, y in pixels], colour_size, depth, unit, camera, rectified, window)
    assert all(point.valid for point in lifted)
    return np.array([(point.x, point.y, point.z) for point in lifted])


def errors(pixels, lifted: np.ndarray, lens: Lens) -> np.ndarray:
    """[m] distance of each lifted point from where the pixel's ray meets the plane."""
    return np.linalg.norm(lifted - true_points(lens, PLANE, np.array(pixels)), axis=1)


@pytest.fixture(scope='module', params=sorted(LENSES))
def scene(request):
    """(lens, 32FC1 depth image of the plane [m]) for each distortion model."""
    lens = LENSES[request.param]
    return lens, render_depth(lens, PLANE, WIDTH, HEIGHT).astype(np.float32)


def test_the_reference_lens_is_opencvs(scene):
    """The scene's own distortion formulas project like OpenCV's, so the scene is the camera ROS describes."""
    lens, _ = scene
    rays = np.random.default_rng(1).uniform(-0.9, 0.9, (200, 2))
    objects = np.concatenate([rays, np.ones((len(rays), 1))], axis=1).reshape(-1, 1, 3)
    k, d = np.array(lens.k).reshape(3, 3), np.array(lens.d)
    if lens.model == 'equidistant':
        projected, _ = cv2.fisheye.projectPoints(objects, np.zeros((3, 1)), np.zeros((3, 1)), k, d)
    else:
        projected, _ = cv2.projectPoints(objects, np.zeros(3), np.zeros(3), k, d)
    assert np.abs(projected.reshape(-1, 2) - lens.project(rays)).max() < 1e-6
    assert np.ptp(scene[1]) > 0.5   # [m] the plane is tilted: depth is far from constant


def test_raw_image_points_land_on_the_plane_to_millimetres(scene):
    lens, depth = scene
    pixels = CORNERS_AND_EDGES + INNER
    assert errors(pixels, lift(pixels, depth, camera_of(lens)), lens).max() < MILLIMETRES_2


def test_the_median_window_keeps_millimetres_on_a_tilted_plane(scene):
    lens, depth = scene
    pixels = NEAR_EDGES + INNER
    assert errors(pixels, lift(pixels, depth, camera_of(lens), window=5), lens).max() < MILLIMETRES_2


def test_millimetre_depth_images_keep_millimetres(scene):
    lens, depth = scene
    millimetres = np.round(depth.astype(np.float64) * 1000).astype(np.uint16)
    pixels = NEAR_EDGES + INNER
    lifted = lift(pixels, millimetres, camera_of(lens), window=5, unit=0.001)
    assert errors(pixels, lifted, lens).max() < MILLIMETRES_2


def test_ignoring_distortion_is_centimetres_off_near_the_edges(scene):
    """What the node did before: K only. Right at the principal point, centimetres off towards the edges."""
    lens, depth = scene
    pinhole = camera_of(lens, d=())
    edge_errors = errors(CORNERS_AND_EDGES, lift(CORNERS_AND_EDGES, depth, pinhole), lens)
    assert edge_errors.min() > 0.02, edge_errors
    centre = [(lens.cx + 0.5, lens.cy + 0.5)]
    assert errors(centre, lift(centre, depth, pinhole), lens).max() < MILLIMETRES_2


def half_resolution(lens: Lens) -> Lens:
    """The same lens imaged at half the resolution: K halves in continuous coordinates; D is unitless."""
    return Lens(lens.fx / 2, lens.fy / 2, (lens.cx + 0.5) / 2 - 0.5, (lens.cy + 0.5) / 2 - 0.5, lens.model, lens.d)


@pytest.mark.parametrize('info_at', ['colour size', 'depth size'])
def test_depth_of_half_the_resolution(info_at):
    """640x480 colour, 320x240 registered depth; camera_info for either size. Colour points on depth pixel
    centres, so the depth under them is exactly the plane's."""
    lens = LENSES['plumb_bob']
    small = half_resolution(lens)
    depth = render_depth(small, PLANE, WIDTH // 2, HEIGHT // 2).astype(np.float32)
    camera = camera_of(lens) if info_at == 'colour size' else camera_of(small, WIDTH // 2, HEIGHT // 2)
    pixels = [(1.0, 1.0), (639.0, 1.0), (1.0, 479.0), (639.0, 479.0), (321.0, 241.0), (101.0, 399.0)]
    assert errors(pixels, lift(pixels, depth, camera), lens).max() < MILLIMETRES_2


def test_rectified_images_use_p_and_no_distortion():
    """A rectified image is a pinhole image of P, whatever K and D say about the raw one."""
    raw = LENSES['plumb_bob']
    rectified = Lens(470.0, 468.0, 322.1, 236.4)            # P's fx, fy, cx, cy: not K's
    p = [rectified.fx, 0.0, rectified.cx, 0.0, 0.0, rectified.fy, rectified.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    depth = render_depth(rectified, PLANE, WIDTH, HEIGHT).astype(np.float32)
    camera = camera_of(raw, p=p)
    pixels = CORNERS_AND_EDGES + INNER
    assert errors(pixels, lift(pixels, depth, camera, rectified=True), rectified).max() < MILLIMETRES_2
    # The same image taken for raw (K and D) is centimetres off in the corners.
    corners = CORNERS_AND_EDGES[:4]
    assert errors(corners, lift(corners, depth, camera), rectified).min() > 0.02


def test_unknown_distortion_model_with_coefficients_is_refused(scene):
    lens, depth = scene
    with pytest.raises(ValueError, match="unknown distortion model 'kannala_brandt' with non-zero D"):
        lift_points([AnswerPoint(10.5, 10.5)], (WIDTH, HEIGHT), depth, 1.0, camera_of(lens, model='kannala_brandt'),
                    False)


def test_a_model_without_coefficients_is_a_pinhole():
    depth = np.full((HEIGHT, WIDTH), 2.0, np.float32)
    lens = Lens(500.0, 500.0, 319.5, 239.5)
    for model, d in [('', ()), ('kannala_brandt', ()), ('plumb_bob', (0.0,) * 5)]:
        (position,) = lift([(420.0, 40.0)], depth, camera_of(lens, model=model, d=d))
        assert position == pytest.approx(((419.5 - 319.5) * 2 / 500, (39.5 - 239.5) * 2 / 500, 2.0))


@pytest.mark.parametrize('model, d, words', [
    ('equidistant', (0.1, 0.01, 0.0), "'equidistant' needs 4 coefficients"),
    ('plumb_bob', (0.1, 0.01, 0.0, 0.0, 0.0, 0.0), "'plumb_bob' with 6 coefficients"),
])
def test_coefficient_counts_opencv_cannot_use_are_refused(model, d, words):
    depth = np.full((HEIGHT, WIDTH), 2.0, np.float32)
    with pytest.raises(ValueError, match=words):
        lift_points([AnswerPoint(1.0, 1.0)], (WIDTH, HEIGHT), depth, 1.0, camera_of(LENSES['plumb_bob'], model=model,
                                                                                   d=d), False)


def test_missing_calibration_is_refused():
    depth = np.full((HEIGHT, WIDTH), 2.0, np.float32)
    unset = CameraModel.from_fields(WIDTH, HEIGHT, [0.0] * 9, (), 'plumb_bob', NO_P)
    with pytest.raises(ValueError, match='K is not set'):
        lift_points([AnswerPoint(1.0, 1.0)], (WIDTH, HEIGHT), depth, 1.0, unset, False)
    with pytest.raises(ValueError, match='rectified but camera_info P has no focal lengths'):
        lift_points([AnswerPoint(1.0, 1.0)], (WIDTH, HEIGHT), depth, 1.0, camera_of(LENSES['plumb_bob']), True)


@pytest.mark.parametrize('depth_size, info_size, words', [
    ((640, 400), (640, 400), 'depth 640x400 is not registered to the 640x480 image (aspect ratios differ)'),
    ((320, 240), (160, 120), 'camera_info is for 160x120, but the image is 640x480 and the depth 320x240'),
])
def test_sizes_that_do_not_fit_are_refused(depth_size, info_size, words):
    depth = np.full((depth_size[1], depth_size[0]), 2.0, np.float32)
    camera = camera_of(LENSES['plumb_bob'], *info_size)
    with pytest.raises(ValueError, match=re.escape(words)):
        lift_points([AnswerPoint(1.0, 1.0)], (WIDTH, HEIGHT), depth, 1.0, camera, False)
