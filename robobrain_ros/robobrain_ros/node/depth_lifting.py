"""3D points for an answer, only when the depth and camera_info at hand belong to the image that was asked about.

A point is lifted with a depth frame and a calibration; a wrong pairing gives a confident, wrong 3D point, which
is worse than none. So lifting happens only when
- the image has a stamp a depth frame can be matched to: a goal image needs a real stamp (a camera frame whose
  driver leaves stamps at zero is paired by receipt time, as the frame cache keeps it);
- a depth frame lies within sync_tolerance of that stamp;
- camera_info is in the image's frame, and the depth image too, unless depth_registered says it is registered
  to the colour image under another frame_id;
- the sizes agree and the calibration can be inverted (lift_points checks these).
A RoboBrain 2.5 trajectory carries its own depth per waypoint: with camera_info of the image's frame, those lift
the waypoints the depth image does not (LiftedPoint.source says which depth each point used).
Otherwise the answer has no 3D points and the returned reason says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robobrain_ros.node.frame_cache import FrameCache
from robobrain_ros.node.image_conversion import depth_to_array
from robobrain_ros.protocol.answer import AnswerPoint
from robobrain_ros.protocol.camera_model import CameraModel
from robobrain_ros.protocol.lift import LiftedPoint, lift_points, lift_with_model_depth, prefer_measured


@dataclass(frozen=True)
class LiftSettings:
    """No defaults here: the parameter table (node/parameters.py) is the one source of them."""

    sync_tolerance: float    # [s] largest stamp difference between the image and its depth frame
    depth_wait: float    # [s] how long to wait for that depth frame (depth often arrives later)
    window: int    # [px] side of the window whose median depth is used per point
    depth_registered: bool    # the depth is registered to the colour image under another frame_id
    rectified: bool    # the colour image is rectified: use P, no distortion (else undistort with D, K)


def lift_answer_points(points: Sequence[AnswerPoint], colour_header: Any, colour_size: tuple[int, int],
                       from_goal: bool, frames: FrameCache, settings: LiftSettings,
                       colour_stamp: float | None = None,
                       model_depths: Sequence[float] = ()) -> tuple[list[LiftedPoint], str]:
    """(3D points in the colour image's optical frame, '') or ([], why there are none).

    points are continuous coordinates of the colour image of colour_size (width, height) whose header is
    colour_header; from_goal says it came in the goal rather than from the camera topic. colour_stamp [s] is
    the stamp the frame cache gave a camera frame (its receipt time when the driver left the stamp at zero);
    None = colour_header's stamp. model_depths [m], one per point (NaN = none), are the depths a RoboBrain 2.5
    trajectory carries: they lift the points the depth image cannot (no depth image, or a hole in it). One
    point in gives one point out, invalid where no depth is usable; each valid point says where its depth came
    from.
    """
    if not points:
        return [], ''
    frame_id = colour_header.frame_id
    info = frames.camera_info()
    if info is None:
        return [], 'no 3D points: no camera_info received'
    if info.header.frame_id != frame_id:
        return [], (f"no 3D points: camera_info is for frame '{info.header.frame_id}', the image is in frame "
                    f"'{frame_id}'")
    try:
        camera = CameraModel.from_fields(info.width, info.height, info.k, info.d, info.distortion_model, info.p)
    except ValueError as exc:
        return [], f'no 3D points: {exc}'
    measured, why_not = _lift_with_depth_image(points, colour_header, colour_size, from_goal, frames, settings,
                                               colour_stamp, camera)
    if not any(math.isfinite(d) for d in model_depths):
        return (measured, '') if measured else ([], f'no 3D points: {why_not}')
    try:
        from_model = lift_with_model_depth(points, model_depths, colour_size, camera, settings.rectified)
    except ValueError as exc:
        return (measured, '') if measured else ([], f'no 3D points: {exc}; {why_not}')
    if not measured:
        return from_model, f"3D points from the model's depths ({why_not})"
    return prefer_measured(measured, from_model), ''


def _lift_with_depth_image(points: Sequence[AnswerPoint], colour_header: Any, colour_size: tuple[int, int],
                           from_goal: bool, frames: FrameCache, settings: LiftSettings, colour_stamp: float | None,
                           camera: CameraModel) -> tuple[list[LiftedPoint], str]:
    """(points lifted with the depth frame of the image, '') or ([], why that depth cannot be used)."""
    header_stamp = colour_header.stamp.sec + colour_header.stamp.nanosec * 1e-9
    if from_goal and header_stamp == 0.0:
        return [], ('the goal image has no stamp (header.stamp is 0), so no depth frame can be matched to it; '
                    'stamp it with its capture time and the camera frame_id')
    stamp = header_stamp if from_goal or colour_stamp is None else colour_stamp
    frame_id = colour_header.frame_id
    depth_frame = frames.depth_near(stamp, settings.sync_tolerance, wait=settings.depth_wait)
    if depth_frame is None:
        return [], f'no depth within {settings.sync_tolerance:g} s of the image'
    depth_frame_id = depth_frame.msg.header.frame_id
    if depth_frame_id != frame_id and not settings.depth_registered:
        return [], (f"the depth image is in frame '{depth_frame_id}', the image in '{frame_id}' "
                    '(set camera.depth_registered only if the depth is registered to the colour image)')
    try:
        depth, unit = depth_to_array(depth_frame.msg)
        return lift_points(points, colour_size, depth, unit, camera, settings.rectified, settings.window), ''
    except ValueError as exc:   # ImageConversionError is one too
        return [], str(exc)
