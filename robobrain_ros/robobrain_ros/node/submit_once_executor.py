"""rclpy's MultiThreadedExecutor, with each ready task handed to its thread pool once.

rclpy before 10.0.4 (Humble, Jazzy and Kilted as released) yields a task made by create_task (an action goal's
execution, a goal's result response) on every turn of the executor until a pool thread has started it, and
MultiThreadedExecutor submits it to the pool again each time; it also scans the list of everything it
submitted, copies included, on every turn (ros2/rclpy#1452, fixed upstream by ros2/rclpy#1547). While any task
waits for a thread the spinning thread never blocks: it holds the GIL submitting copies and scanning the growing
list, so the threads that would start the tasks, and every other thread of the process, barely run. In the brain
node a burst of 32 goals froze the HTTP client and the goal intake for up to 5 s on an H200 host (py-spy: the
spinning thread held the GIL 92% of the time, in that scan; docs/BENCHMARKS.md).

Here a task already handed to the pool is not submitted again: the spinning thread waits briefly for a pool
thread to start it (the wait releases the GIL), and finished work is collected without a scan. Everything else is
MultiThreadedExecutor's: the waiting, the callback groups, spin(), spin_until_future_complete(), shutdown(), and an
exception escaping a callback is raised from spin_once() as there, save one: a callback that found an entity
destroyed after it was dispatched (rclpy's InvalidHandle) is logged, as is a wait set that failed to build for the
same reason.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.logging import get_logger

# The longest the spinning thread waits for a pool thread to start a task it already handed over, before it looks
# at the rest of the work again; a free thread starts it within microseconds once the GIL is released.
HANDOFF_WAIT = 0.005   # [s]
# How long the wait set may keep failing to build before the error is raised (see _spin_once_impl): a destroyed
# action server leaves the node within microseconds, a cleanup destroys six in a row.
WAIT_SET_FAILURE_LIMIT = 1.0   # [s]
# The pause after a failed build, so a failure that stays does not spin the thread.
WAIT_SET_RETRY_PAUSE = 0.001   # [s]


_logger = get_logger('robobrain_executor')


class SubmitOnceExecutor(MultiThreadedExecutor):
    """Runs callbacks in a pool of num_threads threads; a task is in the pool at most once at a time."""

    def __init__(self, num_threads: int, *, context: Any = None) -> None:
        super().__init__(num_threads, context=context)
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix='robobrain-executor')
        self._lock = threading.Lock()
        self._in_pool: dict[Any, threading.Event] = {}   # handed over and not returned yet -> set once started
        self._finished: collections.deque = collections.deque()   # handlers that ran to the end: results to check
        self._failing_since = 0.0   # [s] time.monotonic() of the first failed wait-set build in a row, 0 = none

    def _spin_once_impl(self, timeout_sec: Any = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            handler, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException, ConditionReachedException):
            pass
        except (_rclpy.RCLError, _rclpy.InvalidHandle):
            # An action server destroyed by another thread (the node's cleanup) while this one built the wait set:
            # rclpy adds it although it could not enter its handle ("action server pointer is invalid"). The next
            # turn builds the wait set without it; an error that stays for WAIT_SET_FAILURE_LIMIT is raised.
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._failing_since > WAIT_SET_FAILURE_LIMIT:
                raise
            time.sleep(WAIT_SET_RETRY_PAUSE)
        else:
            self._failing_since = 0.0
            with self._lock:
                started = self._in_pool.get(handler)
                if started is None:
                    started = self._in_pool[handler] = threading.Event()
                    try:
                        self._pool.submit(self._run, handler, started)
                    except RuntimeError:   # shutdown() stopped the pool meanwhile
                        del self._in_pool[handler]
                    started = None
            if started is not None:   # yielded again before its thread took it (rclpy#1452)
                started.wait(HANDOFF_WAIT)
        while self._finished:
            finished = self._finished.popleft()
            try:
                finished.result()   # raises what the callback raised, as MultiThreadedExecutor does
            except _rclpy.InvalidHandle as exc:
                # A callback dispatched before another thread destroyed what it uses (a lifecycle cleanup destroys
                # the node's action servers while goal requests may be in flight): that entity's work cannot be
                # done any more, and the node is not broken by it.
                _logger.warning(f'a callback ran into an entity destroyed after it was dispatched: {exc}')

    def _run(self, handler: Any, started: threading.Event) -> None:
        started.set()
        try:
            handler()
        finally:
            with self._lock:
                del self._in_pool[handler]
            # A coroutine task that awaits something returns unfinished; rclpy yields it again to resume it.
            if handler.done():
                self._finished.append(handler)

    def shutdown(self, timeout_sec: float | None = None, **kwargs: Any) -> bool:
        # Callbacks already in the pool finish first, while the executor they report to is whole: a task ending after
        # rclpy's shutdown destroyed the executor's guard condition failed on it, and the error was never retrieved.
        self._pool.shutdown(wait=kwargs.get('wait_for_threads', True))
        return super().shutdown(timeout_sec, **kwargs)
