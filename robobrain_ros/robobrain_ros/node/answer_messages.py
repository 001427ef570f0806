"""QueryOutcome -> robobrain_interfaces messages (the action results, also published on the answer topics)."""

from __future__ import annotations

import math

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import Header

from robobrain_interfaces.msg import LiftedPoint, PixelBox, PixelPoint, PlanStep, QueryInfo, QueryStatus
from robobrain_ros.action_table import ACTIONS_BY_TASK
from robobrain_ros.node.query_pipeline import PIXEL_ANSWER_CODES, QueryCode, QueryOutcome
from robobrain_ros.protocol import Task

# The pipeline's plain codes, as the QueryStatus constants of the same names.
STATUS_CODES: dict[QueryCode, int] = {code: getattr(QueryStatus, code.name) for code in QueryCode}


def query_info(outcome: QueryOutcome) -> QueryInfo:
    info = QueryInfo()
    info.header = outcome.header if outcome.header is not None else Header()
    info.image_source = outcome.image_source
    info.image_age = float(outcome.image_age)
    info.camera = outcome.camera
    info.frame_3d = outcome.frame_3d
    info.task = outcome.request.task.value
    info.instruction = outcome.request.instruction
    info.model = outcome.model
    info.model_family = outcome.model_family
    info.thinking = bool(outcome.thinking)
    if outcome.generation is not None:
        info.raw_completion = outcome.generation.text
        usage = outcome.generation.usage
        if usage is not None:
            info.prompt_tokens = usage.prompt_tokens
            info.completion_tokens = usage.completion_tokens
        else:
            info.completion_tokens = outcome.generation.tokens
    if outcome.answer is not None:
        info.thinking_text = outcome.answer.thinking
        info.answer_text = outcome.answer.answer
    info.status.code = STATUS_CODES[outcome.code]
    info.status.message = outcome.message
    info.original_width, info.original_height = outcome.original_size
    info.model_width, info.model_height = outcome.sent_size
    for name, value in outcome.latency.items():
        setattr(info.latency, name, float(value))
    return info


def answer_message(outcome: QueryOutcome):
    """The task's answer message (PointsAnswer, BoxAnswer, ...) filled from outcome."""
    task = outcome.request.task
    msg = ACTIONS_BY_TASK[task].answer_type()
    msg.info = query_info(outcome)
    answer = outcome.answer
    if answer is None or answer.error or outcome.code not in PIXEL_ANSWER_CODES:
        return msg
    lifted = [_lifted(p) for p in outcome.lifted]
    if task is Task.POINTING:
        msg.points = [_pixel(p) for p in answer.points]
        msg.points_3d = lifted
    elif task is Task.TRAJECTORY:
        msg.points = [_pixel(p) for p in answer.points]
        msg.points_3d = lifted
        msg.path = path_3d(msg.info, msg.points_3d)
    elif task in (Task.AFFORDANCE, Task.GROUNDING):
        if answer.box is not None:
            box = answer.box
            msg.has_box = True
            msg.box = PixelBox(x_min=float(box.x_min), y_min=float(box.y_min), x_max=float(box.x_max),
                               y_max=float(box.y_max), clipped=bool(box.clipped))
            msg.center = PixelPoint(x=(box.x_min + box.x_max) / 2.0, y=(box.y_min + box.y_max) / 2.0)
            msg.center_3d = lifted[0] if lifted else LiftedPoint(depth=math.nan)
    elif task is Task.PLANNING:
        msg.steps = [PlanStep(order=int(s.order), description=str(s.description), robot_name=str(s.robot_name))
                     for s in answer.steps]
        msg.reasoning = answer.reasoning
    else:
        msg.answer = answer.answer
    return msg


def _pixel(point) -> PixelPoint:
    return PixelPoint(x=float(point.x), y=float(point.y), clipped=bool(point.clipped))


def _lifted(point) -> LiftedPoint:
    msg = LiftedPoint(valid=bool(point.valid), depth=float(point.depth), depth_source=int(point.source))
    msg.position.x, msg.position.y, msg.position.z = float(point.x), float(point.y), float(point.z)
    return msg


def header_3d(info: QueryInfo) -> Header:
    """The header of an answer's 3D outputs: the image's stamp, in the frame the 3D points are in."""
    return Header(stamp=info.header.stamp, frame_id=info.frame_3d)


def path_3d(info: QueryInfo, lifted: list[LiftedPoint]) -> Path:
    """The valid 3D waypoints as a nav_msgs/Path in info.frame_3d (identity orientations); empty when none."""
    path = Path()
    if not any(point.valid for point in lifted):
        return path
    path.header = header_3d(info)
    for point in lifted:
        if not point.valid:
            continue
        pose = PoseStamped()
        pose.header = path.header
        pose.pose.position = point.position
        pose.pose.orientation.w = 1.0
        path.poses.append(pose)
    return path
