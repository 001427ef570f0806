"""Generations on a private asyncio loop, for callers that live in threads (ROS executor callbacks).

The loop runs in its own thread, so no ROS callback ever waits on HTTP while holding the executor. A
semaphore caps requests in flight (vLLM batches what it gets; more than max_concurrent would only queue
inside the server where it cannot be cancelled cheaply). A caller gets a handle it can wait on with a
timeout or cancel; cancelling closes the HTTP stream at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from robobrain_ros.client.chat_client import ChatClient, ChatClientError, Usage

T = TypeVar('T')

STAGE_QUEUED = 'queued'
STAGE_GENERATING = 'generating'

# (stage, text generated since the previous call, tokens so far)
ProgressCallback = Callable[[str, str, int], None]


@dataclass
class Generation:
    """What came back for one request, complete or not."""

    text: str = ''
    tokens: int = 0
    usage: Usage | None = None
    finish_reason: str | None = None
    queue_ms: float = 0.0          # waiting for a request slot
    first_token_ms: float = 0.0    # request sent -> first token
    generation_ms: float = 0.0     # first token -> end
    canceled: bool = False
    timed_out: bool = False
    error: ChatClientError | None = None


class GenerationHandle:
    def __init__(self, future: concurrent.futures.Future, loop: asyncio.AbstractEventLoop) -> None:
        self._future = future
        self._loop = loop
        self._task: asyncio.Task | None = None
        self._cancel_requested = False
        self._lock = threading.Lock()

    def _attach(self, task: asyncio.Task) -> bool:
        with self._lock:
            self._task = task
            return not self._cancel_requested

    def cancel(self) -> None:
        """Stop the generation as soon as possible; result() then returns with canceled=True."""
        with self._lock:
            self._cancel_requested = True
            task = self._task
        if task is not None:
            self._loop.call_soon_threadsafe(task.cancel)

    def result(self, timeout: float | None = None) -> Generation:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()


class GenerationRunner:
    """Owns the asyncio loop thread, the ChatClient and the request slots."""

    def __init__(self, client: ChatClient, max_concurrent: int, feedback_period: float = 0.05) -> None:
        self._client = client
        self._max_concurrent = max_concurrent
        self._feedback_period = feedback_period
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name='robobrain-http', daemon=True)
        self._slots: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._waiting = 0

    @property
    def client(self) -> ChatClient:
        return self._client

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    def start(self) -> None:
        self._thread.start()
        self.call(self._init_slots(), timeout=5.0)

    async def _init_slots(self) -> None:
        self._slots = asyncio.Semaphore(self._max_concurrent)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self._shutdown(), timeout=5.0)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for it (for short calls: health checks, model list)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def submit_coroutine(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future:
        """Schedule a coroutine on the loop without waiting (periodic health checks from a timer)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def submit(self, body: Mapping[str, Any], on_progress: ProgressCallback, timeout: float) -> GenerationHandle:
        """Start a streamed generation that must finish within timeout [s] (slot wait included)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        handle = GenerationHandle(future, self._loop)

        def start() -> None:
            task = self._loop.create_task(self._generate(body, on_progress, timeout))
            if not handle._attach(task):
                task.cancel()
            task.add_done_callback(_resolve)

        def _resolve(task: asyncio.Task) -> None:
            if task.cancelled():   # cancelled before its first step: nothing was sent
                future.set_result(Generation(canceled=True))
            elif task.exception() is not None:
                future.set_exception(task.exception())
            else:
                future.set_result(task.result())

        self._loop.call_soon_threadsafe(start)
        return handle

    async def _generate(self, body: Mapping[str, Any], on_progress: ProgressCallback,
                        timeout: float) -> Generation:
        generation = Generation()
        reporter = _ProgressThrottle(on_progress, self._feedback_period)
        start = time.perf_counter()
        sent = start
        first = 0.0
        self._waiting += 1
        waiting = True
        try:
            async with asyncio.timeout(timeout):
                reporter.stage(STAGE_QUEUED)
                assert self._slots is not None
                async with self._slots:
                    self._waiting -= 1
                    waiting = False
                    self._in_flight += 1
                    try:
                        sent = time.perf_counter()
                        generation.queue_ms = (sent - start) * 1e3
                        reporter.stage(STAGE_GENERATING)
                        async for chunk in self._client.stream_chat(body):
                            if chunk.text and not first:
                                first = time.perf_counter()
                            generation.text += chunk.text
                            generation.tokens = chunk.tokens
                            generation.usage = chunk.usage or generation.usage
                            generation.finish_reason = chunk.finish_reason or generation.finish_reason
                            reporter.text(chunk.text, chunk.tokens)
                    finally:
                        self._in_flight -= 1
        except asyncio.CancelledError:
            generation.canceled = True
        except TimeoutError:
            generation.timed_out = True
        except ChatClientError as exc:
            generation.error = exc
        finally:
            if waiting:
                self._waiting -= 1
            end = time.perf_counter()
            if first:
                generation.first_token_ms = (first - sent) * 1e3
                generation.generation_ms = (end - first) * 1e3
            elif sent > start:
                generation.first_token_ms = (end - sent) * 1e3
            reporter.flush(generation.tokens)
        return generation


class _ProgressThrottle:
    """Forwards progress at most once per period: one feedback message per token would flood DDS."""

    def __init__(self, callback: ProgressCallback, period: float) -> None:
        self._callback = callback
        self._period = period
        self._pending = ''
        self._tokens = 0
        self._stage = ''
        self._last = 0.0

    def stage(self, stage: str) -> None:
        self._stage = stage
        self._emit()

    def text(self, text: str, tokens: int) -> None:
        self._pending += text
        self._tokens = tokens
        if time.monotonic() - self._last >= self._period:
            self._emit()

    def flush(self, tokens: int) -> None:
        self._tokens = max(self._tokens, tokens)
        if self._pending:
            self._emit()

    def _emit(self) -> None:
        text, self._pending = self._pending, ''
        self._last = time.monotonic()
        try:
            self._callback(self._stage, text, self._tokens)
        except Exception:  # a broken feedback publisher must not kill the generation
            pass
