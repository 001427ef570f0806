"""A synthetic RGB-D scene of known geometry for the 3D lifting tests: a tilted plane seen by a distorted camera.

The lens models are written out here from their definitions (OpenCV's camera calibration docs, REP 104) and
inverted by Newton's method, independently of the cv2.undistortPoints / cv2.fisheye.undistortPoints calls the
code under test makes; test_lift_scene.py checks the forward models against cv2.projectPoints.
Pixel coordinates are K's (the centre of pixel (i, j) is (i, j)) unless a name says "continuous".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lens:
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = 'plumb_bob'            # plumb_bob | rational_polynomial | equidistant
    d: tuple[float, ...] = ()

    @property
    def k(self) -> list[float]:
        """Row-major K, as sensor_msgs/CameraInfo.k."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def distort(self, normalised: np.ndarray) -> np.ndarray:
        """(N, 2) normalised coordinates of rays -> (N, 2) distorted normalised coordinates."""
        x, y = normalised[:, 0], normalised[:, 1]
        r2 = x * x + y * y
        if self.model == 'equidistant':
            k1, k2, k3, k4 = self.d
            r = np.sqrt(r2)
            theta = np.arctan(r)
            t2 = theta * theta
            theta_d = theta * (1 + k1 * t2 + k2 * t2 ** 2 + k3 * t2 ** 3 + k4 * t2 ** 4)
            scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
            return normalised * scale[:, None]
        coefficients = list(self.d) + [0.0] * (8 - len(self.d))
        k1, k2, p1, p2, k3, k4, k5, k6 = coefficients[:8]
        radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def project(self, normalised: np.ndarray) -> np.ndarray:
        """(N, 2) normalised ray coordinates -> (N, 2) pixel coordinates of the raw (distorted) image."""
        distorted = self.distort(normalised)
        return np.stack([self.fx * distorted[:, 0] + self.cx, self.fy * distorted[:, 1] + self.cy], axis=1)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) raw-image pixel coordinates -> (N, 2) normalised ray coordinates, by Newton's method."""
        target = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        guess = (target - (self.cx, self.cy)) / (self.fx, self.fy)
        step = 1e-7
        for _ in range(60):
            residual = self.project(guess) - target
            if np.max(np.abs(residual)) < 1e-10:
                break
            jx = (self.project(guess + (step, 0.0)) - self.project(guess - (step, 0.0))) / (2 * step)
            jy = (self.project(guess + (0.0, step)) - self.project(guess - (0.0, step))) / (2 * step)
            # Solve the 2x2 system J step = residual per point (J's columns: d pixel / d x_n, d pixel / d y_n).
            determinant = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
            correction = np.stack([jy[:, 1] * residual[:, 0] - jy[:, 0] * residual[:, 1],
                                   jx[:, 0] * residual[:, 1] - jx[:, 1] * residual[:, 0]], axis=1)
            guess = guess - correction / determinant[:, None]
        residual = np.max(np.abs(self.project(guess) - target))
        assert residual < 1e-8, f'the reference inverse did not converge: {residual} px'
        return guess


@dataclass(frozen=True)
class Plane:
    """The plane normal . X = offset, in the camera's optical frame (metres)."""

    normal: tuple[float, float, float]
    offset: float

    @classmethod
    def through(cls, point: tuple[float, float, float], normal: tuple[float, float, float]) -> Plane:
        unit = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
        return cls(tuple(unit), float(unit @ np.asarray(point)))

    def hit(self, rays: np.ndarray) -> np.ndarray:
        """(N, 2) normalised ray coordinates -> (N, 3) points where those rays meet the plane."""
        directions = np.concatenate([rays, np.ones((len(rays), 1))], axis=1)
        along = directions @ np.asarray(self.normal)
        assert np.all(along > 1e-3), 'a ray misses the plane (it must be in front of the camera everywhere)'
        return directions * (self.offset / along)[:, None]


# The scene of every lifting test: a plane about 1.2 m ahead, tilted about 20 degrees around both image axes,
# so that depth changes across the image (a wrong pixel or a wrong ray shows as a wrong distance).
PLANE = Plane.through((0.05, -0.03, 1.2), (0.35, -0.25, 1.0))


def render_depth(lens: Lens, plane: Plane, width: int, height: int) -> np.ndarray:
    """Z [m] of the plane at every pixel centre of a width x height raw image of the lens, (H, W) float64."""
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([columns.ravel(), rows.ravel()], axis=1)
    return plane.hit(lens.rays(pixels))[:, 2].reshape(height, width)


def true_points(lens: Lens, plane: Plane, continuous: np.ndarray) -> np.ndarray:
    """(N, 3) plane points seen at (N, 2) continuous raw-image coordinates (pixel centres at i + 0.5)."""
    return plane.hit(lens.rays(np.asarray(continuous, dtype=np.float64) - 0.5))
