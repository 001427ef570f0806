"""Lifting pixel points to 3D camera-frame points with a registered depth image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .answer import PixelPoint


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the depth image (pixels) and its size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'image size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> CameraIntrinsics:
        """From a row-major 3x3 K (sensor_msgs/CameraInfo.k)."""
        if len(k) != 9:
            raise ValueError(f'K must have 9 values (row-major 3x3), got {len(k)}')
        return cls(fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]), width=int(width), height=int(height))


@dataclass(frozen=True)
class LiftedPoint:
    """A point in the camera optical frame (metres; x right, y down, z forward).

    Invalid points (no usable depth around them, or outside the image) are x=y=z=0, depth=NaN.
    """

    x: float
    y: float
    z: float
    valid: bool
    depth: float


_INVALID = LiftedPoint(0.0, 0.0, 0.0, False, math.nan)


def lift_to_3d(
    points: Sequence[PixelPoint],
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    depth_unit: float,
    window: int = 5,
) -> list[LiftedPoint]:
    """Back-project pixel points through the pinhole model using the median valid depth around each.

    depth_unit is metres per depth value: 0.001 for 16UC1 millimetres, 1.0 for 32FC1 metres.
    The median over a window x window neighbourhood skips holes (0, NaN, inf) and edge pixels
    that mix foreground and background.

    Points are continuous coordinates of the depth image (registered to the colour image): the
    image spans [0, width] x [0, height] and pixel (i, j) covers [i, i + 1) x [j, j + 1), which is
    how parse_completion scales answers. K places pixel centres at integers, so the ray uses
    (x - 0.5, y - 0.5). A point is inside when 0 <= x <= width and 0 <= y <= height.
    """
    if depth.ndim != 2:
        raise ValueError(f'the depth image must be single-channel HxW, got shape {depth.shape}')
    depth_height, depth_width = depth.shape
    if (depth_width, depth_height) != (intrinsics.width, intrinsics.height):
        raise ValueError(
            f'the depth image is {depth_width}x{depth_height} but the intrinsics are for '
            f'{intrinsics.width}x{intrinsics.height}'
        )
    if not (depth_unit > 0 and math.isfinite(depth_unit)):
        raise ValueError(f'depth_unit must be a positive number of metres, got {depth_unit}')
    if window < 1:
        raise ValueError(f'window must be at least 1 pixel, got {window}')
    half = window // 2

    lifted = []
    for point in points:
        u, v = float(point.x), float(point.y)
        if not (0.0 <= u <= depth_width and 0.0 <= v <= depth_height):  # also rejects NaN
            lifted.append(_INVALID)
            continue
        column = min(int(u), depth_width - 1)
        row = min(int(v), depth_height - 1)
        patch = depth[max(row - half, 0):row + half + 1, max(column - half, 0):column + half + 1]
        values = patch.astype(np.float64, copy=False).ravel()
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            lifted.append(_INVALID)
            continue
        z = float(np.median(values)) * depth_unit
        x = (u - 0.5 - intrinsics.cx) * z / intrinsics.fx
        y = (v - 0.5 - intrinsics.cy) * z / intrinsics.fy
        lifted.append(LiftedPoint(x, y, z, True, z))
    return lifted
