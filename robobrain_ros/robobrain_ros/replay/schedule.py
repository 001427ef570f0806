"""The replay's time: bag time <-> wall time at a rate, and the order of what happens. Pure Python.

Bag time runs from the bag's first message (start_ns) at `rate` times wall time, and stops at its last message
(end_ns): what the replay publishes on /clock, and the time stamps of the output bag.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .goals import GoalSpec

NS = 1_000_000_000


@dataclass
class ReplayClock:
    start_ns: int
    end_ns: int
    rate: float = 1.0
    wall_start: float | None = None     # time.monotonic() at which bag time was start_ns

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f'rate must be > 0, got {self.rate}')

    def begin(self, wall_now: float) -> None:
        self.wall_start = wall_now

    def wall_at(self, stamp_ns: int) -> float:
        """The wall time (monotonic) at which bag time reaches stamp_ns."""
        assert self.wall_start is not None
        return self.wall_start + (stamp_ns - self.start_ns) / NS / self.rate

    def bag_now_ns(self, wall_now: float) -> int:
        """Bag time at wall_now, held at start_ns before the replay begins and at end_ns after it ends."""
        if self.wall_start is None:
            return self.start_ns
        now = self.start_ns + int((wall_now - self.wall_start) * self.rate * NS)
        return min(max(now, self.start_ns), self.end_ns)

    def goal_ns(self, goal: GoalSpec) -> int:
        return self.start_ns + int(round(goal.at * NS))


@dataclass(frozen=True)
class Event:
    stamp_ns: int
    kind: str          # 'message' or 'goal'
    payload: Any       # (topic, message) or a GoalSpec


def timeline(messages: Iterable[tuple[int, Any]], goals: Sequence[GoalSpec], clock: ReplayClock) -> Iterator[Event]:
    """Messages (stamp_ns, payload), already in time order, merged with the goals at their times; a goal comes after
    the messages of its instant (the frame of that instant is there when it asks)."""
    pending = sorted(goals, key=lambda goal: (goal.at, goal.index))
    position = 0
    for stamp, payload in messages:
        while position < len(pending) and clock.goal_ns(pending[position]) < stamp:
            yield Event(clock.goal_ns(pending[position]), 'goal', pending[position])
            position += 1
        yield Event(stamp, 'message', payload)
    for goal in pending[position:]:
        yield Event(clock.goal_ns(goal), 'goal', goal)
