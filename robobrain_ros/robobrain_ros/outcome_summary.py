"""A goal's outcome for people (a few readable lines) and for programs (JSON), as brain_query prints it.

Works on the answer messages by their fields (PointsAnswer, BoxAnswer, TrajectoryAnswer, PlanAnswer,
TextAnswer); imports no rclpy.
"""

from __future__ import annotations

import math
from typing import Any

LATENCY_STAGES = ('image_wait', 'preprocess', 'queue', 'first_token', 'generation', 'postprocess')
REJECTED_REASON = ('the node did not accept the goal: it is not active (lifecycle state; `ros2 lifecycle get '
                   '{brain}`), or max_concurrent + max_queued goals are already in flight. Its log says which '
                   "('goal rejected: ...').")


def message_to_data(msg: Any) -> Any:
    """A ROS message as plain Python data (dicts, lists, numbers, strings) for json.dumps.

    NaN (an invalid LiftedPoint's depth) becomes None: JSON has no NaN.
    """
    if hasattr(msg, 'get_fields_and_field_types'):
        return {name: message_to_data(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    if isinstance(msg, (list, tuple)) or type(msg).__name__ == 'ndarray' or type(msg).__name__ == 'array':
        return [message_to_data(item) for item in msg]
    if isinstance(msg, float) and not math.isfinite(msg):
        return None
    return msg


def status_name(code: int, status_type: Any) -> str:
    """QueryStatus code -> its constant's name (OK, NOT_FOUND, ...)."""
    for name in dir(status_type):
        if name.isupper() and not name.startswith('_') and getattr(status_type, name) == code:
            return name
    return str(code)


def _point(p: Any) -> str:
    return f'({p.x:.1f}, {p.y:.1f})' + (' clipped' if p.clipped else '')


def _lifted(p: Any) -> str:
    if not p.valid:
        return 'no depth'
    return f'({p.position.x:.3f}, {p.position.y:.3f}, {p.position.z:.3f})'


def summary_lines(outcome_name: str, seconds: float, answer: Any, status_type: Any) -> list[str]:
    """Readable lines: outcome and status, the answer (points/box/steps/text, 3D when lifted), latency."""
    info = answer.info
    status = status_name(info.status.code, status_type)
    lines = [f'{outcome_name} in {seconds:.2f} s: {status}' + (f' ({info.status.message})' if info.status.message
                                                                else '')]
    if info.model or info.image_source:
        lines.append(f'model {info.model or "?"}; image {info.image_source or "?"} '
                     f'{info.original_width}x{info.original_height} (model saw {info.model_width}x'
                     f'{info.model_height}), age {info.image_age:.2f} s, frame {info.header.frame_id or "?"}'
                     + (f', camera {info.camera}' if getattr(info, 'camera', '') else ''))
    # The 3D part's own frame (a target frame, or the optical frame); older nodes' answers have no frame_3d.
    frame = getattr(info, 'frame_3d', '') or info.header.frame_id or 'the camera frame'
    if hasattr(answer, 'points'):
        lines.append(f'points [px]: {", ".join(_point(p) for p in answer.points) or "none"}')
        if answer.points_3d:
            lines.append(f'points 3D [m] in {frame}: ' + ', '.join(_lifted(p) for p in answer.points_3d))
    if hasattr(answer, 'has_box'):
        if answer.has_box:
            b = answer.box
            lines.append(f'box [px]: x {b.x_min:.1f}..{b.x_max:.1f}, y {b.y_min:.1f}..{b.y_max:.1f}'
                         + (' clipped' if b.clipped else '') + f'; centre {_point(answer.center)}')
            if answer.center_3d.valid:
                lines.append(f'centre 3D [m] in {frame}: {_lifted(answer.center_3d)}')
        else:
            lines.append('box: none')
    if hasattr(answer, 'steps'):
        lines.append(f'plan: {len(answer.steps)} steps')
        for step in answer.steps:
            who = f' [{step.robot_name}]' if step.robot_name else ''
            lines.append(f'  {step.order}.{who} {step.description}')
    if hasattr(answer, 'answer') and isinstance(answer.answer, str):
        lines.append(f'answer: {answer.answer}')
    if not info.status.code == getattr(status_type, 'OK', 1) and info.raw_completion:
        lines.append(f'model said: {info.raw_completion[:500]}')
    lat = info.latency
    stages = ', '.join(f'{name.replace("_", " ")} {getattr(lat, name):.0f}' for name in LATENCY_STAGES
                       if getattr(lat, name))
    lines.append(f'latency [ms]: total {lat.total:.0f}' + (f' ({stages})' if stages else ''))
    return lines
