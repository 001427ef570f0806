"""The goals of a burst on one camera frame prepare it once; a new frame, other settings or a failure do not share."""

from __future__ import annotations

import threading
import time

import pytest

from robobrain_ros.node.shared_preparation import SharedPreparation


class Frame:
    """A stand-in for a cached camera message: compared by identity, like the node's."""


def slow_counter(calls: list, seconds: float = 0.05):
    def prepare():
        calls.append(threading.get_ident())
        time.sleep(seconds)
        return f'prepared #{len(calls)}'
    return prepare


def test_a_burst_on_one_frame_prepares_it_once():
    shared, calls, results = SharedPreparation(), [], []
    frame = Frame()
    prepare = slow_counter(calls)
    threads = [threading.Thread(target=lambda: results.append(shared.get(frame, ('budget', 90), prepare)))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    assert len(calls) == 1 and results == ['prepared #1'] * 16
    assert shared.get(frame, ('budget', 90), prepare) == 'prepared #1'   # a later goal on the same frame too


def test_a_new_frame_or_other_settings_are_prepared_again():
    shared, calls = SharedPreparation(), []
    prepare = slow_counter(calls, 0.0)
    first, second = Frame(), Frame()
    assert shared.get(first, 1, prepare) == 'prepared #1'
    assert shared.get(second, 1, prepare) == 'prepared #2'      # a new frame (equal fields do not matter)
    assert shared.get(second, 2, prepare) == 'prepared #3'      # the same frame under another budget
    assert shared.get(first, 2, prepare) == 'prepared #4'       # only the newest is kept


def test_a_failure_reaches_every_waiting_goal_and_is_not_kept():
    shared, calls, errors = SharedPreparation(), [], []
    frame = Frame()
    started = threading.Event()

    def failing():
        calls.append(1)
        started.set()
        time.sleep(0.05)
        raise ValueError('corrupt frame')

    def goal():
        try:
            shared.get(frame, 1, failing)
        except ValueError as exc:
            errors.append(str(exc))

    owner = threading.Thread(target=goal)
    owner.start()
    started.wait(5.0)
    waiters = [threading.Thread(target=goal) for _ in range(4)]
    for thread in waiters:
        thread.start()
    for thread in [owner, *waiters]:
        thread.join(5.0)
    assert calls == [1] and errors == ['corrupt frame'] * 5
    with pytest.raises(ValueError):
        shared.get(frame, 1, failing)     # tried again, not answered from a kept failure
    assert calls == [1, 1]
