"""The HTTP client on the aiohttp and Python versions the robots ship (aiohttp >= 3.8, Python >= 3.10).

Real sockets on 127.0.0.1: a closed port (refused), a listener whose accept queue is full (the connect times
out), a listener that accepts and never answers (connected, silent), and the ScriptedServer (a fake server,
named as such) as the second URL that does answer. The older aiohttp is emulated by removing the exception
classes aiohttp 3.10 added; the real aiohttp 3.8 / Python 3.10 pair runs this file in the CI matrix.
"""

from __future__ import annotations

import asyncio
import socket
import time
import types

import aiohttp
import pytest

from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.model_client import (
    ChatClient,
    ClientConfig,
    ServerError,
    ServerUnreachable,
    StreamStalled,
    choose_constraint,
    fetch_server_info,
)
from robobrain_ros.model_client import generation as generation_module
from robobrain_ros.model_client.chat_client import aiohttp_version_problem
from robobrain_ros.model_client.generation import GenerationRunner
from robobrain_ros.protocol import ConstraintDialect

# Exception classes that aiohttp 3.10 added; 3.8 (Humble) and 3.9 (Jazzy) do not have them.
AIOHTTP_3_10_NAMES = ('SocketTimeoutError', 'ConnectionTimeoutError')


@pytest.fixture(params=['installed-aiohttp', 'aiohttp-without-3.10-names'])
def aiohttp_generation(request, monkeypatch):
    if request.param == 'aiohttp-without-3.10-names':
        for name in AIOHTTP_3_10_NAMES:
            monkeypatch.delattr(aiohttp, name, raising=False)
    return request.param


@pytest.fixture
def scripted():
    with ScriptedServer() as server:
        yield server


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture
def full_backlog_port():
    """A listener that never accepts, with its accept queue filled: new connects get no SYN-ACK and time out."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(16):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
        check = socket.socket()
        check.settimeout(0.3)
        try:
            check.connect(address)
            timed_out = False
        except socket.timeout:
            timed_out = True
        finally:
            check.close()
        if timed_out:
            break
    else:
        pytest.fail('could not fill the accept queue of a loopback listener: connects never time out')
    yield address[1]
    for sock in fillers + [listener]:
        sock.close()


@pytest.fixture
def silent_port():
    """A listener whose connections complete (the kernel accepts them) but that never answers."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


def client_for(*urls: str) -> ChatClient:
    return ChatClient(ClientConfig(base_urls=urls, connect_timeout=0.5, stall_timeout=0.5, connect_attempts=1,
                                   retry_backoff=0.01))


async def stream_text(client: ChatClient) -> str:
    try:
        text = ''
        async for chunk in client.stream_chat({'model': 'm', 'messages': []}):
            text += chunk.text
        return text
    finally:
        await client.close()


def test_failover_when_the_first_url_refuses(aiohttp_generation, scripted):
    # Finding (issue 11): `except aiohttp.SocketTimeoutError` is an AttributeError on aiohttp < 3.10, raised
    # for every connection error, so failover never happened and the goal ended in INTERNAL_ERROR.
    client = client_for(f'http://127.0.0.1:{closed_port()}/v1', scripted.base_url)
    assert asyncio.run(stream_text(client)) == '[(10, 20)]'
    assert len(scripted.requests) == 1


def test_failover_when_the_first_url_does_not_complete_the_connect(aiohttp_generation, full_backlog_port, scripted):
    client = client_for(f'http://127.0.0.1:{full_backlog_port}/v1', scripted.base_url)
    assert asyncio.run(stream_text(client)) == '[(10, 20)]'
    assert len(scripted.requests) == 1


def test_all_urls_down_is_server_unreachable(aiohttp_generation, full_backlog_port):
    refused = closed_port()
    client = client_for(f'http://127.0.0.1:{refused}/v1', f'http://127.0.0.1:{full_backlog_port}/v1')
    with pytest.raises(ServerUnreachable) as error:
        asyncio.run(stream_text(client))
    assert f':{refused}/' in str(error.value) and f':{full_backlog_port}/' in str(error.value)


def test_a_connected_server_that_never_answers_is_a_stall_not_a_failover(aiohttp_generation, silent_port, scripted):
    # Connected but silent: the server is up and stuck. Sending the request elsewhere too would double the load.
    client = client_for(f'http://127.0.0.1:{silent_port}/v1', scripted.base_url)
    with pytest.raises(StreamStalled):
        asyncio.run(stream_text(client))
    assert scripted.requests == []


def test_a_stall_mid_stream_is_stream_stalled(aiohttp_generation, scripted):
    scripted.default = Reply(text='[(1, 2), (3, 4)]', chunks=4, stall_after=2, stall_mid=30.0)
    with pytest.raises(StreamStalled):
        asyncio.run(stream_text(client_for(scripted.base_url)))


class _AsyncioOfPython310(types.ModuleType):
    """asyncio as Python 3.10 has it, for one module: no asyncio.timeout (added in 3.11)."""

    def __init__(self) -> None:
        super().__init__('asyncio')

    def __getattr__(self, name: str):
        if name == 'timeout':
            raise AttributeError("module 'asyncio' has no attribute 'timeout' (Python 3.10)")
        return getattr(asyncio, name)


def test_generation_timeout_without_asyncio_timeout(monkeypatch, scripted):
    # Finding (issue 11): generation.py used asyncio.timeout, which Python 3.10 (Humble) lacks.
    monkeypatch.setattr(generation_module, 'asyncio', _AsyncioOfPython310())
    scripted.default = Reply(stall_first_token=30.0)
    runner = GenerationRunner(ChatClient(ClientConfig(base_urls=(scripted.base_url,), stall_timeout=60.0)), 2)
    runner.start()
    try:
        result = runner.submit({'model': 'm', 'messages': []}, lambda *_: None, timeout=0.5).result(30.0)
        assert result.timed_out and not result.canceled and result.error is None
        done = runner.submit({'model': 'm', 'messages': [], 'k': 'quick'}, lambda *_: None, timeout=30.0)
        scripted.rule('quick', Reply(text='ok'))
        finished = done.result(30.0)
        assert finished.text == 'ok' and not finished.timed_out
        assert runner.in_flight == 0 and runner.waiting == 0
    finally:
        runner.stop()


def test_generation_cancel_still_works(scripted):
    scripted.default = Reply(stall_first_token=30.0)
    runner = GenerationRunner(ChatClient(ClientConfig(base_urls=(scripted.base_url,))), 2)
    runner.start()
    try:
        handle = runner.submit({'model': 'm', 'messages': []}, lambda *_: None, timeout=60.0)
        for _ in range(3000):
            if scripted.requests:
                break
            time.sleep(0.01)
        handle.cancel()
        result = handle.result(30.0)
        assert result.canceled and not result.timed_out
    finally:
        runner.stop()


@pytest.mark.parametrize(('version', 'ok'), [('3.7.4', False), ('3.8.1', True), ('3.9.1', True), ('3.14.5', True),
                                             ('4.0.0a1', True), ('3.10.0b1', True), ('unknown', False)])
def test_minimum_aiohttp_version(version, ok):
    problem = aiohttp_version_problem(version)
    assert (problem is None) is ok
    if not ok:
        assert 'aiohttp >= 3.8' in problem and version in problem


def test_installed_aiohttp_is_accepted():
    assert aiohttp_version_problem(aiohttp.__version__) is None


@pytest.mark.parametrize('url', ['notaurl', 'ftp://host/v1', 'http:///v1', ''])
def test_a_url_that_is_not_http_is_refused_at_construction(url):
    with pytest.raises(ValueError, match='URL'):
        ChatClient(ClientConfig(base_urls=('http://127.0.0.1:1/v1', url)))


def test_models_answer_that_is_not_json_is_a_server_error_quoting_it(scripted):
    # Finding (issue 12): a /v1/models answer that is not JSON escaped as an unexplained exception.
    scripted.models_text = '<html><body>502 Bad Gateway</body></html>'
    client = client_for(scripted.base_url)

    async def ask():
        try:
            return await client.list_models()
        finally:
            await client.close()
    with pytest.raises(ServerError, match='502 Bad Gateway'):
        asyncio.run(ask())


def test_a_server_without_version_is_not_vllm_and_gets_no_constraint(scripted):
    client = client_for(scripted.base_url)

    async def ask():
        try:
            return await fetch_server_info(client, scripted.base_url)
        finally:
            await client.close()
    info = asyncio.run(ask())
    assert info.is_vllm is False and info.version is None
    assert [model.id for model in info.models] == ['robobrain-scripted']
    assert choose_constraint(info) is ConstraintDialect.NONE
