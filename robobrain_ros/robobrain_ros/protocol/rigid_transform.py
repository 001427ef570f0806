"""Rigid transforms between frames (REP 103: metres, unit quaternions x, y, z, w), applied to lifted points.

A transform maps points given in its source frame into its target frame, as tf2's
`lookup_transform(target, source, stamp)` and `tf2_geometry_msgs.do_transform_point` do: p_target = R p_source + t.
Pure: the node finds the transform (through tf2, at the image's stamp) and hands it here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .lift import LiftedPoint


@dataclass(frozen=True)
class RigidTransform:
    """Rotation (unit quaternion x, y, z, w) then translation [m]: source-frame points into the target frame."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        norm = math.sqrt(sum(c * c for c in self.rotation))
        if not (math.isfinite(norm) and abs(norm - 1.0) < 1e-3) or not all(map(math.isfinite, self.translation)):
            raise ValueError(f'not a rigid transform: rotation {self.rotation} (|q| = {norm:.6g}, must be 1), '
                             f'translation {self.translation}')

    def matrix(self) -> np.ndarray:
        """The 3x3 rotation matrix of the (renormalised) quaternion."""
        x, y, z, w = np.asarray(self.rotation, dtype=np.float64) / np.linalg.norm(self.rotation)
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """N x 3 source-frame points -> N x 3 target-frame points."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return points @ self.matrix().T + np.asarray(self.translation, dtype=np.float64)


def transform_lifted(points: Sequence[LiftedPoint], transform: RigidTransform) -> list[LiftedPoint]:
    """The valid points moved into the transform's target frame; invalid ones stay invalid (zeros, depth NaN).

    depth keeps its meaning (the optical-frame Z the point was lifted with), and so does its source.
    """
    valid = [i for i, p in enumerate(points) if p.valid]
    moved = transform.apply(np.array([(points[i].x, points[i].y, points[i].z) for i in valid]))
    result = list(points)
    for index, (x, y, z) in zip(valid, moved):
        p = points[index]
        result[index] = LiftedPoint(float(x), float(y), float(z), True, p.depth, p.source)
    return result


def lookup_stamp(header_stamp: float, cached_stamp: float | None, from_goal: bool) -> float | None:
    """The time [s] at which the camera-to-target transform must be looked up: when the image was taken.

    header_stamp is the image header's stamp (0 when the sender left it unset); cached_stamp is the stamp the
    frame cache gave a camera frame (its receipt time when the driver left the header at zero). A goal image
    without a stamp has no capture time: None, since any transform picked for it would be a guess.
    """
    if header_stamp > 0.0:
        return header_stamp
    if from_goal or cached_stamp is None or cached_stamp <= 0.0:
        return None
    return cached_stamp
