"""Typed answers: what a completion means, in original-image pixels.

AnswerPoint, AnswerBox and AnswerStep are the protocol's; robobrain_interfaces' PixelPoint, PixelBox and PlanStep
messages carry them to ROS (node/answer_messages.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .tasks import Task


@dataclass(frozen=True)
class AnswerPoint:
    """A point in original-image pixels; clipped means the model's point lay outside the image."""

    x: float
    y: float
    clipped: bool = False


@dataclass(frozen=True)
class AnswerBox:
    """An axis-aligned box in original-image pixels with x_min <= x_max and y_min <= y_max."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    clipped: bool = False


@dataclass(frozen=True)
class AnswerStep:
    """One step of a plan; order is the number the model gave it (1-based)."""

    order: int
    description: str
    robot_name: str = ''


@dataclass
class Answer:
    """A parsed completion. raw is always the completion as received; error says what was missing.

    not_found: the model answered with an empty list, i.e. nothing in the image matches (no error, no points).
    """

    task: Task
    raw: str
    thinking: str = ''
    answer: str = ''
    points: list[AnswerPoint] = field(default_factory=list)
    box: AnswerBox | None = None
    steps: list[AnswerStep] = field(default_factory=list)
    reasoning: str = ''
    # RoboBrain 2.5 trajectory depth per point (NaN where a waypoint had none), else empty.
    depths: list[float] = field(default_factory=list)
    not_found: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
