"""BrainClient and brain_query get a goal's end even when an answer between the processes is lost or late.

Before: a cancel request or its answer that the middleware lost, or a result answer lost, left the client waiting
for a goal that had long ended (BrainClient.wait forever; brain_query after Ctrl-C gave up after 10 s with "no
answer to the cancel"), and a goal that took more than 10 s to end after Ctrl-C was reported the same way. CI hit
it once: brain_query's Ctrl-C against the real brain on a loaded machine ended "no answer to the cancel within
10 s".

The server here is a FAULT SERVER, not the brain: a real rclpy action server of the brain's Point action (Fast DDS,
its own thread) that loses the requests it is told to lose. A real brain cannot be made to lose a message on demand.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest
from action_msgs.msg import GoalStatus
from brain_query_process import read_stderr_until, start_brain_query
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from robobrain_interfaces.action import Point
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES
from robobrain_ros.brain_client import BrainClient

NAME = 'lossy_brain'


class LossyActionServer(ActionServer):
    """Loses the first `drop_cancels` cancel requests for a goal it runs, and the first `drop_results` result
    requests: no callback, no answer, as when the middleware drops them."""

    def __init__(self, *args, drop_cancels: int = 0, drop_results: int = 0, **kwargs) -> None:
        self.drop_cancels = drop_cancels
        self.drop_results = drop_results
        super().__init__(*args, **kwargs)

    async def _execute_cancel_request(self, request_header_and_message) -> None:
        # Only a cancel for a goal it runs: the clients' readiness probes (a random goal id) are answered.
        if self.drop_cancels and bytes(request_header_and_message[1].goal_info.goal_id.uuid) in self._goal_handles:
            self.drop_cancels -= 1
            return
        await super()._execute_cancel_request(request_header_and_message)

    async def _execute_get_result_request(self, request_header_and_message) -> None:
        if self.drop_results:
            self.drop_results -= 1
            return
        await super()._execute_get_result_request(request_header_and_message)


class LossyBrain:
    """A node /lossy_brain with a LossyActionServer at point, spinning on its own thread. Its goals run for
    `run_for` [s] and succeed, or, when canceled, end CANCELED `end_after_cancel` [s] after the cancel."""

    def __init__(self, context, run_for: float = 120.0, end_after_cancel: float = 0.0, **drops: int) -> None:
        self._run_for = run_for
        self._end_after_cancel = end_after_cancel
        self._closing = threading.Event()   # ends the goal still running, so that close() need not wait for it
        self.node = Node(NAME, context=context)
        self.server = LossyActionServer(self.node, Point, f'/{NAME}/point', execute_callback=self._execute,
                                        cancel_callback=lambda goal_handle: CancelResponse.ACCEPT,
                                        callback_group=ReentrantCallbackGroup(), **ACTION_SERVICE_PROFILES, **drops)
        self._executor = MultiThreadedExecutor(4, context=context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _execute(self, goal_handle):
        end = time.monotonic() + self._run_for
        while time.monotonic() < end and not goal_handle.is_cancel_requested and not self._closing.is_set():
            time.sleep(0.02)
        if self._closing.wait(self._end_after_cancel if goal_handle.is_cancel_requested else 0.0):
            goal_handle.abort()
        elif goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        result = Point.Result()
        result.answer.info.instruction = goal_handle.request.instruction
        return result

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(timeout_sec=5.0)
        self.server.destroy()
        self.node.destroy_node()
        self._thread.join(timeout=5.0)


@pytest.fixture
def lossy_brain(ros_context):
    brains = []

    def start(**kwargs) -> LossyBrain:
        brains.append(LossyBrain(ros_context, **kwargs))
        return brains[-1]
    yield start
    for brain in brains:
        brain.close()


def brain_query_until_accepted() -> tuple[subprocess.Popen, str]:
    """brain_query as a user runs it, once it says its goal was accepted: the process and its stderr so far."""
    run = start_brain_query('point', 'the cup', brain=f'/{NAME}')
    stderr = read_stderr_until(run, 'goal accepted')
    assert 'goal accepted' in stderr and run.poll() is None, stderr + run.stdout.read()
    return run, stderr


def interrupt(run: subprocess.Popen, stderr: str) -> tuple[str, str]:
    run.send_signal(signal.SIGINT)
    try:
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    return out, stderr + err


def test_ctrl_c_sends_the_cancel_again_when_it_was_lost(lossy_brain):
    lossy_brain(drop_cancels=1)
    run, stderr = brain_query_until_accepted()
    out, err = interrupt(run, stderr)
    assert run.returncode == 130, out + err
    assert 'interrupted: canceling the goal' in err and out.startswith('canceled in '), out + err


def test_ctrl_c_waits_for_a_goal_that_takes_seconds_to_end(lossy_brain):
    lossy_brain(end_after_cancel=12.0)   # the old client gave up after 10 s
    run, stderr = brain_query_until_accepted()
    out, err = interrupt(run, stderr)
    assert run.returncode == 130, out + err
    assert out.startswith('canceled in '), out + err


def test_a_second_ctrl_c_leaves_at_once_and_says_where_the_cancel_stands(lossy_brain):
    lossy_brain(end_after_cancel=120.0)
    run, stderr = brain_query_until_accepted()
    run.send_signal(signal.SIGINT)
    stderr += run.stderr.readline()
    assert 'interrupted: canceling the goal' in stderr and 'Ctrl-C again' in stderr, stderr
    # The stimulus: a person's second Ctrl-C, 3 s after the first (the cancel's answer has come back by then).
    time.sleep(3.0)
    out, err = interrupt(run, stderr)
    # Left at once: the goal would end only 120 s after its cancel, and brain_query says it did not wait for that.
    assert run.returncode == 130, out + err
    assert 'left without waiting: the server accepted the cancel, but the goal has not ended' in err, out + err


def test_a_lost_result_answer_is_asked_for_again_once_the_goal_ended(lossy_brain, ros_context):
    lossy_brain(run_for=0.5, drop_results=1)
    with BrainClient(f'/{NAME}', node_name='recovery_client', context=ros_context) as client:
        assert client.wait_for_server('point', 30.0)
        outcome = client.query('point', 'the cup', wait_timeout=30.0)
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED
    assert outcome.answer.info.instruction == 'the cup'
