"""A calibrated camera (sensor_msgs/CameraInfo's fields) and the rays through its pixels.

Pixel coordinates here follow K's convention: the centre of pixel (i, j) is (i, j). Normalised coordinates
(x_n, y_n) are those of the ray (x_n, y_n, 1) in the camera's optical frame (x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Distortion models of REP 104 / sensor_msgs/distortion_models.hpp and the OpenCV function that inverts each.
PLUMB_BOB = 'plumb_bob'
RATIONAL_POLYNOMIAL = 'rational_polynomial'
EQUIDISTANT = 'equidistant'
# cv2.undistortPoints takes (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, tx, ty]]]]).
_POLYNOMIAL_LENGTHS = (4, 5, 8, 12, 14)

# cv2.undistortPoints iterates a fixed point 5 times by default: near the corners of a strongly distorted image
# that leaves rays 1e-3 off (millimetres at a metre). These criteria converge there too. (The fisheye inverse is
# Newton's method and converges with its defaults.)
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
# OpenCV 4 takes criteria in undistortPointsIter (Ubuntu 22.04's 4.5 only there); OpenCV 5 dropped that name and
# takes them in undistortPoints.
_UNDISTORT_ITER = getattr(cv2, 'undistortPointsIter', None)


Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class CameraModel:
    """What sensor_msgs/CameraInfo says about a camera: image size, K (3x3), D, distortion model, P (3x4).

    Build one with from_fields (flat row-major k and p, as CameraInfo carries them). K and D describe the raw
    image; P the rectified one (distortion removed). Which one applies is the caller's choice (rectified).
    """

    width: int
    height: int
    k: Matrix
    d: tuple[float, ...]
    distortion_model: str
    p: Matrix

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'camera_info image size must be positive, got {self.width}x{self.height}')
        if np.shape(self.k) != (3, 3) or np.shape(self.p) != (3, 4):
            raise ValueError(f'K must be 3x3 and P 3x4, got {np.shape(self.k)} and {np.shape(self.p)}')

    @classmethod
    def from_fields(cls, width: int, height: int, k: Sequence[float], d: Sequence[float], distortion_model: str,
                    p: Sequence[float]) -> CameraModel:
        """From CameraInfo's fields: k with 9 values and p with 12 (row-major; nested rows work too)."""
        k_values = np.asarray(k, dtype=np.float64).ravel()
        p_values = np.asarray(p, dtype=np.float64).ravel()
        if k_values.size != 9 or p_values.size != 12:
            raise ValueError(f'K must have 9 values and P 12 (row-major), got {k_values.size} and {p_values.size}')
        return cls(width=int(width), height=int(height), k=_rows(k_values.reshape(3, 3)),
                   d=tuple(float(v) for v in np.asarray(d, dtype=np.float64).ravel()),
                   distortion_model=str(distortion_model), p=_rows(p_values.reshape(3, 4)))

    def normalised(self, pixels: np.ndarray, rectified: bool) -> np.ndarray:
        """(N, 2) pixel coordinates of this camera's image (K convention) -> (N, 2) normalised coordinates.

        rectified=False: the image is raw, so the points are undistorted with D and K. rectified=True: the image
        is already rectified: P's fx, fy, cx, cy apply and there is no distortion (P's translation column, set
        for the second camera of a stereo pair, is not used: points stay in the image's own optical frame).
        ValueError, with the reason, when the calibration cannot do that.
        """
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        if rectified:
            fx, fy, cx, cy = self.p[0][0], self.p[1][1], self.p[0][2], self.p[1][2]
            if not (fx > 0 and fy > 0):
                raise ValueError(f'the image is rectified but camera_info P has no focal lengths (fx={fx:g}, '
                                 f'fy={fy:g}): P is not set')
            return (pixels - (cx, cy)) / (fx, fy)
        k = np.array(self.k)
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            raise ValueError(f'camera_info K has no focal lengths (fx={k[0, 0]:g}, fy={k[1, 1]:g}): K is not set')
        d = np.array(self.d)
        if not np.any(d):
            # No distortion (empty or all-zero D, whatever the model's name): the pinhole inverse is exact.
            return (pixels - (k[0, 2], k[1, 2])) / (k[0, 0], k[1, 1])
        if pixels.size == 0:
            return pixels
        if self.distortion_model in (PLUMB_BOB, RATIONAL_POLYNOMIAL):
            return self._undistort_polynomial(pixels, k, d)
        if self.distortion_model == EQUIDISTANT:
            return self._undistort_equidistant(pixels, k, d)
        raise ValueError(f"unknown distortion model '{self.distortion_model}' with non-zero D: cannot undistort "
                         f'(supported: {PLUMB_BOB}, {RATIONAL_POLYNOMIAL}, {EQUIDISTANT})')

    def _undistort_polynomial(self, pixels: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
        if d.size not in _POLYNOMIAL_LENGTHS:
            raise ValueError(f"distortion model '{self.distortion_model}' with {d.size} coefficients: OpenCV takes "
                             f"{', '.join(map(str, _POLYNOMIAL_LENGTHS))}")
        source = pixels.reshape(-1, 1, 2)
        if _UNDISTORT_ITER is not None:
            result = _UNDISTORT_ITER(source, k, d, np.eye(3), np.eye(3), _CRITERIA)
        else:
            result = cv2.undistortPoints(source, k, d, criteria=_CRITERIA)
        return result.reshape(-1, 2)

    def _undistort_equidistant(self, pixels: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
        if d.size != 4:
            raise ValueError(f"distortion model '{EQUIDISTANT}' needs 4 coefficients (k1..k4), got {d.size}")
        return cv2.fisheye.undistortPoints(pixels.reshape(-1, 1, 2), k, d).reshape(-1, 2)


def _rows(matrix: np.ndarray) -> Matrix:
    return tuple(tuple(float(v) for v in row) for row in matrix)
