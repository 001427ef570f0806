"""The node's query bookkeeping without ROS: cancel latch, admission, draining, and the newest-only worker."""

from __future__ import annotations

import threading

from robobrain_ros.node.goal_registry import GoalRegistry
from robobrain_ros.node.latest_only_worker import LatestOnlyWorker
from robobrain_ros.node.query_pipeline import CancelToken, QueryCode


def test_a_cancel_before_anything_is_attached_stops_it_when_attached():
    token = CancelToken()
    token.cancel()
    stopped = []
    token.attach(lambda: stopped.append('generation'))
    assert stopped == ['generation'] and token.reason == (QueryCode.CANCELED, 'canceled')


def test_a_cancel_after_attach_stops_everything_attached_and_keeps_the_first_reason():
    token = CancelToken()
    stopped = []
    token.attach(lambda: stopped.append(1))
    token.cancel(QueryCode.NODE_STOPPING, 'the node is shutting down')
    token.cancel()   # a client's cancel after the shutdown one does not rename the reason
    assert stopped == [1, 1] and token.reason == (QueryCode.NODE_STOPPING, 'the node is shutting down')


def test_the_token_registered_for_a_goal_is_the_one_its_cancel_finds():
    registry = GoalRegistry()
    assert registry.admit(limit=1) == ''
    accepted = registry.register(b'goal')            # handle_accepted_callback, before execute runs
    registry.token(b'goal').cancel()                 # the client's cancel comes in between
    assert registry.register(b'goal') is accepted and accepted.requested   # execute finds it canceled


def test_admission_counts_slots_until_each_query_finishes():
    registry = GoalRegistry()
    assert registry.admit(2) == '' and registry.admit(2) == ''
    assert 'max_concurrent + max_queued = 2' in registry.admit(2)
    registry.register('a')
    registry.finish('a')
    assert registry.admit(2) == '' and registry.admitted == 2
    assert registry.token('a') is None


def test_stop_all_cancels_with_node_stopping_and_waits_for_the_queries_to_end():
    registry = GoalRegistry()
    registry.admit(5)
    token = registry.register('goal')
    reasons = []

    def query() -> None:
        token.wait(10.0)
        reasons.append(token.reason[0])
        registry.finish('goal')

    worker = threading.Thread(target=query)
    worker.start()
    assert registry.stop_all('the node was deactivated', timeout=10.0)
    worker.join(5.0)
    assert reasons == [QueryCode.NODE_STOPPING] and registry.admitted == 0


def test_stop_all_gives_up_after_its_timeout_when_a_query_does_not_end():
    registry = GoalRegistry()
    registry.admit(5)
    registry.register('stuck')
    assert registry.stop_all('stopping', timeout=0.2) is False and registry.admitted == 1


def test_latest_only_worker_keeps_one_pending_job_however_many_come():
    worker = LatestOnlyWorker('test-worker')
    release = threading.Event()
    started = threading.Event()
    ran = []

    def blocking() -> None:
        started.set()
        release.wait(5.0)

    worker.submit(blocking)
    assert started.wait(5.0)
    for index in range(100):                      # a burst while the worker is busy
        worker.submit(lambda index=index: ran.append(index))
    done = threading.Event()
    # The newest job comes while the worker is still busy: submitted after the release, the worker could take
    # job 99 first (it did, once, in CI).
    worker.submit(done.set)
    release.set()
    assert done.wait(5.0)
    worker.stop()
    assert ran == [] and worker.dropped == 100    # only the newest job of the burst (done.set) ran
