"""A scripted fault-injection server: OpenAI-compatible on the outside, misbehaving on purpose.

This is NOT a model server. It answers /health, /v1/models and /v1/chat/completions (streamed, or one JSON
answer when the body says "stream": false) the way vLLM does, but what each completion request gets is
scripted: a given completion text, a stall before the first token, a stall mid-stream, a dropped connection,
HTTP 500/503, an invalid JSON chunk. Its GET /version answers 404, like OpenAI-compatible servers that are not
vLLM, unless `version` is set.
The fault tests (test_reliability_*.py, test_client_*.py) and scripts/soak.py use it where a real vLLM server
cannot be made to fail (or answer correctly) on cue.

    with ScriptedServer() as server:                       # 127.0.0.1, a free port, its own thread
        server.rule('stall-me', Reply(stall_first_token=30.0))   # requests whose body contains 'stall-me'
        ...  # point the brain at server.base_url

A request takes the reply of the first rule whose key occurs in its JSON body (the instruction is in the
prompt, so tests choose the behaviour per goal, even with goals running concurrently), else `default`.
What the server saw is kept for the tests: `requests` (every completion request, how many content chunks it was
sent, whether the client had gone when the server wrote to it, an event set when the server was done with it) and
`max_in_flight` (the most completion requests open at once).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from robobrain_ros.harness.loop_thread_server import LoopThreadServer

MODEL = 'robobrain-scripted'
_SHUTDOWN_TIMEOUT = 1.0   # [s] for handlers still running at stop
# aiohttp 3.8 (Humble) takes the shutdown timeout on the site; 3.9 moved it to the runner, and 3.8's runner passes
# unknown keywords down to every request handler, which then fails on each connection.
_SHUTDOWN_ON_RUNNER = 'shutdown_timeout' in inspect.signature(web.BaseRunner.__init__).parameters


@dataclass
class Reply:
    """What one completion request gets. Times in [s]; chunk counts are SSE content chunks."""

    text: str = '[(10, 20)]'             # the completion, streamed in `chunks` pieces
    chunks: int = 4
    status: int = 200                    # != 200: answer this HTTP status with an error body, no stream
    stall_headers: float = 0.0           # silence before the response headers
    stall_first_token: float = 0.0       # headers sent, then silence before the first chunk
    chunk_delay: float = 0.0             # between chunks
    stall_after: int | None = None       # after this many chunks, stall for `stall_mid`
    stall_mid: float = 0.0
    drop_after: int | None = None        # after this many chunks, drop the TCP connection
    invalid_json_after: int | None = None   # after this many chunks, send a chunk that is not JSON
    finish_reason: str = 'stop'


@dataclass
class Received:
    body: dict[str, Any]
    reply: Reply
    at: float = field(default_factory=time.monotonic)
    headers: dict[str, str] = field(default_factory=dict)   # the request's headers, names lower-cased
    chunks_sent: int = 0                 # content chunks written to the client
    client_gone: bool = False            # a write failed: the client had closed the connection
    complete: bool = False               # the answer was complete: the request no longer counts as in flight
    ended: threading.Event = field(default_factory=threading.Event)   # set when the server is done with it


class ScriptedServer(LoopThreadServer):
    def __init__(self, port: int = 0, default: Reply | None = None) -> None:
        super().__init__('scripted-server')
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.health_status = 200             # what GET /health answers
        self.models_text: str | None = None  # GET /v1/models answers this text (e.g. a proxy's HTML) instead
        self.version: str | None = None      # GET /version answers {"version": this} when set (claims to be vLLM)
        self._rules: list[tuple[str, Reply]] = []
        self._port = port
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._lock = threading.Lock()
        # Completion requests open at once: counted from arrival until the answer is complete (its last content
        # chunk written, or its error or JSON answer ready); max_in_flight is the most seen together.
        self.in_flight = 0
        self.max_in_flight = 0

    # ------------------------------------------------------------------ control
    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f'http://127.0.0.1:{self._port}'

    @property
    def base_url(self) -> str:
        return self.root_url + '/v1'

    def rule(self, key: str, reply: Reply) -> None:
        """Requests whose JSON body contains key get reply (rules are tried in the order they were added)."""
        with self._lock:
            self._rules.append((key, reply))

    def requests_with(self, key: str) -> list[Received]:
        return [r for r in list(self.requests) if key in json.dumps(r.body)]

    # ------------------------------------------------------------------ server
    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)   # images are big; vLLM takes them
        app.router.add_get('/health', self._health)
        app.router.add_get('/version', self._version)
        app.router.add_get('/v1/models', self._models)
        app.router.add_post('/v1/chat/completions', self._chat)
        timeout = {'shutdown_timeout': _SHUTDOWN_TIMEOUT}
        self._runner = web.AppRunner(app, handle_signals=False, **(timeout if _SHUTDOWN_ON_RUNNER else {}))
        await self._runner.setup()
        site = web.TCPSite(self._runner, '127.0.0.1', self._port, **({} if _SHUTDOWN_ON_RUNNER else timeout))
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    async def _sleep(self, seconds: float) -> None:
        """A stall that ends early when the server stops."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), seconds)
            except asyncio.TimeoutError:
                pass

    async def _version(self, request: web.Request) -> web.Response:
        if self.version is None:
            return web.Response(status=404)
        return web.json_response({'version': self.version})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health_status)

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_text is not None:
            return web.Response(text=self.models_text, content_type='text/html')
        return web.json_response({'object': 'list', 'data': [{'id': MODEL, 'object': 'model'}]})

    def _reply_for(self, body: dict[str, Any]) -> Reply:
        text = json.dumps(body)
        with self._lock:
            for key, reply in self._rules:
                if key in text:
                    return reply
        return self.default

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply = self._reply_for(body)
        received = Received(body, reply, headers={k.lower(): v for k, v in request.headers.items()})
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.requests.append(received)
        try:
            return await self._answer(request, body, reply, received)
        except ConnectionResetError:   # the client went away (it timed out or was cancelled): nothing to do
            received.client_gone = True
            return web.Response(status=499)
        finally:
            self._answered(received)
            received.ended.set()

    def _answered(self, received: Received) -> None:
        """The request no longer counts as in flight (once per request)."""
        with self._lock:
            if not received.complete:
                received.complete = True
                self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any], reply: Reply,
                      received: Received) -> web.StreamResponse:
        await self._sleep(reply.stall_headers)
        if reply.status != 200:
            return web.json_response({'object': 'error', 'message': f'scripted HTTP {reply.status}',
                                      'type': 'ScriptedError', 'code': reply.status}, status=reply.status)
        if body.get('stream') is False:
            return web.json_response({
                'object': 'chat.completion', 'model': MODEL,
                'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': reply.text},
                             'finish_reason': reply.finish_reason}],
                'usage': {'prompt_tokens': 100_000, 'completion_tokens': max(1, reply.chunks)}})
        response = web.StreamResponse(headers={'Content-Type': 'text/event-stream'})
        await response.prepare(request)
        await self._sleep(reply.stall_first_token)
        pieces = _split(reply.text, reply.chunks)
        for index, piece in enumerate(pieces):
            if reply.drop_after is not None and index == reply.drop_after:
                request.transport.close()
                return response
            if reply.invalid_json_after is not None and index == reply.invalid_json_after:
                await response.write(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            if reply.stall_after is not None and index == reply.stall_after:
                await self._sleep(reply.stall_mid)
            await response.write(_event({'choices': [{'index': 0, 'delta': {'content': piece},
                                                      'finish_reason': None}]}))
            received.chunks_sent += 1
            await self._sleep(reply.chunk_delay)
        # The answer is complete: from here on the client may end the request and send its next one.
        self._answered(received)
        await response.write(_event({'choices': [{'index': 0, 'delta': {}, 'finish_reason': reply.finish_reason}]}))
        # Prompt tokens as vLLM counts them: at least the image's (the node checks the server did not shrink it).
        await response.write(_event({'choices': [], 'usage': {'prompt_tokens': 100_000,
                                                              'completion_tokens': len(pieces)}}))
        await response.write(b'data: [DONE]\n\n')
        await response.write_eof()
        return response


def _event(payload: dict[str, Any]) -> bytes:
    return b'data: ' + json.dumps(payload).encode() + b'\n\n'


def _split(text: str, chunks: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, chunks)))
    return [text[i:i + size] for i in range(0, len(text), size)]
