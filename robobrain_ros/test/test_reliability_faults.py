"""Faults of the model server, the camera and the planner, against a real brain node process.

The server here is the scripted fault-injection server (robobrain_ros.harness.scripted_server), not vLLM:
a real server cannot be made to stall, drop a connection or send broken JSON on cue. Each goal's
instruction carries a key that picks its scripted reply. Every scenario asserts the goal's terminal status,
the status code and message, and that the raw text received so far is kept; after each test the node must
still be alive. No assertion here bounds wall-clock time: where a fault must end a goal by one timeout and not
another, the status code and message say which one did.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, ABORTED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED
STALL = 2.0            # [s] the brain's server.stall_timeout here
NS = '/rel_faults'


@pytest.fixture(scope='module')
def server():
    with ScriptedServer() as scripted:
        yield scripted


def _params(server: ScriptedServer, **overrides) -> dict:
    params = {'server.base_urls': [server.base_url], 'server.stall_timeout': STALL, 'queries.goal_timeout': 30.0,
              'queries.max_image_age': 2.0, 'topics.image': f'{NS}/image',
              'topics.compressed_image': f'{NS}/image/compressed', 'topics.depth': f'{NS}/depth',
              'topics.camera_info': f'{NS}/camera_info'}
    params.update(overrides)
    return params


@pytest.fixture(scope='module')
def brain(start_brain, server):
    return start_brain(_params(server), name='rb_faults')


@pytest.fixture(autouse=True)
def node_survives(request):
    yield
    if 'brain' in request.fixturenames:
        process = request.getfixturevalue('brain').process
        assert process.alive(), f'the brain node died (log {process.log_path}):\n{process.log()[-3000:]}'


def goal_image(width: int = 640, height: int = 480) -> Image:
    return rgb_to_image_msg(test_image(width, height), Header(frame_id='fault_camera'))


def run(brain, server, key: str, reply: Reply, action: str = 'point', **goal):
    server.rule(f'[{key}]', reply)
    goal.setdefault('image', goal_image())
    return brain.query(action, f'[{key}] the cup', wait_timeout=120.0, **goal)


# ---------------------------------------------------------------------------------------------- server faults
@pytest.mark.parametrize('key, reply', [
    ('stall-headers', Reply(stall_headers=120.0)),
    ('stall-first-token', Reply(stall_first_token=120.0)),
])
def test_server_stall_before_the_first_token_aborts_after_the_stall_timeout(brain, server, key, reply):
    outcome = run(brain, server, key, reply)
    status = outcome.answer.info.status
    # SERVER_ERROR naming the 2 s stall timeout: the 30 s goal timeout would have been TIMEOUT "goal timeout".
    assert outcome.status == ABORTED and status.code == QueryStatus.SERVER_ERROR, status
    assert 'stalled' in status.message and f'{STALL:g} s' in status.message
    assert outcome.answer.info.raw_completion == ''


def test_server_stall_mid_stream_keeps_the_text_received(brain, server):
    outcome = run(brain, server, 'stall-mid', Reply(text='[(10, 20), (30, 40)]', chunks=4,
                                                     stall_after=2, stall_mid=120.0))
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.SERVER_ERROR, status   # not TIMEOUT
    assert 'stalled' in status.message and 'mid-stream' in status.message and f'{STALL:g} s' in status.message
    assert outcome.answer.info.raw_completion == '[(10, 20),'   # the two chunks sent before the stall


def test_slow_stream_ends_at_the_goal_timeout_with_the_partial_text(brain, server):
    outcome = run(brain, server, 'trickle', Reply(text='x' * 200, chunks=200, chunk_delay=0.25), timeout=3.0)
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.TIMEOUT, status
    assert 'goal timeout (3 s)' in status.message
    raw = outcome.answer.info.raw_completion
    assert raw and set(raw) == {'x'} and len(raw) < 200
    # The node closed the stream at its timeout: the server's next write found the client gone, 200 chunks unsent.
    [request] = server.requests_with('[trickle]')
    assert request.ended.wait(30.0), 'the server is still streaming to the node'
    assert request.client_gone and len(raw) <= request.chunks_sent < 200, (request.client_gone, request.chunks_sent)


def test_dropped_connection_keeps_the_text_received(brain, server):
    outcome = run(brain, server, 'drop', Reply(text='[(10, 20), (30, 40)]', chunks=4, drop_after=2))
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.SERVER_ERROR, status
    assert 'connection broke mid-stream' in status.message
    assert outcome.answer.info.raw_completion == '[(10, 20),'


@pytest.mark.parametrize('http', [500, 503])
def test_http_error_status_is_a_server_error_naming_it(brain, server, http):
    outcome = run(brain, server, f'http-{http}', Reply(status=http))
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.SERVER_ERROR, status
    assert f'HTTP {http}' in status.message and 'scripted HTTP' in status.message


def test_invalid_json_chunk_is_a_server_error_and_keeps_the_text(brain, server):
    outcome = run(brain, server, 'bad-json', Reply(text='[(10, 20), (30, 40)]', chunks=4, invalid_json_after=1))
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.SERVER_ERROR, status
    assert 'invalid JSON' in status.message
    assert outcome.answer.info.raw_completion == '[(10,'


@pytest.mark.parametrize('action, text', [
    ('point', 'I cannot see any cup here.'),
    ('trajectory', 'Move left, then up.'),
    ('affordance', 'the handle (10, 20)'),
    ('ground', '[1, 2, 3]'),
    ('plan', '   '),
    ('ask', ''),
])
def test_answers_that_do_not_parse_are_parse_errors_with_the_raw_text(brain, server, action, text):
    outcome = run(brain, server, f'unparsable-{action}', Reply(text=text), action=action)
    info = outcome.answer.info
    assert outcome.status == ABORTED and info.status.code == QueryStatus.PARSE_ERROR, info.status
    assert info.raw_completion == text


def test_out_of_image_coordinates_are_clipped_and_flagged(brain, server):
    # 640x480 goal image; the model saw 644x476 (multiples of 28 near the budget), coordinates in its pixels.
    text = '[(5000, -20), (10, 20), (-100000, 100000.5)]'
    outcome = run(brain, server, 'points-outside', Reply(text=text))
    info = outcome.answer.info
    assert outcome.status == SUCCEEDED, info.status
    assert info.raw_completion == text
    points = [(p.x, p.y, p.clipped) for p in outcome.answer.points]
    assert points[0] == (640.0, 0.0, True) and points[2] == (0.0, 480.0, True)
    assert points[1][2] is False and 0 < points[1][0] < 640 and 0 < points[1][1] < 480


def test_box_outside_the_image_is_clipped(brain, server):
    outcome = run(brain, server, 'box-outside', Reply(text='[-50, -50, 9000, 9000]'), action='ground')
    box = outcome.answer.box
    assert outcome.status == SUCCEEDED and outcome.answer.has_box
    assert (box.x_min, box.y_min, box.x_max, box.y_max, box.clipped) == (0.0, 0.0, 640.0, 480.0, True)


# ---------------------------------------------------------------------------------------------- bad images
def _raw(width, height, encoding='rgb8', step=None, data=None) -> Image:
    msg = Image(header=Header(frame_id='fault_camera'), width=width, height=height, encoding=encoding)
    msg.step = width * 3 if step is None else step
    msg.data = bytes(msg.step * height) if data is None else data
    return msg


@pytest.mark.parametrize('name, image, words', [
    ('zero height', _raw(640, 0), 'empty image'),
    ('step below a row', _raw(64, 48, step=100), 'step 100 is smaller than a row'),
    ('data shorter than step x height', _raw(64, 48, data=bytes(100)), 'data holds 100 bytes'),
    ('yuv422', _raw(64, 48, encoding='yuv422'), "unsupported colour encoding 'yuv422'"),
    ('depth encoding as colour', _raw(64, 48, encoding='16UC1'), "unsupported colour encoding '16UC1'"),
    ('no encoding', _raw(64, 48, encoding=''), "unsupported colour encoding ''"),
])
def test_bad_goal_images_are_bad_image_errors(brain, server, name, image, words):
    sent = len(server.requests)
    outcome = run(brain, server, 'never-sent', Reply(), image=image)
    status = outcome.answer.info.status
    assert outcome.status == ABORTED and status.code == QueryStatus.BAD_IMAGE, (name, status)
    assert words in status.message
    assert len(server.requests) == sent, f'{name}: {len(server.requests) - sent} request(s) reached the server'


def test_padded_rows_and_bgr_are_fine(brain, server):
    rgb = test_image(96, 48)
    padded = np.zeros((48, 96 * 3 + 13), np.uint8)
    padded[:, :288] = rgb[:, :, ::-1].reshape(48, 288)
    image = _raw(96, 48, encoding='bgr8', step=96 * 3 + 13, data=padded.tobytes())
    outcome = run(brain, server, 'padded', Reply(), image=image)
    assert outcome.status == SUCCEEDED, outcome.answer.info.status
    assert (outcome.answer.info.original_width, outcome.answer.info.original_height) == (96, 48)


def test_huge_8k_frame_is_resized_to_the_budget(brain, server):
    outcome = run(brain, server, 'huge', Reply(text='[(100, 100)]'), image=goal_image(7680, 4320))
    info = outcome.answer.info
    assert outcome.status == SUCCEEDED, info.status
    assert (info.original_width, info.original_height) == (7680, 4320)
    assert info.model_width * info.model_height <= 1003520 and info.model_width % 28 == 0
    assert brain.process.alive()


def _compressed(fmt: str, data: bytes) -> CompressedImage:
    return CompressedImage(header=Header(frame_id='fault_camera'), format=fmt, data=data)


def _smooth_jpeg(width: int, height: int) -> bytes:
    """A gradient: a few hundred kB even at 8K, so the best-effort camera topic carries it whole."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    rgb = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    return cv2.imencode('.jpg', rgb)[1].tobytes()


def matched(camera) -> bool:
    """Every camera publisher of this test reaches every subscriber of its topic (the brains here)."""
    node = camera._node
    return all(0 < node.count_subscribers(publisher.topic_name) <= publisher.get_subscription_count()
               for publisher, _ in camera._messages)


def query_camera(brain, camera, frame_id: str, instruction: str, ready=lambda outcome: True, timeout: float = 60.0):
    """A goal on the camera's latest frame, asked again until it used a frame with frame_id (and ready(outcome)):
    the node keeps the last frame of every topic, so a frame of the previous test may still be the newest one until
    this camera's first frame arrives."""
    assert wait_until(lambda: matched(camera), 30.0), 'the camera publishers never matched the brain'
    outcomes = []

    def used_the_frame() -> bool:
        outcomes.append(brain.query('point', instruction, wait_timeout=120.0, max_image_age=1.5, timeout=20.0))
        return outcomes[-1].answer.info.header.frame_id == frame_id and ready(outcomes[-1])
    if not wait_until(used_the_frame, timeout, period=0.1):
        raise AssertionError(f'no goal used a frame {frame_id!r} in {len(outcomes)} goals; last outcome: '
                             f'{outcomes[-1].answer.info.header.frame_id!r} {outcomes[-1].answer.info.status}')
    return outcomes[-1]


@pytest.mark.parametrize('name, message, code, words', [
    ('corrupt JPEG', _compressed('jpeg', b'\xff\xd8\xff\xe0' + bytes(range(256)) * 8), QueryStatus.BAD_IMAGE,
     'could not decode'),
    ('corrupt PNG', _compressed('png', b'\x89PNG\r\n\x1a\n' + b'\x00garbage' * 50), QueryStatus.BAD_IMAGE,
     'could not decode'),
    ('empty payload', _compressed('jpeg', b''), QueryStatus.BAD_IMAGE, 'empty compressed image'),
    ('zero-size raw frame', _raw(0, 0, data=b''), QueryStatus.BAD_IMAGE, 'empty image'),
    ('8K JPEG', _compressed('jpeg', _smooth_jpeg(7680, 4320)), QueryStatus.OK, ''),
])
def test_bad_camera_frames_are_per_goal_errors(brain, server, camera, name, message, code, words):
    topic = f'{NS}/image/compressed' if isinstance(message, CompressedImage) else f'{NS}/image'
    message.header.frame_id = name
    camera.set((camera.publisher(type(message), topic), message))
    camera.start(rate_hz=5.0)
    outcome = query_camera(brain, camera, name, 'camera: the cup')
    status = outcome.answer.info.status
    assert status.code == code, (name, status)
    assert words in status.message
    assert outcome.status == (SUCCEEDED if code == QueryStatus.OK else ABORTED)


# ---------------------------------------------------------------------------------------------- depth faults
def _depth(width: int, height: int, value: float, encoding: str = '32FC1') -> Image:
    dtype = np.float32 if encoding == '32FC1' else np.uint16
    array = np.full((height, width), value, dtype=dtype)
    return Image(header=Header(frame_id='fault_camera'), width=width, height=height, encoding=encoding,
                 step=width * array.itemsize, data=array.tobytes())


def _info(width: int, height: int) -> CameraInfo:
    return CameraInfo(header=Header(frame_id='fault_camera'), width=width, height=height,
                      k=[500.0, 0.0, width / 2, 0.0, 500.0, height / 2, 0.0, 0.0, 1.0])


def _depth_goal(brain, server, camera, depth, info, key: str, info_topic: str = f'{NS}/camera_info'):
    """A point goal on a 640x480 colour frame published with this depth and camera_info (same stamps)."""
    server.rule(f'[{key}]', Reply(text='[(100, 100), (200, 150)]', chunks=4, chunk_delay=0.1))
    colour = goal_image(640, 480)
    # One camera: colour, depth and camera_info in the same optical frame (the node lifts only such pairings).
    for message in (colour, depth, info):
        if message is not None:
            message.header.frame_id = key
    messages = [(camera.publisher(Image, f'{NS}/depth'), depth)] if depth is not None else []
    if info is not None:
        messages.append((camera.publisher(CameraInfo, info_topic), info))
    camera.set(*messages, (camera.publisher(Image, f'{NS}/image'), colour))
    camera.start(rate_hz=5.0)
    # Until the depth reader has matched the depth publisher (discovery), a frame may have no depth partner: that
    # answer is right ("no depth") but not the one under test, so ask again.
    return query_camera(brain, camera, key, f'[{key}] the cup',
                        ready=lambda outcome: 'no depth within' not in outcome.answer.info.status.message)


@pytest.mark.parametrize('name, depth, info, words', [
    ('depth of another aspect ratio', _depth(320, 200, 1.0), _info(320, 200), 'is not registered to the 640x480'),
    ('camera_info of another size', _depth(320, 240, 1.0), _info(160, 120), 'camera_info is for 160x120'),
    ('depth in an unknown encoding', _raw(64, 48, encoding='mono8', step=64), _info(64, 48),
     "unsupported depth encoding 'mono8'"),
    ('NaN depth', _depth(320, 240, float('nan')), _info(320, 240), ''),
    ('zero depth', _depth(320, 240, 0, '16UC1'), _info(320, 240), ''),
])
def test_depth_faults_answer_in_2d_and_say_why_there_is_no_3d(brain, server, camera, name, depth, info, words):
    outcome = _depth_goal(brain, server, camera, depth, info, 'depth-' + name.replace(' ', '-'))
    answer = outcome.answer
    assert outcome.status == SUCCEEDED, (name, answer.info.status)
    assert len(answer.points) == 2
    if words:
        assert words in answer.info.status.message and answer.points_3d == []
    else:   # depth was there, but no pixel of it is usable: points are lifted as invalid
        assert answer.info.status.message == ''
        assert len(answer.points_3d) == 2 and all(not p.valid and p.depth != p.depth for p in answer.points_3d)


def test_good_depth_lifts_points(brain, server, camera):
    outcome = _depth_goal(brain, server, camera, _depth(320, 240, 2000, '16UC1'), _info(320, 240),
                           'depth-good')
    assert outcome.status == SUCCEEDED and outcome.answer.info.status.message == ''
    assert [p.valid for p in outcome.answer.points_3d] == [True, True]
    assert all(p.position.z == pytest.approx(2.0) for p in outcome.answer.points_3d)


def test_missing_camera_info_answers_in_2d(start_brain, server, camera):
    # A brain of its own: camera_info, once received, is kept for good.
    lonely = start_brain(_params(server, **{'topics.camera_info': f'{NS}/never_published_info'}),
                                   name='rb_no_camera_info')
    outcome = _depth_goal(lonely, server, camera, _depth(320, 240, 1.0), None, 'no-info')
    assert outcome.status == SUCCEEDED, outcome.answer.info.status
    assert 'no camera_info' in outcome.answer.info.status.message
    assert outcome.answer.points_3d == [] and len(outcome.answer.points) == 2
    assert lonely.process.alive()


# ---------------------------------------------------------------------------------------------- bad goals
BAD_GOALS = {
    'empty instruction': ({'instruction': ''}, 'the instruction is empty'),
    'blank instruction': ({'instruction': ' \n\t '}, 'the instruction is empty'),
    'unknown thinking': ({'thinking': 3}, 'unknown thinking value 3'),
    'negative timeout': ({'timeout': -1.0}, 'timeout must be a finite number >= 0'),
    'NaN timeout': ({'timeout': float('nan')}, 'timeout must be a finite number >= 0'),
    'infinite image age': ({'max_image_age': float('inf')}, 'max_image_age must be a finite number >= 0'),
    'oversized instruction': ({'instruction': 'x' * 4001}, 'more than max_instruction_chars (4000)'),
}


@pytest.mark.parametrize('action', ['point', 'affordance', 'trajectory', 'ground', 'plan', 'ask'])
def test_bad_goals_are_rejected_with_a_reason_for_every_action(brain, server, action):
    for name, (fields, words) in BAD_GOALS.items():
        goal = {'instruction': '[bad-goal] the cup', 'image': goal_image(64, 48), **fields}
        instruction = goal.pop('instruction')
        # Counted, not looked up by a key: the empty, blank and oversized instructions carry none.
        sent = len(server.requests)
        outcome = brain.query(action, instruction, wait_timeout=60.0, **goal)
        status = outcome.answer.info.status
        assert outcome.status == ABORTED and status.code == QueryStatus.BAD_GOAL, (action, name, status)
        assert words in status.message, (action, name, status)
        assert len(server.requests) == sent, f'{action}, {name}: {len(server.requests) - sent} request(s) sent'
