"""Lifting pixel points to 3D camera-frame points: with a depth image registered to the colour image, or with the
depth the model wrote in its answer (RoboBrain 2.5 trajectories: (x, y, d), d in metres)."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .answer import AnswerPoint
from .camera_model import CameraModel


class DepthSource(enum.IntEnum):
    """Where a lifted point's depth came from (the values of robobrain_interfaces/LiftedPoint's DEPTH_*)."""

    NONE = 0
    IMAGE = 1       # the depth image synchronised with the colour frame
    MODEL = 2       # the model's answer (RoboBrain 2.5 trajectory (x, y, d))


@dataclass(frozen=True)
class LiftedPoint:
    """A point in the camera optical frame (metres; x right, y down, z forward), or moved into another frame.

    Invalid points (no usable depth around them, or outside the image) are x=y=z=0, depth=NaN, source NONE.
    """

    x: float
    y: float
    z: float
    valid: bool
    depth: float
    source: DepthSource = DepthSource.NONE


_INVALID = LiftedPoint(0.0, 0.0, 0.0, False, math.nan)


def lift_points(
    points: Sequence[AnswerPoint],
    colour_size: tuple[int, int],
    depth: np.ndarray,
    depth_unit: float,
    camera: CameraModel,
    rectified: bool,
    window: int = 5,
) -> list[LiftedPoint]:
    """Lift points of the colour image to the colour camera's optical frame with a registered depth image.

    points are continuous coordinates of the colour image (colour_size = (width, height)): it spans
    [0, width] x [0, height] and pixel (i, j) covers [i, i + 1) x [j, j + 1), which is how parse_completion
    maps answers; points outside are invalid. The depth image must be registered to the colour image (same
    view, possibly another resolution of the same aspect ratio): each point's depth is the median of the
    valid values (not 0, NaN or inf) in a window x window neighbourhood of the depth pixel under it, in
    depth_unit metres per value (0.001 for 16UC1 millimetres, 1.0 for 32FC1 metres). That depth is Z (REP 118).

    camera is the colour camera's calibration, for the colour or the depth image's size. rectified=False:
    the colour image is raw and the point's ray is found by undistorting it with D and K; rectified=True:
    P applies. The result is (x_n * z, y_n * z, z) with (x_n, y_n) the ray's normalised coordinates.

    ValueError, with the reason, when the inputs cannot give trustworthy points (another aspect ratio, a
    camera_info of another size, a calibration that cannot be inverted).
    """
    if depth.ndim != 2:
        raise ValueError(f'the depth image must be single-channel HxW, got shape {depth.shape}')
    if not (depth_unit > 0 and math.isfinite(depth_unit)):
        raise ValueError(f'depth_unit must be a positive number of metres, got {depth_unit}')
    if window < 1:
        raise ValueError(f'window must be at least 1 pixel, got {window}')
    colour_width, colour_height = int(colour_size[0]), int(colour_size[1])
    if colour_width <= 0 or colour_height <= 0:
        raise ValueError(f'the colour image size must be positive, got {colour_width}x{colour_height}')
    depth_height, depth_width = depth.shape
    to_depth_x, to_depth_y = depth_width / colour_width, depth_height / colour_height
    if abs(to_depth_x / to_depth_y - 1.0) > 0.01:
        raise ValueError(f'depth {depth_width}x{depth_height} is not registered to the {colour_width}x{colour_height} '
                         'image (aspect ratios differ)')
    camera_size = (camera.width, camera.height)
    if camera_size not in ((colour_width, colour_height), (depth_width, depth_height)):
        raise ValueError(f'camera_info is for {camera.width}x{camera.height}, but the image is '
                         f'{colour_width}x{colour_height} and the depth {depth_width}x{depth_height}')

    inside = [i for i, p in enumerate(points)
              if 0.0 <= p.x <= colour_width and 0.0 <= p.y <= colour_height]   # also rejects NaN
    # K puts pixel centres at integers: the continuous coordinate of a centre is i + 0.5.
    camera_pixels = np.array([((points[i].x * camera.width / colour_width) - 0.5,
                               (points[i].y * camera.height / colour_height) - 0.5) for i in inside],
                             dtype=np.float64).reshape(-1, 2)
    rays = camera.normalised(camera_pixels, rectified)

    lifted = [_INVALID] * len(points)
    for index, (x_n, y_n) in zip(inside, rays):
        point = points[index]
        # Sampled at the (distorted) pixel itself: the depth image is registered to the raw colour image.
        column = min(int(point.x * to_depth_x), depth_width - 1)
        row = min(int(point.y * to_depth_y), depth_height - 1)
        value = _median_depth(depth, column, row, window)
        if value is None:
            continue
        z = value * depth_unit
        lifted[index] = LiftedPoint(float(x_n) * z, float(y_n) * z, z, True, z, DepthSource.IMAGE)
    return lifted


def lift_with_model_depth(
    points: Sequence[AnswerPoint],
    depths: Sequence[float],
    colour_size: tuple[int, int],
    camera: CameraModel,
    rectified: bool,
) -> list[LiftedPoint]:
    """Lift points with the depth [m] the model gave for each (RoboBrain 2.5 trajectories), read as Z (REP 118).

    points and colour_size as for lift_points; depths has one value per point (NaN where the model gave none).
    A point outside the image, or whose depth is not a positive finite number, is invalid. ValueError when the
    calibration is for another image size or cannot be inverted.
    """
    if len(depths) != len(points):
        raise ValueError(f'{len(depths)} model depths for {len(points)} points')
    colour_width, colour_height = int(colour_size[0]), int(colour_size[1])
    if (camera.width, camera.height) != (colour_width, colour_height):
        raise ValueError(f'camera_info is for {camera.width}x{camera.height}, but the image is '
                         f'{colour_width}x{colour_height}')
    usable = [i for i, p in enumerate(points)
              if 0.0 <= p.x <= colour_width and 0.0 <= p.y <= colour_height
              and math.isfinite(depths[i]) and depths[i] > 0.0]
    rays = camera.normalised(np.array([(points[i].x - 0.5, points[i].y - 0.5) for i in usable],
                                      dtype=np.float64).reshape(-1, 2), rectified)
    lifted = [_INVALID] * len(points)
    for index, (x_n, y_n) in zip(usable, rays):
        z = float(depths[index])
        lifted[index] = LiftedPoint(float(x_n) * z, float(y_n) * z, z, True, z, DepthSource.MODEL)
    return lifted


def prefer_measured(measured: Sequence[LiftedPoint], from_model: Sequence[LiftedPoint]) -> list[LiftedPoint]:
    """Per point, the depth image's 3D point where it had a usable depth, else the model's (a measurement beats the
    model's estimate; the model's fills the depth image's holes)."""
    return [m if m.valid else f for m, f in zip(measured, from_model)]


def _median_depth(depth: np.ndarray, column: int, row: int, window: int) -> float | None:
    """Median of the valid depth values in the window around (column, row), clipped at the border."""
    half = window // 2
    patch = depth[max(row - half, 0):row + half + 1, max(column - half, 0):column + half + 1]
    values = patch.astype(np.float64, copy=False).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    return float(np.median(values))
