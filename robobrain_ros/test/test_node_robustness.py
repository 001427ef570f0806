"""A node that never falls over and never leaves a goal hanging: configure errors, refused parameter changes,
deactivate and Ctrl-C with goals in flight, diagnostics in a namespace.

The model server here is the scripted fault-injection server (robobrain_ros.harness.scripted_server), not vLLM:
these tests need a request that stays open on cue (a stall) while the node is stopped under it. The non-JSON
/v1/models answer comes from a fake server below, for the same reason: a real vLLM cannot be made to send it.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionClient
from std_msgs.msg import Header

from robobrain_interfaces.action import Point
from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.brain_client import BrainClient
from robobrain_ros.harness.brain_process import BrainProcess, wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

ABORTED = GoalStatus.STATUS_ABORTED
STOP_TIMEOUT = 10.0     # [s] SIGINT -> exit


@pytest.fixture(scope='module')
def server():
    with ScriptedServer() as scripted:
        yield scripted


def params(server_url: str, **overrides) -> dict:
    values = {'server.base_urls': [server_url], 'queries.goal_timeout': 120.0, 'queries.drain_timeout': 5.0,
              'topics.image': '/robust/image', 'topics.compressed_image': '', 'topics.depth': '',
              'topics.camera_info': ''}
    values.update(overrides)
    return values


def goal_image():
    return rgb_to_image_msg(test_image(320, 240), Header(frame_id='robust_camera'))


def call(node, service_type, name: str, request, timeout: float = 30.0):
    """Call a service, asking again every few seconds while unanswered.

    Right after discovery Fast DDS may drop the response to a client's first request (the server does not yet
    see the client's reader); on a loaded machine that window is long. A lifecycle transition asked twice is
    refused the second time (success false), which the caller then reports: never a silent pass.
    """
    client = node.create_client(service_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            future = client.call_async(request)
            if wait_until(future.done, min(3.0, max(0.1, end - time.monotonic()))):
                return future.result()
        raise AssertionError(f'{name} did not answer within {timeout} s')
    finally:
        node.destroy_client(client)


def lifecycle_state(node, full_name: str) -> str:
    return call(node, GetState, f'{full_name}/get_state', GetState.Request()).current_state.label


class RunningBrain:
    """A brain process and a client of its own, for tests that stop the process themselves."""

    def __init__(self, ros_client, tmp_path, values: dict, name: str, namespace: str = '') -> None:
        self.process = BrainProcess(values, name=name, namespace=namespace, log_dir=tmp_path).start()
        self.client = BrainClient(brain_name=self.process.full_name, context=ros_client.node.context,
                                  node_name=f'client_of_{name}')

    def interrupt(self) -> None:
        os.killpg(self.process.process.pid, signal.SIGINT)

    def exit_code(self, timeout: float = STOP_TIMEOUT) -> int | None:
        wait_until(lambda: not self.process.alive(), timeout)
        return None if self.process.alive() else self.process.process.returncode

    def close(self) -> None:
        self.client.close()
        self.process.stop(timeout=2.0)


@pytest.fixture
def running(ros_client, tmp_path):
    started: list[RunningBrain] = []

    def start(values: dict, name: str, namespace: str = '') -> RunningBrain:
        brain = RunningBrain(ros_client, tmp_path, values, name, namespace)
        started.append(brain)
        return brain

    yield start
    for brain in started:
        brain.close()


def stalled_goal(brain: RunningBrain, server: ScriptedServer, key: str):
    """A goal whose request is open at the server (stalled before its first token) when this returns."""
    server.rule(key, Reply(stall_first_token=300.0))
    assert brain.client.wait_for_server('point', 60.0), brain.process.log()[-3000:]
    handle = brain.client.send('point', brain.client.goal('point', f'{key} the cup', image=goal_image()))
    assert wait_until(lambda: server.requests_with(key), 30.0), 'the request never reached the server'
    return handle


# ------------------------------------------------------------------------------------------ shutdown
def test_ctrl_c_ends_the_goal_in_flight_and_its_client_hears_it(running, server):
    brain = running(params(server.base_url), name='rb_ctrl_c')
    handle = stalled_goal(brain, server, '[ctrl-c]')
    brain.interrupt()
    outcome = handle.wait(STOP_TIMEOUT)
    assert outcome.status == ABORTED, (outcome.status, brain.process.log()[-3000:])
    status = outcome.answer.info.status
    assert status.code == QueryStatus.NODE_STOPPING and 'shutting down' in status.message
    assert brain.exit_code() == 0, brain.process.log()[-3000:]
    assert 'Traceback' not in brain.process.log()


def test_sigint_twice_stops_cleanly_without_a_traceback(running, server):
    # `ros2 launch` forwards SIGINT to its children again when its stdin is not a terminal.
    brain = running(params(server.base_url), name='rb_sigint_twice')
    handle = stalled_goal(brain, server, '[sigint-twice]')
    brain.interrupt()
    time.sleep(0.05)   # the stimulus: a second SIGINT shortly after the first, as ros2 launch sends it (no wait)
    brain.interrupt()
    assert handle.wait(STOP_TIMEOUT).answer.info.status.code == QueryStatus.NODE_STOPPING
    assert brain.exit_code() == 0 and 'Traceback' not in brain.process.log(), brain.process.log()[-3000:]


# ------------------------------------------------------------------------------------------ lifecycle
def test_deactivate_ends_running_goals_and_cleanup_configure_serve_again(running, server, ros_client):
    brain = running(params(server.base_url), name='rb_deactivate')
    handle = stalled_goal(brain, server, '[deactivate]')
    node, full_name = ros_client.node, brain.process.full_name

    def transition(transition_id: int) -> None:
        response = call(node, ChangeState, f'{full_name}/change_state',
                        ChangeState.Request(transition=Transition(id=transition_id)))
        assert response.success, f'transition {transition_id} failed:\n{brain.process.log()[-3000:]}'

    transition(Transition.TRANSITION_DEACTIVATE)
    outcome = handle.wait(STOP_TIMEOUT)
    assert outcome.status == ABORTED and outcome.answer.info.status.code == QueryStatus.NODE_STOPPING
    assert 'deactivated' in outcome.answer.info.status.message
    transition(Transition.TRANSITION_CLEANUP)
    transition(Transition.TRANSITION_CONFIGURE)
    transition(Transition.TRANSITION_ACTIVATE)
    assert brain.client.wait_for_server('point', 30.0)
    answered = brain.client.query('point', 'the cup', image=goal_image(), wait_timeout=60.0)
    assert answered.status == GoalStatus.STATUS_SUCCEEDED, answered.answer.info.status.message
    assert brain.process.alive() and 'Traceback' not in brain.process.log()


def test_timer_callbacks_dispatched_before_a_teardown_find_nothing_to_use(server):
    # The stop (SIGINT) and the cleanup tear the node down in one thread while the executor spins in another: a
    # /diagnostics or health-probe timer callback dispatched just before then ran on a destroyed publisher
    # (InvalidHandle: the node exited with code 1, twice in a CI run) or a stopped request loop. Here such a
    # callback runs after the teardown, in a child process: a real BrainNode, configured, no executor needed.
    code = ('import rclpy\n'
            'from rclpy.lifecycle import TransitionCallbackReturn\n'
            'from rclpy.parameter import Parameter\n'
            'from robobrain_ros.node.brain_node import BrainNode\n'
            'rclpy.init()\n'
            "node = BrainNode(parameter_overrides=[Parameter('server.base_urls', value=[%r])])\n"
            'assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS\n'
            'node._teardown()\n'
            'node._publish_diagnostics()\n'
            'node._probe_server()\n'
            'node.destroy_node()\n'
            'rclpy.shutdown()\n'
            "print('survived')\n") % server.base_url
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ['survived']


class _NotJsonModels(http.server.BaseHTTPRequestHandler):
    """A fake server whose /v1/models answers an HTML page (a proxy's error page): real vLLM never does."""

    def do_GET(self) -> None:   # http.server's name for the GET handler
        body = b'<html>502 Bad Gateway</html>'
        self.send_response(200 if self.path.endswith('/models') else 404)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope='module')
def not_json_server():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _NotJsonModels)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/v1'
    httpd.shutdown()


@pytest.mark.parametrize('case', ['not a URL', 'no camera topic'])
def test_a_bad_setting_fails_configure_with_the_reason_and_leaves_nothing_running(running, server, ros_client, case):
    values = params('notaurl') if case == 'not a URL' else params(server.base_url, **{'topics.image': ''})
    name = 'rb_bad_' + case.replace(' ', '_')
    brain = running(values, name=name)
    reason = "'notaurl', which is not an http(s) URL" if case == 'not a URL' else 'both empty'
    assert wait_until(lambda: reason in brain.process.log(), 30.0), brain.process.log()[-3000:]
    assert 'configure failed' in brain.process.log()
    assert lifecycle_state(ros_client.node, brain.process.full_name) == 'unconfigured'
    # The half-configured action servers are gone: nobody can send this brain a goal.
    client = ActionClient(ros_client.node, Point, f'{brain.process.full_name}/point')
    try:
        assert not client.wait_for_server(timeout_sec=2.0)
    finally:
        client.destroy()
    brain.interrupt()
    assert brain.exit_code() == 0 and 'Traceback' not in brain.process.log(), brain.process.log()[-3000:]


def test_a_server_whose_model_list_is_not_json_is_reported_not_a_crash(running, not_json_server, ros_client):
    brain = running(params(not_json_server), name='rb_not_json')
    assert brain.client.wait_for_server('point', 60.0), brain.process.log()[-3000:]
    outcome = brain.client.query('point', 'the cup', image=goal_image(), wait_timeout=60.0)
    assert outcome.status == ABORTED, brain.process.log()[-3000:]
    status = outcome.answer.info.status
    assert status.code in (QueryStatus.SERVER_ERROR, QueryStatus.SERVER_UNREACHABLE), status
    assert 'Bad Gateway' in status.message or 'JSON' in status.message, status.message
    assert brain.process.alive() and 'Traceback' not in brain.process.log()


# ------------------------------------------------------------------------------------------ parameters
def _set(node, full_name: str, name: str, value: int):
    request = SetParameters.Request(parameters=[ParameterMsg(
        name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))])
    return call(node, SetParameters, f'{full_name}/set_parameters', request).results[0]


def test_a_change_that_makes_the_budget_impossible_is_refused_and_the_node_lives(running, server, ros_client):
    brain = running(params(server.base_url), name='rb_params')
    assert brain.client.wait_for_server('point', 60.0)
    node, full_name = ros_client.node, brain.process.full_name
    assert _set(node, full_name, 'model.max_pixels', 200704).successful
    refused = _set(node, full_name, 'model.min_pixels', 300000)   # inside its own range, above max_pixels
    assert not refused.successful and 'min_pixels' in refused.reason
    answered = brain.client.query('point', 'the cup', image=goal_image(), wait_timeout=60.0)
    assert answered.status == GoalStatus.STATUS_SUCCEEDED, answered.answer.info.status.message
    assert answered.answer.info.model_width * answered.answer.info.model_height <= 200704
    assert brain.process.alive() and 'Traceback' not in brain.process.log()


# ------------------------------------------------------------------------------------------ diagnostics
def test_diagnostics_name_the_brain_by_its_namespace(running, server, ros_client):
    running(params(server.base_url), name='robobrain', namespace='/robot_7')
    seen: list[str] = []
    subscription = ros_client.node.create_subscription(
        DiagnosticArray, '/diagnostics', lambda msg: seen.extend(s.name for s in msg.status), 10)
    try:
        assert wait_until(lambda: '/robot_7/robobrain: model server' in seen, 30.0), sorted(set(seen))
        assert '/robot_7/robobrain: camera' in seen
    finally:
        ros_client.node.destroy_subscription(subscription)
