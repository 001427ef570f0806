"""The node on each executor it can spin (parameter `executor`): rclpy's EventsExecutor, and SingleThreadedExecutor,
its fallback where rclpy has no EventsExecutor. One executor thread serves the node on both; a goal's query runs
in a query thread and hands its end back, so no callback waits and nothing polls while goals wait.

The model server is the scripted one (robobrain_ros.harness.scripted_server): these tests need answers that stall
and stream slowly on cue, which a real vLLM cannot be made to do.
"""

from __future__ import annotations

import io
import os
import sys
import time

import pytest
from action_msgs.msg import GoalStatus
from std_msgs.msg import Header

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.executor_choice import EVENTS, KINDS, SINGLE_THREADED, choose_executor, make_executor
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, CANCELED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED


@pytest.fixture(scope='module')
def server():
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture(scope='module', params=KINDS)
def brain(request, server, start_brain):
    kind = request.param
    client = start_brain({'server.base_urls': [server.base_url], 'executor': kind, 'topics.image': '/executors/image',
                          'topics.compressed_image': '', 'topics.depth': '', 'topics.camera_info': ''},
                         name=f'rb_executor_{kind}')
    client.kind = kind
    return client


def goal_image():
    return rgb_to_image_msg(test_image(320, 240), Header(frame_id='executors_camera'))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def test_events_is_the_choice_where_rclpy_has_it_and_a_bad_name_is_refused():
    from rclpy.experimental import EventsExecutor  # noqa: F401 - in the Jazzy and Kilted wheels this runs on
    assert choose_executor(EVENTS).kind == EVENTS and choose_executor(EVENTS).note == ''
    assert choose_executor(SINGLE_THREADED).kind == SINGLE_THREADED
    with pytest.raises(ValueError, match='events, single_threaded'):
        choose_executor('multi_threaded')


def test_an_events_executor_is_made_where_stderr_has_no_file_descriptor(ros_context, monkeypatch):
    # rclpy's EventsExecutor factory enables faulthandler on sys.stderr: under pytest's capture, in a notebook or
    # behind a logging shim that raised io.UnsupportedOperation, and BrainClient (brain_replay's client) failed.
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    executor = make_executor(EVENTS, context=ros_context)
    try:
        assert type(executor).__name__ == 'EventsExecutor'
        assert isinstance(sys.stderr, io.StringIO)   # given back as it was
    finally:
        executor.shutdown(timeout_sec=1.0)


def test_the_node_says_which_executor_spins_it(brain):
    assert wait_until(lambda: f'executor: {brain.kind}' in brain.process.log(), 10.0), brain.process.log()[-2000:]


def test_a_burst_of_goals_all_succeed_each_with_its_own_answer(brain, server):
    key = f'[burst-{brain.kind}]'   # the scripted server is shared by the nodes of both kinds: a key of each
    server.rule(key, Reply(text='[(12, 34)]', chunks=4, chunk_delay=0.1))
    handles = [brain.send('point', brain.goal('point', f'{key} the cup {i}', image=goal_image())) for i in range(16)]
    outcomes = [handle.wait(60.0) for handle in handles]
    assert [o.status for o in outcomes] == [SUCCEEDED] * 16, [o.answer.info.status.message for o in outcomes]
    assert [o.answer.info.instruction for o in outcomes] == [f'{key} the cup {i}' for i in range(16)]
    assert all(len(o.answer.points) == 1 for o in outcomes)
    # Feedback came while the answers streamed (published from the query threads).
    assert all(any(f.text for f in o.feedback) for o in outcomes)


def test_a_goal_canceled_while_its_answer_streams_ends_canceled(brain, server):
    key = f'[cancel-{brain.kind}]'
    server.rule(key, Reply(stall_first_token=60.0))
    handle = brain.send('point', brain.goal('point', f'{key} the cup', image=goal_image()))
    assert wait_until(lambda: server.requests_with(key), 30.0), 'the request never reached the server'
    handle.cancel()
    outcome = handle.wait(30.0)
    assert outcome.status == CANCELED and outcome.answer.info.status.code == QueryStatus.CANCELED


def test_goals_waiting_for_their_answers_cost_the_node_no_cpu(brain, server):
    # EventsExecutor polls a coroutine callback that awaits a Future of another thread again and again (4 such
    # goals kept a process at 60 % of a core). The node's goals wait in query threads instead: while four goals
    # wait for a server that says nothing, the node does next to nothing.
    key = f'[idle-{brain.kind}]'
    server.rule(key, Reply(stall_first_token=6.0))
    handles = [brain.send('point', brain.goal('point', f'{key} the cup {i}', image=goal_image())) for i in range(4)]
    assert wait_until(lambda: len(server.requests_with(key)) == 4, 30.0), 'the requests never reached the server'
    pid = brain.process.process.pid
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(3.0)   # the stimulus: goals waiting on the stalled server for a while
    used, waited = cpu_seconds(pid) - before, time.monotonic() - began
    # A busy loop uses the whole wait (a core); the node's idle work (timers, discovery) is a few percent of it.
    assert used < 0.3 * waited, f'the node used {used:.2f} s of CPU in {waited:.2f} s while its goals waited'
    assert [handle.wait(30.0).status for handle in handles] == [SUCCEEDED] * 4
