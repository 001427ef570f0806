"""The six actions in one table: name, action type, RoboBrain task, answer message and the topic it is latched on.

The node (action servers, publishers), the answer messages and BrainClient all read this table, so an action
is added or renamed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from robobrain_interfaces.action import Affordance, Ask, Ground, Plan, Point, Trajectory
from robobrain_interfaces.msg import BoxAnswer, PlanAnswer, PointsAnswer, TextAnswer, TrajectoryAnswer
from robobrain_ros.protocol import Task


@dataclass(frozen=True)
class BrainAction:
    name: str             # action name under the node: ~/<name>
    action_type: type     # robobrain_interfaces/action/...
    task: Task            # the RoboBrain task it asks
    answer_type: type     # the Result's `answer` message
    answer_topic: str     # latched topic the answer is also published on


ACTIONS: tuple[BrainAction, ...] = (
    BrainAction('point', Point, Task.POINTING, PointsAnswer, '~/points'),
    BrainAction('affordance', Affordance, Task.AFFORDANCE, BoxAnswer, '~/boxes'),
    BrainAction('trajectory', Trajectory, Task.TRAJECTORY, TrajectoryAnswer, '~/trajectory'),
    BrainAction('ground', Ground, Task.GROUNDING, BoxAnswer, '~/boxes'),
    BrainAction('plan', Plan, Task.PLANNING, PlanAnswer, '~/plan'),
    BrainAction('ask', Ask, Task.GENERAL, TextAnswer, '~/answer'),
)
ACTIONS_BY_NAME: dict[str, BrainAction] = {action.name: action for action in ACTIONS}
ACTIONS_BY_TASK: dict[Task, BrainAction] = {action.task: action for action in ACTIONS}
# One latched topic per answer type (affordance and grounding share ~/boxes).
ANSWER_TOPICS: dict[type, str] = {action.answer_type: action.answer_topic for action in ACTIONS}
