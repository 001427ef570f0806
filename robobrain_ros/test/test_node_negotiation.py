"""What the node sends to each server and model, and what it makes of the answers: thinking prefill per model
family and size, no constraint on thinking text, "nothing found", a server that ignores the constraint field,
a server that resizes the image itself, a camera's JPEG sent unchanged.

Most tests use the scripted server (robobrain_ros.harness.scripted_server): they need an answer known in advance
(random weights never close </think> nor answer "[]" on cue) and the exact request body the node sent. The
server-side resize test uses the real vLLM server, made to resize by a per-request processor limit; the JPEG
test the real vLLM server behind a proxy that records what the node sent (test/legacy_vllm.py).
"""

from __future__ import annotations

import base64

import cv2
import pytest
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from legacy_vllm import LegacyVllmProxy
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from robobrain_interfaces.action import Point
from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, ABORTED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED
CONSTRAINT_FIELDS = ('structured_outputs', 'guided_regex', 'guided_json', 'guided_choice')


@pytest.fixture(scope='module')
def server():
    with ScriptedServer() as scripted:
        yield scripted


def params(url: str, **overrides) -> dict:
    values = {'server.base_urls': [url], 'topics.image': '/negotiation/image', 'topics.compressed_image': '',
              'topics.depth': '', 'topics.camera_info': ''}
    values.update(overrides)
    return values


def goal_image(width: int = 320, height: int = 240):
    return rgb_to_image_msg(test_image(width, height), Header(frame_id='negotiation_camera'))


def ask(brain, server: ScriptedServer, key: str, text: str, action: str = 'point', **goal):
    server.rule(key, Reply(text=text))
    outcome = brain.query(action, f'{key} the cup', image=goal_image(), wait_timeout=60.0, **goal)
    body = server.requests_with(key)[-1].body
    return outcome, body


def prefill(body: dict) -> str | None:
    last = body['messages'][-1]
    return last['content'] if last['role'] == 'assistant' else None


@pytest.fixture(scope='module')
def brain_2_0_7b(start_brain, server):
    return start_brain(params(server.base_url, **{'server.model': 'BAAI/RoboBrain2.0-7B'}), name='rb_neg_7b')


def test_thinking_on_sends_the_think_prefill_and_no_constraint_and_parses_the_answer(brain_2_0_7b, server):
    outcome, body = ask(brain_2_0_7b, server, '[think-on]', 'A cup on the left.</think><answer>[(100, 50)]</answer>',
                        thinking=Point.Goal.THINKING_ON)
    assert prefill(body) == '<think>' and body['continue_final_message'] is True
    assert not any(field in body for field in CONSTRAINT_FIELDS)
    info = outcome.answer.info
    assert outcome.status == SUCCEEDED and info.thinking is True, info.status
    assert info.thinking_text == 'A cup on the left.' and len(outcome.answer.points) == 1


def test_thinking_off_sends_the_closed_think_prefill(brain_2_0_7b, server):
    outcome, body = ask(brain_2_0_7b, server, '[think-off]', '[(100, 50)]</answer>',
                        thinking=Point.Goal.THINKING_OFF)
    assert prefill(body) == '<think></think><answer>'
    assert outcome.status == SUCCEEDED and outcome.answer.info.thinking is False


@pytest.mark.parametrize('action, text', [('point', '[]</answer>'), ('trajectory', '[]</answer>'),
                                          ('ground', '[]</answer>'), ('affordance', '[]</answer>')])
def test_an_empty_answer_ends_the_goal_not_found(brain_2_0_7b, server, action, text):
    outcome, _ = ask(brain_2_0_7b, server, f'[nothing-{action}]', text, action=action)
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.NOT_FOUND, status
    assert 'found nothing' in status.message and outcome.answer.info.raw_completion == text


@pytest.mark.parametrize('model, size, expected_prefill, family', [
    ('BAAI/RoboBrain2.0-3B', 'auto', None, 'robobrain2.0'),
    ('BAAI/RoboBrain2.5-8B', 'auto', None, 'robobrain2.5'),
    ('Qwen2.5-VL-7B-Instruct', 'auto', '<think></think><answer>', 'robobrain2.0'),   # "2.5" in a Qwen name
    ('robobrain-local', '3b', None, 'robobrain2.0'),                                    # size by parameter
])
def test_prefill_and_coordinates_follow_the_model_family(start_brain, server, model, size, expected_prefill, family):
    name = 'rb_neg_' + model.split('/')[-1].replace('.', '_').replace('-', '_').lower() + '_' + size
    brain = start_brain(params(server.base_url, **{'server.model': model, 'model.size': size}), name=name)
    outcome, body = ask(brain, server, f'[family-{name}]', '[(500, 500)]', thinking=Point.Goal.THINKING_OFF)
    assert prefill(body) == expected_prefill
    assert outcome.status == SUCCEEDED and outcome.answer.info.model_family == family, outcome.answer.info.status
    point = outcome.answer.points[0]
    if family == 'robobrain2.5':   # 0..1000 of the image: the centre of the 320x240 frame
        assert (point.x, point.y) == (pytest.approx(160.0), pytest.approx(120.0))
    else:                          # pixels of the image the model saw, clipped to the 320x240 frame
        sent = (outcome.answer.info.model_width, outcome.answer.info.model_height)
        assert (point.x, point.y) == (pytest.approx(min(500 * 320 / sent[0], 320)),
                                      pytest.approx(min(500 * 240 / sent[1], 240)))


def _server_status(ros_client, brain_name: str) -> DiagnosticStatus | None:
    found: list[DiagnosticStatus] = []

    def on_message(msg: DiagnosticArray) -> None:
        found.extend(s for s in msg.status if s.name == f'{brain_name}: model server'
                     and any(kv.key == 'answer constraint' and kv.value for kv in s.values))

    subscription = ros_client.node.create_subscription(DiagnosticArray, '/diagnostics', on_message, 10)
    try:
        wait_until(lambda: bool(found), 30.0)
    finally:
        ros_client.node.destroy_subscription(subscription)
    return found[-1] if found else None


def test_a_server_that_is_not_vllm_gets_no_constraint_and_diagnostics_warn(start_brain, server, ros_client):
    brain = start_brain(params(server.base_url), name='rb_neg_not_vllm')
    _, body = ask(brain, server, '[unconstrained]', '[(1, 2)]</answer>', thinking=Point.Goal.THINKING_OFF)
    assert not any(field in body for field in CONSTRAINT_FIELDS)
    status = _server_status(ros_client, '/rb_neg_not_vllm')
    assert status is not None and status.level == DiagnosticStatus.WARN, status
    values = {kv.key: kv.value for kv in status.values}
    assert values['answer constraint'].startswith('none') and 'unconstrained' in status.message
    assert values['server version'] == 'unknown (not vLLM)'
    # 'robobrain-scripted' is no RoboBrain release name: the Qwen2.5-VL pixel convention, said so.
    assert values['model family'] == 'robobrain2.0 (default)' and values['model size'] == 'unknown'


def test_a_server_that_ignores_the_constraint_it_claims_is_detected(start_brain, ros_client):
    # The scripted server answers /version like vLLM 0.11 would, yet honours no constraint field: the probe
    # request's answer breaks the probe's pattern, so the node must fall back to no constraint and say so.
    with ScriptedServer() as lying:
        lying.version = '0.11.0'
        brain = start_brain(params(lying.base_url), name='rb_neg_liar')
        outcome = brain.query('point', 'the cup', image=goal_image(), wait_timeout=60.0)
        assert outcome.status in (SUCCEEDED, ABORTED)
        probes = [r.body for r in lying.requests if 'structured_outputs' in r.body or 'guided_regex' in r.body]
        assert probes, 'the node sent no constraint probe'
        status = _server_status(ros_client, '/rb_neg_liar')
        values = {kv.key: kv.value for kv in status.values}
        assert values['answer constraint'].startswith('none') and 'ignored' in values['answer constraint']
        assert status.level == DiagnosticStatus.WARN
        goal_body = lying.requests[-1].body
        assert not any(field in goal_body for field in CONSTRAINT_FIELDS)


def test_an_image_the_server_resized_itself_never_gives_trusted_pixels(start_brain, vllm_server):
    # A server whose image limit is below the node's budget: here the real vLLM is told per request, by a proxy
    # in front of it (the test server trusts mm_processor_kwargs; model.extra_body may not set them, the node
    # does), to keep at most 128 visual tokens of the 644x476 (391-token) image. Without the self-check the node
    # never measured that limit (with it, it sizes its images to the limit: test_client_negotiation), so only the
    # answer's token count can tell.
    with LegacyVllmProxy(vllm_server.root_url, image_max_pixels=128 * 28 * 28) as limited:
        brain = start_brain(params(limited.base_url, **{'model.max_tokens': 32, 'server.self_check': False}),
                            name='rb_neg_resized')
        outcome = brain.query('point', 'the cup', image=goal_image(640, 480), wait_timeout=120.0)
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.PIXELS_UNTRUSTED, status
    assert 'resized the image itself' in status.message and outcome.answer.points == []
    assert outcome.answer.info.raw_completion   # what the model said is kept


def sent_image(body: dict) -> bytes:
    url = next(part['image_url']['url'] for message in body['messages'] if isinstance(message['content'], list)
               for part in message['content'] if part.get('type') == 'image_url')
    return base64.b64decode(url.split(',', 1)[1])


def test_a_camera_jpeg_in_the_goal_reaches_the_server_unchanged(start_brain, vllm_server):
    rgb = test_image(640, 480, seed=4)
    jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    header = Header(frame_id='negotiation_camera')
    with LegacyVllmProxy(vllm_server.root_url) as recording:
        brain = start_brain(params(recording.base_url, **{'model.max_tokens': 32, 'model.temperature': 0.0,
                                                          'model.allow_empty_answer': False}), name='rb_neg_jpeg')
        outcome = brain.query('point', 'the cup', compressed_image=CompressedImage(header=header, format='jpeg',
                                                                                   data=jpeg), wait_timeout=120.0)
        info = outcome.answer.info
        # The real server rounded the 640x480 JPEG to the node's 644x476 itself: had it seen another size, its
        # image token count would differ and the goal would end PIXELS_UNTRUSTED.
        assert outcome.status == SUCCEEDED, info.status
        assert (info.original_width, info.original_height, info.model_width, info.model_height) == (640, 480, 644, 476)
        assert sent_image(recording.received[-1]) == jpeg
        # The same frame as a raw image is decoded, resized and encoded by the node: other bytes, the same tokens.
        raw = brain.query('point', 'the cup', image=rgb_to_image_msg(rgb, header), wait_timeout=120.0)
        assert raw.status == SUCCEEDED, raw.answer.info.status
        assert sent_image(recording.received[-1]) != jpeg
        assert raw.answer.info.prompt_tokens == info.prompt_tokens > 0
