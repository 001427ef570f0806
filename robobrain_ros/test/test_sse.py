"""Reading the chat completion stream: one module for the client, the CPU benchmarks and the GPU benchmark."""

import asyncio

import pytest

from robobrain_ros.bench.direct import DirectClient
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.model_client import ChatClient, ClientConfig
from robobrain_ros.model_client.sse import DONE, StreamDelta, StreamFormatError, Usage, stream_delta, stream_line


@pytest.mark.parametrize('line', [b'', b'\n', b': keep-alive\n', b'event: ping\n', b'id: 3\n'])
def test_lines_without_data_carry_no_event(line):
    assert stream_line(line) is None


def test_data_lines_are_events_and_done_ends_the_stream():
    assert stream_line(b'data: {"choices": []}\r\n') == {'choices': []}
    assert stream_line(b'data:{"usage": null}') == {'usage': None}
    assert stream_line(b'data: [DONE]\n') is DONE


@pytest.mark.parametrize('line, says', [(b'data: {"choices": [', 'invalid JSON'), (b'data: [1, 2]', 'unexpected'),
                                        (b'data:', 'invalid JSON')])
def test_data_that_is_not_a_json_object_is_refused(line, says):
    with pytest.raises(StreamFormatError, match=says):
        stream_line(line)


def test_an_event_gives_its_text_finish_reason_and_usage():
    event = {'choices': [{'delta': {'content': '[(1, '}, 'finish_reason': None},
                         {'delta': {'content': '2)]'}, 'finish_reason': 'stop'}],
             'usage': {'prompt_tokens': 7, 'completion_tokens': '3'}}
    assert stream_delta(event) == StreamDelta('[(1, 2)]', 'stop', Usage(7, 3))
    assert stream_delta({'choices': [{'delta': {}}], 'usage': None}) == StreamDelta()


@pytest.mark.parametrize('event', [{'choices': [{'delta': {'content': 5}}]},
                                   {'choices': [{'delta': {}, 'finish_reason': 1}]},
                                   {'usage': {'completion_tokens': 'many'}}])
def test_an_event_of_the_wrong_shape_raises(event):
    with pytest.raises((TypeError, ValueError)):
        stream_delta(event)


def test_the_client_and_the_benchmark_read_one_stream_alike():
    body = {'model': 'robobrain-scripted', 'messages': [{'role': 'user', 'content': 'x'}], 'max_tokens': 8}
    with ScriptedServer() as server:
        server.default = Reply(text='[(10, 20), (30, 40)]', chunks=5)
        with DirectClient(server.base_url) as direct:
            benchmark = direct.post(body)

        async def read() -> tuple[str, int]:
            client = ChatClient(ClientConfig(base_urls=(server.base_url,)))
            try:
                chunks = [chunk async for chunk in client.stream_chat(body)]
            finally:
                await client.close()
            return ''.join(chunk.text for chunk in chunks), chunks[-1].tokens
        text, tokens = asyncio.run(read())
    assert benchmark.error == '' and benchmark.text == text == '[(10, 20), (30, 40)]'
    assert benchmark.completion_tokens == tokens
