"""Fuzzing what the server sends, past the parser (test_protocol_parse fuzzes parse_completion itself).

- Arbitrary completions, every task and model family, through the whole result path the node runs after a
  generation: parse -> 3D lifting -> action result message -> RViz markers -> annotated image. Nothing may
  raise: a ROS message with an out-of-range field raises in its setter, which would turn an answer into an
  internal error.
- Arbitrary server-sent-event streams through the HTTP client's reader: each ends in chunks or a
  ChatClientError (which the node reports as SERVER_ERROR with the text so far), never another exception.
"""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from std_msgs.msg import Header

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.model_client import ChatClient, ChatClientError, ClientConfig
from robobrain_ros.model_client.generation import Generation
from robobrain_ros.node.answer_messages import answer_message
from robobrain_ros.node.markers import answer_markers
from robobrain_ros.node.query_pipeline import QueryCode, QueryOutcome, QueryRequest
from robobrain_ros.protocol import (
    AnswerPoint,
    CameraModel,
    ModelFamily,
    Task,
    draw_annotations,
    lift_points,
    parse_completion,
)

_NUMBERS = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(['0', '-0', '1e308', '.5', '1000', '999999999999999999999']))
_PIECES = st.one_of(
    st.sampled_from(['<think>', '</think>', '<answer>', '</answer>', '[', ']', '(', ')', ', ', '\n', '1. ', 'Step 2:',
                     '{"subtask_list": [', '"subtask_order": 1', '"robot_name": "arm"', '}', '```json', '```']),
    _NUMBERS,
    st.text(max_size=20),
)
_COMPLETIONS = st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=40).map(''.join))
_SIZE = st.tuples(st.integers(1, 2000), st.integers(1, 2000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=st.sampled_from(list(Task)), family=st.sampled_from(list(ModelFamily)),
       thinking=st.sampled_from([True, False, None]), text=_COMPLETIONS, sent=_SIZE, original=_SIZE,
       depth=st.sampled_from([0.0, 1.5, float('nan'), 1e6]))
def test_any_completion_becomes_a_valid_result_message(task, family, thinking, text, sent, original, depth):
    answer = parse_completion(task, text, thinking, sent, original, family)
    outcome = QueryOutcome(request=QueryRequest(task=task, instruction='fuzz'), header=Header(frame_id='cam'),
                           generation=Generation(text=text, tokens=3), answer=answer, original_size=original,
                           sent_size=sent, model_family=family.value, thinking=thinking)
    if answer.error:
        outcome.fail(QueryCode.PARSE_ERROR, answer.error)
    elif answer.not_found:
        outcome.fail(QueryCode.NOT_FOUND, 'nothing found')
    points = list(answer.points) or ([AnswerPoint((answer.box.x_min + answer.box.x_max) / 2, answer.box.y_min)]
                                     if answer.box else [])
    if points:
        small = np.full((8, 8), depth, np.float32)
        camera = CameraModel.from_fields(8, 8, [5, 0, 4, 0, 5, 4, 0, 0, 1], (), 'plumb_bob', [0] * 12)
        outcome.lifted = lift_points([AnswerPoint(p.x * 8 / original[0], p.y * 8 / original[1]) for p in points],
                                     (8, 8), small, 1.0, camera, False, 3)
    message = answer_message(outcome)
    assert message.info.raw_completion == text
    assert message.info.status.code == (QueryStatus.PARSE_ERROR if answer.error else
                                        QueryStatus.NOT_FOUND if answer.not_found else QueryStatus.OK)
    for point in getattr(message, 'points', []):
        assert 0 <= point.x <= original[0] and 0 <= point.y <= original[1]
    for lifted in getattr(message, 'points_3d', []):
        assert lifted.valid == (math.isfinite(lifted.depth) and lifted.depth > 0)
    answer_markers(message, 0.0)
    rgb = np.zeros((min(original[1], 64), min(original[0], 64), 3), np.uint8)
    drawn = draw_annotations(rgb, answer, 'fuzz')
    assert drawn.shape == rgb.shape


class _Content:
    def __init__(self, lines: list[bytes]) -> None:
        self._lines = list(lines)

    async def readline(self) -> bytes:
        return self._lines.pop(0) if self._lines else b''


class _Response:
    def __init__(self, lines: list[bytes]) -> None:
        self.content = _Content(lines)


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                               st.text(max_size=8)),
                     lambda children: st.one_of(st.lists(children, max_size=3),
                                                st.dictionaries(st.sampled_from(
                                                    ['choices', 'delta', 'content', 'finish_reason', 'usage',
                                                     'completion_tokens', 'prompt_tokens', 'error', 'index']),
                                                    children, max_size=4)),
                     max_leaves=12)
_EVENT = st.one_of(
    _JSON.map(lambda value: b'data: ' + json.dumps(value).encode()),
    st.builds(lambda content, finish: b'data: ' + json.dumps(
        {'choices': [{'delta': {'content': content}, 'finish_reason': finish}]}).encode(),
        st.one_of(st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
        st.one_of(st.none(), st.sampled_from(['stop', 'length']), st.integers())),
    st.binary(max_size=40),
    st.sampled_from([b'data: [DONE]', b': keep-alive', b'', b'data:', b'event: ping', b'data: {"usage": '
                     b'{"completion_tokens": "many"}}']),
)


@settings(max_examples=400, deadline=None)
@given(events=st.lists(_EVENT, max_size=12))
def test_any_event_stream_ends_in_chunks_or_a_client_error(events):
    client = ChatClient(ClientConfig(base_urls=('http://127.0.0.1:9/v1',)))

    async def read() -> str:
        text = ''
        async for chunk in client._read_sse(_Response([e + b'\n' for e in events])):
            assert isinstance(chunk.text, str) and isinstance(chunk.tokens, int)
            text += chunk.text
        return text

    try:
        asyncio.run(read())
    except ChatClientError:
        pass
