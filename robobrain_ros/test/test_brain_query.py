"""brain_query and BrainClient.wait_for_server against a real brain node and the real vLLM server.

Before: the readiness check sent an empty probe goal (an abort in the node's counters, its "last error" set, the
latched answer topic overwritten); brain_query printed a raw repr on one line, "rejected ... None" without a
reason, did not cancel its goal on Ctrl-C, and two copies were two nodes of one name.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from brain_query_process import read_stderr_until, start_brain_query
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from test_node_lifecycle import call, transition

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.brain_client import CANCEL_WAIT, BrainClient, image_goal_fields
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.node.image_conversion import image_to_rgb

NAME = 'bq_brain'


@pytest.fixture(scope='module')
def brain(start_brain, vllm_server):
    return start_brain({'server.base_urls': [vllm_server.base_url], 'model.max_tokens': 64,
                        'model.temperature': 0.0, 'topics.image': '/bq/image', 'topics.compressed_image': '',
                        'topics.depth': '', 'topics.camera_info': ''}, name=NAME)


@pytest.fixture(scope='module')
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('bq') / 'frame.png'
    cv2.imwrite(str(path), cv2.cvtColor(test_image(320, 240, seed=3), cv2.COLOR_RGB2BGR))
    return path


def goal_counters(node) -> dict[str, str]:
    """The brain's own account of its goals, from its next /diagnostics message."""
    seen: dict[str, str] = {}
    done = threading.Event()

    def on_message(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if NAME in status.name and 'model server' in status.name:
                seen.update({v.key: v.value for v in status.values})
                done.set()

    subscription = node.create_subscription(DiagnosticArray, '/diagnostics', on_message, 10)
    try:
        assert done.wait(15.0), 'no /diagnostics from the brain'
    finally:
        node.destroy_subscription(subscription)
    return {k: v for k, v in seen.items() if k.startswith('goals ') or k == 'last error'}


IDLE = {'goals admitted': '0', 'goals succeeded': '0', 'goals aborted': '0', 'goals canceled': '0',
        'goals rejected': '0', 'last error': ''}


def brain_query(*args: str) -> subprocess.Popen:
    """brain_query as a user runs it against this module's brain."""
    return start_brain_query(*args, brain=f'/{NAME}')


def test_readiness_check_has_no_side_effects(brain):
    """start_brain waited with wait_for_server; a second client waits too: the brain saw no goal at all."""
    other = BrainClient(brain_name=f'/{NAME}', context=brain.node.context, node_name='bq_second_client')
    try:
        assert other.wait_for_server('point', 30.0)
        assert other.wait_for_server('ask', 30.0)
    finally:
        other.close()
    assert goal_counters(brain.node) == IDLE


# With random weights the constrained answer is points or an empty list (NOT_FOUND, goal aborted): both must read.
ANSWERED = {0: ('succeeded in ', ': OK'), 1: ('aborted in ', ': NOT_FOUND')}


def test_brain_query_prints_a_readable_summary(brain, image_file):
    run = brain_query('point', 'the red cup', '--image', str(image_file))
    out, err = run.communicate(timeout=120)
    assert run.returncode in ANSWERED, out + err
    lines = out.splitlines()
    outcome, status = ANSWERED[run.returncode]
    assert lines[0].startswith(outcome) and status in lines[0], out
    assert any(line.startswith('model robobrain-tiny; image goal 320x240') for line in lines), out
    points = next(line for line in lines if line.startswith('points [px]: '))
    assert points != 'points [px]: none' if run.returncode == 0 else points == 'points [px]: none', out
    assert lines[-1].startswith('latency [ms]: total '), out
    assert 'PointsAnswer(' not in out


def test_an_image_file_goes_as_it_is_when_the_node_can_decode_it(tmp_path):
    rgb = test_image(64, 48, seed=1)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for name, image_format in (('photo.jpg', 'jpeg'), ('frame.png', 'png')):
        path = tmp_path / name
        cv2.imwrite(str(path), bgr)
        fields = image_goal_fields(str(path))
        assert list(fields) == ['compressed_image'] and fields['compressed_image'].format == image_format
        assert bytes(fields['compressed_image'].data) == path.read_bytes()
    bmp = tmp_path / 'frame.bmp'     # not a format the node decodes: sent decoded
    cv2.imwrite(str(bmp), bgr)
    fields = image_goal_fields(str(bmp))
    assert list(fields) == ['image'] and (fields['image'].width, fields['image'].height) == (64, 48)
    np.testing.assert_array_equal(image_to_rgb(fields['image']), rgb)
    (tmp_path / 'broken.jpg').write_bytes(b'not an image')
    assert image_goal_fields(str(tmp_path / 'broken.jpg')) is None
    assert image_goal_fields(str(tmp_path / 'missing.png')) is None


def test_brain_query_json(brain, image_file):
    run = brain_query('point', 'the red cup', '--image', str(image_file), '--json')
    out, err = run.communicate(timeout=120)
    assert run.returncode in ANSWERED, out + err
    data = json.loads(out)
    assert data['reason'] is None and data['action'] == 'point' and data['brain'] == f'/{NAME}'
    points = data['answer']['points']
    if run.returncode == 0:
        assert data['outcome'] == 'succeeded' and data['answer']['info']['status']['code'] == 1
        assert points and all(0 <= p['x'] <= 320 and 0 <= p['y'] <= 240 for p in points)
    else:
        assert data['outcome'] == 'aborted' and data['answer']['info']['status']['code'] == 2 and not points


def test_rejected_goal_says_why(brain, image_file):
    transition(brain.node, NAME, Transition.TRANSITION_DEACTIVATE)
    try:
        run = brain_query('point', 'the red cup', '--image', str(image_file))
        out, err = run.communicate(timeout=120)
    finally:
        transition(brain.node, NAME, Transition.TRANSITION_ACTIVATE)
    assert run.returncode == 1, out + err
    assert out.startswith(f'rejected by /{NAME}/point after ') and 'not active' in out and 'None' not in out, out
    assert 'goal rejected: ' in brain.process.log()


def set_parameters(node, **values) -> None:
    kinds = {bool: ('bool_value', ParameterType.PARAMETER_BOOL),
             int: ('integer_value', ParameterType.PARAMETER_INTEGER),
             str: ('string_value', ParameterType.PARAMETER_STRING)}
    parameters = []
    for name, value in values.items():
        field, kind = kinds[type(value)]
        parameters.append(Parameter(name=name.replace('__', '.'), value=ParameterValue(type=kind, **{field: value})))
    response = call(node, SetParameters, f'/{NAME}/set_parameters', SetParameters.Request(parameters=parameters))
    assert all(r.successful for r in response.results), response


def test_ctrl_c_cancels_the_goal_and_two_copies_are_two_nodes(brain, image_file):
    # Generations long enough to be in flight when Ctrl-C comes (the tiny model's context is 4096 tokens).
    set_parameters(brain.node, model__structured_outputs=False, model__max_tokens=3800,
                   model__extra_body='{"min_tokens": 3800}')
    before = goal_counters(brain.node)
    runs = [brain_query('point', f'copy {i}', '--image', str(image_file)) for i in range(2)]
    try:
        for run in runs:
            said = read_stderr_until(run, 'goal accepted')
            assert 'goal accepted' in said or run.poll() is not None, said
        def names() -> list[str]:
            return [n for n, _ in brain.node.get_node_names_and_namespaces() if n.startswith('brain_query_')]
        assert wait_until(lambda: len(names()) >= 2, 10.0), names()
        assert len(set(names())) == len(names()) == 2, names()
        for run in runs:
            run.send_signal(signal.SIGINT)
        results = [run.communicate(timeout=CANCEL_WAIT + 30) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
        set_parameters(brain.node, model__structured_outputs=True, model__max_tokens=64, model__extra_body='')
    for run, (out, err) in zip(runs, results):
        assert run.returncode == 130, out + err
        assert 'interrupted: canceling the goal' in err and out.startswith('canceled in '), \
            out + err + '\nthe brain\'s log ends:\n' + brain.process.log()[-4000:]
    after = goal_counters(brain.node)
    assert int(after['goals canceled']) == int(before['goals canceled']) + 2, (before, after)


def test_the_demo_counts_a_goal_answered_only_when_it_succeeded_with_status_ok():
    # The demo compared the status code with 0, which is UNKNOWN (OK is 1): six succeeded goals printed
    # "0/6 goals succeeded" and the README's main job exited 1.
    spec = importlib.util.spec_from_file_location('demo', Path(__file__).resolve().parents[2] / 'scripts' / 'demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    def outcome(status_name: str, code: int):
        return SimpleNamespace(status_name=status_name,
                               answer=SimpleNamespace(info=SimpleNamespace(status=SimpleNamespace(code=code))))
    assert demo.answered(outcome('succeeded', QueryStatus.OK))
    assert not demo.answered(outcome('succeeded', QueryStatus.UNKNOWN))
    assert not demo.answered(outcome('aborted', QueryStatus.NOT_FOUND))


def test_goal_fields_given_as_ints_reach_the_message_as_its_types():
    # `timeout=30` is what people write. The goal's fields are float64 and uint8; Kilted's generated code does not
    # check types, and its C conversion aborted the process at send (an assertion), so this runs in a child.
    code = ('from rclpy.serialization import serialize_message\n'
            'from robobrain_ros.brain_client import BrainClient\n'
            "with BrainClient(brain_name='/nobody', node_name='goal_field_types') as client:\n"
            "    goal = client.goal('point', 'the mug', thinking=2, max_image_age=1, timeout=30)\n"
            '    serialize_message(goal)\n'
            '    print(repr(goal.timeout), repr(goal.max_image_age), repr(goal.thinking))\n')
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ['30.0', '1.0', '2']
