"""The brain node as its own process, real rclpy action clients, a real vLLM server with the tiny model.

With random weights the answers mean nothing; structured outputs make them well-formed, so what is
asserted is what must hold whatever the model says: goals end with the right status, raw text is kept,
parsed values are the raw ones mapped to the original image, frames and headers are the right ones.

Every test runs on both API generations the node meets: the current vLLM (answer constraints in
`structured_outputs`) and the generation of vLLM 0.9 (FlagOS / vllm-ascend 0.9: `guided_regex`; an unknown
`structured_outputs` is ignored), emulated by LegacyVllmProxy in front of the same real server (a real vLLM 0.9
cannot run here: ../shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import re
import time

import pytest
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from legacy_vllm import LegacyVllmProxy
from rclpy.action import ActionClient
from std_msgs.msg import Header

from robobrain_interfaces.action import Point
from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES
from robobrain_ros.brain_client import wait_until_answering
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, ABORTED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED
NUMBER = r'(-?\d+(?:\.\d+)?)'
PAIR = re.compile(rf'[\(\[]\s*{NUMBER}\s*,\s*{NUMBER}\s*[\)\]]')
QUAD = re.compile(rf'\[\s*{NUMBER}\s*,\s*{NUMBER}\s*,\s*{NUMBER}\s*,\s*{NUMBER}\s*\]')


# API generation -> (brain node name, the answer constraint field the node must choose for it)
GENERATIONS = {'vllm-current': ('robobrain', 'structured_outputs'), 'vllm-0.9-api': ('robobrain_v09', 'guided_regex')}


@pytest.fixture(scope='module')
def legacy_server(vllm_server):
    with LegacyVllmProxy(vllm_server.root_url) as proxy:
        yield proxy


@pytest.fixture(scope='module', params=list(GENERATIONS))
def api_generation(request):
    return request.param


@pytest.fixture(scope='module')
def server_url(api_generation, vllm_server, request):
    if api_generation == 'vllm-0.9-api':
        return request.getfixturevalue('legacy_server').base_url
    return vllm_server.base_url


@pytest.fixture(scope='module')
def brain(start_brain, server_url, api_generation):
    return start_brain({'server.base_urls': [server_url], 'model.max_tokens': 96,
                        'model.temperature': 0.0, 'queries.max_image_age': 2.0,
                        'topics.image': '/actions/image', 'topics.compressed_image': '',
                        'topics.depth': '', 'topics.camera_info': ''}, name=GENERATIONS[api_generation][0])


def diagnostics_values(ros_client, brain_name: str, timeout: float = 30.0) -> dict[str, str]:
    """The key-values of the brain's model-server status once negotiation has filled them."""
    found: dict[str, str] = {}

    def on_message(msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == f'{brain_name}: model server' and values.get('answer constraint'):
                found.update(values, level=str(int.from_bytes(status.level, 'little')
                                               if isinstance(status.level, bytes) else status.level))

    subscription = ros_client.node.create_subscription(DiagnosticArray, '/diagnostics', on_message, 10)
    try:
        wait_until(lambda: bool(found), timeout)
    finally:
        ros_client.node.destroy_subscription(subscription)
    return found


def test_diagnostics_show_what_was_negotiated(brain, ros_client, api_generation):
    name, constraint = GENERATIONS[api_generation]
    values = diagnostics_values(ros_client, f'/{name}')
    assert values, 'no negotiated settings on /diagnostics'
    assert values['answer constraint'].startswith(f'{constraint}: ') and 'verified' in values['answer constraint']
    assert values['server version'] == ('0.9.2' if api_generation == 'vllm-0.9-api' else values['server version'])
    assert values['model family'] == 'robobrain2.0 (default)' and values['model size'] == 'unknown'
    assert values['thinking'] == 'off' and values['image budget [px]'] == '3136..1003520'
    assert 'no server-side resize' in values['server image limit']


def goal_image(width: int = 640, height: int = 480, frame_id: str = 'goal_camera_optical_frame'):
    return rgb_to_image_msg(test_image(width, height), Header(frame_id=frame_id))


def expected_point(x: float, y: float, original: tuple[int, int], sent: tuple[int, int]):
    """RoboBrain 2.0: pixels of the image the model saw -> original pixels, clipped onto the image."""
    ox, oy = x * original[0] / sent[0], y * original[1] / sent[1]
    cx, cy = min(max(ox, 0.0), original[0]), min(max(oy, 0.0), original[1])
    return cx, cy, (cx, cy) != (ox, oy)


def found_or_not_found(outcome) -> bool:
    """True when the goal found something; an empty answer (allowed by the constraint) must be NOT_FOUND."""
    info = outcome.answer.info
    if info.raw_completion.startswith('[]'):
        assert outcome.status == ABORTED and info.status.code == QueryStatus.NOT_FOUND, info.status
        return False
    assert outcome.status == SUCCEEDED and info.status.code == QueryStatus.OK, info.status.message
    return True


def test_point_goal_maps_the_raw_tuples_to_the_original_image(brain):
    outcome = brain.query('point', 'the red cup', image=goal_image(1280, 720))
    found_or_not_found(outcome)
    info = outcome.answer.info
    assert info.raw_completion.endswith('</answer>')
    assert (info.original_width, info.original_height) == (1280, 720)
    assert (info.model_width, info.model_height) == (1288, 728)   # smart_resize: multiples of 28
    assert info.header.frame_id == 'goal_camera_optical_frame' and info.image_source == 'goal'
    assert info.task == 'pointing' and info.instruction == 'the red cup' and info.model == 'robobrain-tiny'
    raw = [(float(x), float(y)) for x, y in PAIR.findall(info.raw_completion)]
    assert len(raw) == len(outcome.answer.points)
    for (x, y), point in zip(raw, outcome.answer.points):
        ex, ey, clipped = expected_point(x, y, (1280, 720), (1288, 728))
        assert (point.x, point.y, point.clipped) == (pytest.approx(ex), pytest.approx(ey), clipped)
    assert outcome.answer.points_3d == []   # this brain has no depth
    # The image tokens the server counted match the size the node says the model saw.
    assert info.prompt_tokens >= (1288 // 28) * (728 // 28)
    assert info.latency.total >= info.latency.first_token > 0 and info.latency.preprocess > 0


def test_feedback_streams_stages_and_rebuilds_the_text(brain):
    outcome = brain.query('point', 'the handle', image=goal_image())
    assert outcome.status in (SUCCEEDED, ABORTED) and outcome.answer.info.status.code in (QueryStatus.OK,
                                                                                          QueryStatus.NOT_FOUND)
    raw = outcome.answer.info.raw_completion
    assert wait_until(lambda: outcome.text == raw, 2.0), (outcome.text, raw)
    stages = [f.stage for f in outcome.feedback]
    assert Point.Feedback.STAGE_QUEUED in stages and Point.Feedback.STAGE_GENERATING in stages
    assert stages == sorted(stages), stages
    # The node publishes PARSING just before the result, but feedback (a topic) and the result (a service
    # response) travel apart, and rclpy's action client drops a goal's feedback once its result is in: the
    # PARSING feedback may never reach the client (two jazzy-leg CI runs lost it). When it arrives, it is last.
    assert Point.Feedback.STAGE_PARSING not in stages[:-1], stages
    assert outcome.feedback[-1].tokens == outcome.answer.info.completion_tokens > 0


@pytest.mark.parametrize('action', ['affordance', 'ground'])
def test_box_actions(brain, action):
    outcome = brain.query(action, 'the mug', image=goal_image(800, 600))
    if not found_or_not_found(outcome):
        assert not outcome.answer.has_box
        return
    answer = outcome.answer
    assert answer.has_box and answer.info.task == {'affordance': 'affordance', 'ground': 'grounding'}[action]
    x1, y1, x2, y2 = map(float, QUAD.search(answer.info.raw_completion).groups())
    sent = (answer.info.model_width, answer.info.model_height)
    corners = [expected_point(x, y, (800, 600), sent) for x, y in ((x1, y1), (x2, y2))]
    xs, ys = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
    box = answer.box
    assert (box.x_min, box.x_max, box.y_min, box.y_max) == tuple(pytest.approx(v) for v in (*xs, *ys))
    assert box.clipped == any(c[2] for c in corners)
    assert (answer.center.x, answer.center.y) == (pytest.approx(sum(xs) / 2), pytest.approx(sum(ys) / 2))
    assert not answer.center_3d.valid


def test_trajectory_action(brain):
    outcome = brain.query('trajectory', 'put the cup on the shelf', image=goal_image())
    raw = PAIR.findall(outcome.answer.info.raw_completion)
    if found_or_not_found(outcome):
        assert 1 <= len(outcome.answer.points) == len(raw) <= 10
    else:
        assert outcome.answer.points == [] and raw == []
    assert outcome.answer.path.poses == []   # no depth: no 3D path


def test_plan_action(brain):
    outcome = brain.query('plan', 'clear the table', image=goal_image())
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    steps = outcome.answer.steps
    assert steps and [s.order for s in steps] == list(range(1, len(steps) + 1))
    numbered = re.findall(r'(?m)^(\d+)\. ', outcome.answer.info.answer_text)
    assert len(numbered) == len(steps)


def test_ask_action(brain):
    outcome = brain.query('ask', 'what is on the table?', image=goal_image())
    assert outcome.status == SUCCEEDED, outcome.answer.info.status.message
    answer = outcome.answer
    assert answer.answer and answer.answer == answer.info.answer_text
    assert answer.answer in answer.info.raw_completion


def test_goal_without_image_uses_the_latest_camera_frame(brain, camera):
    frame = rgb_to_image_msg(test_image(320, 240, seed=3), Header(frame_id='live_optical_frame'))
    camera.set((camera.create_image_publisher('/actions/image'), frame))
    camera.start()
    outcome = brain.query('point', 'the cup', max_image_age=1.0)
    found_or_not_found(outcome)
    info = outcome.answer.info
    assert info.header.frame_id == 'live_optical_frame' and info.image_source == '/actions/image'
    assert (info.original_width, info.original_height) == (320, 240)
    assert 0.0 <= info.image_age < 1.0


def test_stale_frame_aborts_with_the_reason(brain, camera):
    frame = rgb_to_image_msg(test_image(320, 240), Header(frame_id='stale_optical_frame'))
    camera.set((camera.create_image_publisher('/actions/image'), frame))
    camera.stamp_offset = -30.0
    camera.start()
    outcome = brain.query('point', 'the cup', max_image_age=0.5, timeout=1.5)
    assert outcome.status == ABORTED
    status = outcome.answer.info.status
    assert status.code == QueryStatus.IMAGE_TOO_OLD and 'older than max_image_age' in status.message


def test_eight_concurrent_goals_all_succeed(brain):
    # Eight different image sizes: eight different requests, which vLLM batches.
    handles = [brain.send('point', brain.goal('point', f'object {i}', image=goal_image(width=320 + 28 * i)))
               for i in range(8)]
    outcomes = [h.wait(120.0) for h in handles]
    assert all(o.answer.info.status.code in (QueryStatus.OK, QueryStatus.NOT_FOUND) for o in outcomes)
    assert [o.answer.info.instruction for o in outcomes] == [f'object {i}' for i in range(8)]


def test_bad_goals_abort_with_reasons(brain):
    empty = brain.query('point', '   ', image=goal_image())
    assert empty.status == ABORTED and empty.answer.info.status.code == QueryStatus.BAD_GOAL
    assert 'empty' in empty.answer.info.status.message
    thinking = brain.query('point', 'the cup', image=goal_image(), thinking=7)
    assert (thinking.answer.info.status.code == QueryStatus.BAD_GOAL
            and 'thinking' in thinking.answer.info.status.message)
    negative = brain.query('point', 'the cup', image=goal_image(), timeout=-1.0)
    assert negative.answer.info.status.code == QueryStatus.BAD_GOAL and 'timeout' in negative.answer.info.status.message
    broken = goal_image()
    broken.step = 10   # smaller than a row
    bad_image = brain.query('point', 'the cup', image=broken)
    assert bad_image.status == ABORTED and bad_image.answer.info.status.code == QueryStatus.BAD_IMAGE
    assert 'step' in bad_image.answer.info.status.message


def test_a_client_that_asks_for_the_result_late_still_gets_it(brain, ros_client):
    # A planner (or a busy client process) may ask for the result well after the goal ended; with rclpy's
    # default result_timeout (10 s) the server would answer STATUS_UNKNOWN and an empty result.
    client = ActionClient(ros_client.node, Point, f'{brain.process.full_name}/point', **ACTION_SERVICE_PROFILES)
    try:
        # Not rclpy's wait_for_server alone: a fresh client's first goal response can be lost to discovery.
        # Every request goes from the client's spinning thread: sent from this one, Jazzy's rclpy can take the
        # response before it files the request, and drops it ("Ignoring unexpected goal response").
        assert wait_until_answering(client, 30.0, submit=ros_client.in_executor)
        sent = []
        ros_client.in_executor(lambda: sent.append(
            client.send_goal_async(Point.Goal(instruction='the cup', image=goal_image()))))
        assert wait_until(lambda: sent and sent[0].done(), 30.0)
        goal_handle = sent[0].result()
        assert goal_handle.accepted
        # The status topic says when the goal ended; its result is requested only 11 s after that.
        assert wait_until(lambda: goal_handle.status in (SUCCEEDED, ABORTED), 60.0), goal_handle.status
        ended = goal_handle.status
        time.sleep(11.0)
        asked = []
        ros_client.in_executor(lambda: asked.append(goal_handle.get_result_async()))
        assert wait_until(lambda: asked and asked[0].done(), 30.0)
        result = asked[0].result()
        assert result.status == ended
        assert result.result.answer.info.instruction == 'the cup'
    finally:
        client.destroy()


def test_thinking_on_goals_end_with_the_thinking_kept_and_no_constraint_on_it(brain):
    # Random weights never close </think>: unconstrained (as it must be while the model thinks), the goal runs to
    # max_tokens and ends with PARSE_ERROR, keeping what was thought. Every action the same way.
    for action in ('point', 'plan'):
        outcome = brain.query(action, 'the cup', image=goal_image(), thinking=Point.Goal.THINKING_ON)
        info = outcome.answer.info
        assert info.thinking is True
        if outcome.status == SUCCEEDED:
            assert info.thinking_text and info.status.code == QueryStatus.OK
        else:
            assert info.status.code == QueryStatus.PARSE_ERROR, info.status
            assert 'still thinking' in info.status.message and 'thinking on' in info.status.message
            assert info.raw_completion and info.thinking_text == info.raw_completion.strip()


@pytest.fixture(scope='module')
def long_brain(start_brain, server_url, api_generation):
    """A brain whose goals generate 3800 tokens (several seconds): long enough to be canceled mid-stream."""
    return start_brain({'server.base_urls': [server_url], 'model.structured_outputs': False,
                        'model.max_tokens': 3800, 'model.extra_body': '{"min_tokens": 3800}',
                        'topics.image': '/actions/long/image', 'topics.compressed_image': '',
                        'topics.depth': '', 'topics.camera_info': ''},
                       name=GENERATIONS[api_generation][0] + '_long')


def test_a_goal_canceled_while_generating_ends_canceled(long_brain):
    handle = long_brain.send('point', long_brain.goal('point', 'the cup', image=goal_image()))
    assert wait_until(lambda: any(f.tokens > 0 for f in handle.outcome.feedback), 60.0), 'no tokens streamed'
    handle.cancel()
    outcome = handle.wait(60.0)
    assert outcome.status == GoalStatus.STATUS_CANCELED, outcome.status
    info = outcome.answer.info
    assert info.status.code == QueryStatus.CANCELED and 0 < info.completion_tokens < 3800, info
