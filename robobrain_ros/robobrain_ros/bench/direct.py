"""Posting a request body straight to the server, streaming like the node: the baseline without the node."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from robobrain_ros.bench.common import forced_extra
from robobrain_ros.model_client.sse import DONE, stream_delta, stream_line
from robobrain_ros.protocol import (
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    Task,
    build_request,
    pass_jpeg_through,
    prepare_image,
)


def node_request_body(image, model: str, instruction: str, tokens: int, budget: ImageBudget = ImageBudget(),
                      jpeg_quality: int = 90) -> dict[str, Any]:
    """The body the node sends for a pointing goal with benchmark settings (common.node_params).

    image: an RGB frame (prepared as the node does), or a camera's JPEG bytes that the node passes through."""
    if isinstance(image, bytes):
        prepared = pass_jpeg_through(image, budget)
        if prepared is None:
            raise ValueError('the node would not pass this JPEG through: give the decoded frame')
    else:
        prepared = prepare_image(image, budget, jpeg_quality)
    # model.structured_outputs is false in the benchmark node; its model.extra_body is forced_extra().
    built = build_request(Task.POINTING, instruction, [prepared], False, ModelFamily.ROBOBRAIN_2_0,
                          model=model, budget=budget, constraint=ConstraintDialect.NONE,
                          max_tokens=tokens, temperature=0.0,
                          extra=forced_extra(tokens))
    return built.body


@dataclass
class DirectResult:
    seconds: float = 0.0           # request sent -> [DONE]
    first_token_s: float = 0.0     # request sent -> first chunk with text
    prompt_tokens: int = 0
    completion_tokens: int = 0
    text: str = ''
    error: str = ''


class DirectClient:
    """A streaming chat-completions poster on its own asyncio loop thread (keep-alive, like the node's)."""

    def __init__(self, base_url: str) -> None:
        self._url = base_url.rstrip('/') + '/chat/completions'
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name='bench-direct', daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None

    def close(self) -> None:
        async def _close() -> None:
            if self._session is not None:
                await self._session.close()
        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> DirectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, body: Mapping[str, Any], timeout: float = 120.0) -> DirectResult:
        return asyncio.run_coroutine_threadsafe(self._post(body), self._loop).result(timeout)

    def post_many(self, bodies: Sequence[Mapping[str, Any]], timeout: float = 300.0) -> list[DirectResult]:
        """All bodies at once (what a batching server sees from N simultaneous clients)."""
        async def together() -> list[DirectResult]:
            return list(await asyncio.gather(*(self._post(b) for b in bodies)))
        return asyncio.run_coroutine_threadsafe(together(), self._loop).result(timeout)

    async def _post(self, body: Mapping[str, Any]) -> DirectResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        result = DirectResult()
        payload = dict(body)
        payload['stream'] = True
        payload.setdefault('stream_options', {'include_usage': True})
        start = time.perf_counter()
        try:
            async with self._session.post(self._url, json=payload) as response:
                if response.status != 200:
                    result.error = f'HTTP {response.status}: {(await response.text())[:300]}'
                    return result
                async for line in response.content:
                    event = stream_line(line)
                    if event is DONE:
                        break
                    if event is None:
                        continue
                    delta = stream_delta(event)
                    if delta.text and not result.first_token_s:
                        result.first_token_s = time.perf_counter() - start
                    result.text += delta.text
                    if delta.usage is not None:
                        result.prompt_tokens = delta.usage.prompt_tokens
                        result.completion_tokens = delta.usage.completion_tokens
        except (aiohttp.ClientError, OSError, TypeError, ValueError) as exc:
            result.error = f'{type(exc).__name__}: {exc}'
        result.seconds = time.perf_counter() - start
        return result
