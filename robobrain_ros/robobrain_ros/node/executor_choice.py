"""The executor that spins the brain node (and BrainClient): rclpy's EventsExecutor where it works, else the stock one.

Every callback of the node returns within a fraction of a millisecond (a goal's query runs in the node's query
threads, see brain_node), so one executor thread is enough and the choice is about what a turn costs.
rclpy.experimental.EventsExecutor (in the Jazzy 7.1 and Kilted 9.1 wheels) dispatches each ready entity from C++,
without rebuilding a wait set over all of the node's entities in Python every turn; SingleThreadedExecutor is the
fallback where it is missing (Humble) or where a user turns it off (`executor:=single_threaded`). Measured in
docs/BENCHMARKS.md ("The floor").

Two properties of EventsExecutor in these wheels shape the code that uses it, both measured:
- spun without a timeout (spin(), spin_once(), spin_until_future_complete(f)) it never runs a callback: the wheel's
  "wait forever" deadline overflows (pthread_cond_timedwait gets EINVAL) and the thread spins at 100 % CPU, deaf
  to Ctrl-C. Every spin passes a finite timeout (SPIN_TIMEOUT).
- a coroutine callback that awaits a Future completed by another thread is polled again and again until it is
  done (4 goals awaiting kept the process at 60 % CPU). So no callback awaits: a goal's work runs in a thread, and
  its end is handed to the executor when it is ready.
And one of its factory: it enables faulthandler on sys.stderr, which raises io.UnsupportedOperation where sys.stderr
has no file descriptor (pytest's capture, a notebook, a logging shim): make_executor gives it the process's own.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any

from rclpy.executors import Executor, SingleThreadedExecutor

EVENTS = 'events'
SINGLE_THREADED = 'single_threaded'
KINDS = (EVENTS, SINGLE_THREADED)
# [s] the longest any spin waits: a finite timeout always (see above), short enough for signal handlers and
# for a thread that looks whether it was asked to stop.
SPIN_TIMEOUT = 0.25


@dataclass(frozen=True)
class ExecutorChoice:
    kind: str       # EVENTS or SINGLE_THREADED: what will spin
    note: str       # why it is not the one asked for ('' when it is)


def events_executor_class() -> Any:
    """rclpy.experimental.EventsExecutor, or None where this rclpy has none."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def choose_executor(requested: str) -> ExecutorChoice:
    if requested not in KINDS:
        raise ValueError(f"executor must be one of {', '.join(KINDS)}, got '{requested}'")
    if requested == EVENTS and events_executor_class() is None:
        return ExecutorChoice(SINGLE_THREADED, 'this rclpy has no rclpy.experimental.EventsExecutor: spinning '
                                               "rclpy's SingleThreadedExecutor")
    return ExecutorChoice(requested, '')


def make_executor(kind: str, context: Any = None) -> Executor:
    """A new executor of the kind choose_executor gave."""
    if kind != EVENTS:
        return SingleThreadedExecutor(context=context)
    events_executor = events_executor_class()
    try:
        return events_executor(context=context)
    except io.UnsupportedOperation:   # faulthandler.enable() on a sys.stderr without a file descriptor
        if sys.__stderr__ is None:
            return SingleThreadedExecutor(context=context)
        replaced, sys.stderr = sys.stderr, sys.__stderr__
        try:
            return events_executor(context=context)
        finally:
            sys.stderr = replaced
