"""The goals file of a replay: which goal to send, and when (seconds from the bag's start).

A YAML list, one mapping per goal::

    - {at: 0.5, action: point, instruction: the red cup}
    - {at: 1.2, action: trajectory, instruction: move the cup onto the plate, camera: head,
       target_frame: base_link, thinking: on, timeout: 30, max_image_age: 0.5}

at [s] (>= 0, from the bag's first message), action and instruction are required. camera ('' = the node's first),
target_frame (only for actions whose answers have 3D points), thinking (on | off | default), timeout [s] and
max_image_age [s] (0 = the node's default) are optional. Pure Python: the action names come from the caller (the
one table of the six actions), so this module imports no ROS.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robobrain_ros.protocol.thinking import GOAL_WORDS as THINKING_CODES  # the goals' `thinking` words

REQUIRED = ('at', 'action', 'instruction')
OPTIONAL = ('camera', 'target_frame', 'thinking', 'timeout', 'max_image_age')


class GoalsError(ValueError):
    """A goals file that cannot be used; the message names the file, the goal and the field."""


@dataclass(frozen=True)
class GoalSpec:
    index: int              # 1-based position in the goals file
    at: float               # [s] from the bag's start
    action: str
    instruction: str
    camera: str = ''
    target_frame: str = ''
    thinking: str = 'default'
    timeout: float = 0.0        # [s] 0 = the node's queries.goal_timeout
    max_image_age: float = 0.0  # [s] 0 = the node's queries.max_image_age

    @property
    def thinking_code(self) -> int:
        return THINKING_CODES[self.thinking]

    def as_dict(self) -> dict[str, Any]:
        return {'index': self.index, 'at': self.at, 'action': self.action, 'instruction': self.instruction,
                'camera': self.camera, 'target_frame': self.target_frame, 'thinking': self.thinking,
                'timeout': self.timeout, 'max_image_age': self.max_image_age}


def load_goals(path: str | Path, actions: Sequence[str], actions_3d: Collection[str]) -> list[GoalSpec]:
    """Read and check a goals file; GoalsError names the first problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GoalsError(f'cannot read the goals file {path}: {exc.strerror or exc}') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GoalsError(f'{path} is not YAML: {exc}') from None
    return parse_goals(data, actions, actions_3d, source=str(path))


def parse_goals(data: Any, actions: Sequence[str], actions_3d: Collection[str],
                source: str = 'goals') -> list[GoalSpec]:
    """The goals of a parsed goals file, in file order; GoalsError names the first problem."""
    if isinstance(data, dict) and set(data) == {'goals'}:
        data = data['goals']
    if not isinstance(data, list) or not data:
        raise GoalsError(f'{source}: expected a non-empty YAML list of goals ({{at, action, instruction, ...}} each), '
                         f'got {type(data).__name__ if data is not None else "nothing"}')
    return [_goal(item, number, actions, actions_3d, source) for number, item in enumerate(data, start=1)]


def _goal(item: Any, number: int, actions: Sequence[str], actions_3d: Collection[str], source: str) -> GoalSpec:
    where = f'{source}: goal {number}'
    if not isinstance(item, dict):
        raise GoalsError(f'{where}: expected a mapping with at, action and instruction, got {item!r}')
    unknown = sorted(str(key) for key in item if key not in REQUIRED + OPTIONAL)
    if unknown:
        raise GoalsError(f'{where}: unknown field {", ".join(unknown)} (fields: {", ".join(REQUIRED + OPTIONAL)})')
    missing = [key for key in REQUIRED if key not in item]
    if missing:
        raise GoalsError(f'{where}: missing {", ".join(missing)}')
    at = _seconds(item['at'], f'{where}: at')
    action = item['action']
    if action not in actions:
        raise GoalsError(f"{where}: unknown action {action!r} (actions: {', '.join(actions)})")
    instruction = item['instruction']
    if not isinstance(instruction, str) or not instruction.strip():
        raise GoalsError(f'{where}: instruction must be a non-empty string, got {instruction!r}')
    camera = _text(item.get('camera', ''), f'{where}: camera')
    target_frame = _text(item.get('target_frame', ''), f'{where}: target_frame')
    if target_frame and action not in actions_3d:
        raise GoalsError(f"{where}: target_frame is for {', '.join(a for a in actions if a in actions_3d)}: "
                         f'{action} answers have no 3D points')
    thinking = item.get('thinking', 'default')
    # YAML 1.1 (PyYAML) reads a bare on / off as true / false.
    if isinstance(thinking, bool):
        thinking = 'on' if thinking else 'off'
    if thinking not in THINKING_CODES:
        raise GoalsError(f"{where}: thinking must be on, off or default, got {thinking!r}")
    timeout = _seconds(item.get('timeout', 0.0), f'{where}: timeout')
    max_image_age = _seconds(item.get('max_image_age', 0.0), f'{where}: max_image_age')
    return GoalSpec(number, at, action, instruction, camera, target_frame, thinking, timeout, max_image_age)


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise GoalsError(f'{where} must be a number of seconds >= 0, got {value!r}')
    return float(value)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ''
    if not isinstance(value, str):
        raise GoalsError(f'{where} must be a string, got {value!r}')
    return value


def past_the_end(goals: Iterable[GoalSpec], duration: float) -> str:
    """'' when every goal is within the bag, else the refusal naming the goals past its end and its duration."""
    late = [goal for goal in goals if goal.at > duration + 1e-9]
    if not late:
        return ''
    listed = ', '.join(f'goal {goal.index} at {goal.at:g} s' for goal in late)
    return (f'{listed}: past the end of the bag, which lasts {duration:.3f} s (at is in seconds from its first '
            'message); nothing would be replayed for them')


def unknown_cameras(goals: Iterable[GoalSpec], cameras: Sequence[str]) -> list[str]:
    """A warning per goal whose camera is not one of the node's ('' = the first is always fine)."""
    return [f"goal {goal.index} names camera {goal.camera!r}, and the node has {', '.join(cameras)}: it will end "
            'BAD_GOAL (sent anyway, so that the report shows what the node said)'
            for goal in goals if goal.camera and goal.camera not in cameras]


def in_send_order(goals: Sequence[GoalSpec]) -> list[GoalSpec]:
    """By time; goals at the same time in file order."""
    return sorted(goals, key=lambda goal: (goal.at, goal.index))
