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

from robobrain_ros.model_client.chat_client import ChatClient, ChatClientError
from robobrain_ros.model_client.sse import Usage

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


class CancelLatch:
    """A cancel that may come before there is anything to stop: it is remembered, and whatever is attached later
    is stopped at once. The one latch of this package and of the node (its CancelToken builds on it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._stoppers: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> bool:
        """Stop everything attached, now and later; True the first time."""
        with self._lock:
            first = not self._event.is_set()
            self._event.set()
            stoppers = list(self._stoppers)
        for stop in stoppers:
            stop()
        return first

    def attach(self, stop: Callable[[], None]) -> None:
        """Call stop on cancel; at once when the latch was already canceled."""
        with self._lock:
            self._stoppers.append(stop)
            canceled = self._event.is_set()
        if canceled:
            stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class GenerationHandle:
    def __init__(self, future: concurrent.futures.Future, loop: asyncio.AbstractEventLoop) -> None:
        self._future = future
        self._loop = loop
        self._latch = CancelLatch()

    def _attach(self, task: asyncio.Task) -> None:
        """Called on the loop thread right after the task was created: a cancel that came first stops it before
        its first step, so nothing is sent."""
        if self._latch.requested:
            task.cancel()
        self._latch.attach(lambda: self._loop.call_soon_threadsafe(task.cancel))

    def cancel(self) -> None:
        """Stop the generation as soon as possible; result() then returns with canceled=True."""
        self._latch.cancel()

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
        self._state = threading.Lock()
        self._stopped = False
        self._pending: set[concurrent.futures.Future] = set()   # submitted generations not yet resolved

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
        with self._state:
            self._stopped = True
        if self._thread.is_alive():
            try:
                self.call(self._shutdown(), timeout=5.0)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
        # A generation submitted just before the stop may never have started: its waiter must not wait forever.
        for future in list(self._pending):
            try:
                future.set_result(Generation(canceled=True))
            except concurrent.futures.InvalidStateError:   # it ended meanwhile
                pass

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
            handle._attach(task)
            task.add_done_callback(_resolve)

        def _resolve(task: asyncio.Task) -> None:
            try:
                if task.cancelled():   # cancelled before its first step: nothing was sent
                    future.set_result(Generation(canceled=True))
                elif task.exception() is not None:
                    future.set_exception(task.exception())
                else:
                    future.set_result(task.result())
            except concurrent.futures.InvalidStateError:   # stop() resolved it meanwhile
                pass

        with self._state:
            if self._stopped or not self._thread.is_alive():
                raise RuntimeError('the request loop is stopped')
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._loop.call_soon_threadsafe(start)
        return handle

    async def _generate(self, body: Mapping[str, Any], on_progress: ProgressCallback,
                        timeout: float) -> Generation:
        generation = Generation()
        reporter = _ProgressThrottle(on_progress, self._feedback_period)
        clock = _Clock(start=time.perf_counter())
        try:
            # wait_for, not asyncio.timeout (Python 3.11+): Humble runs Python 3.10. On 3.10 the timeout is
            # asyncio.TimeoutError, which is not the builtin TimeoutError there.
            await asyncio.wait_for(self._stream(body, generation, reporter, clock), timeout)
        except asyncio.CancelledError:
            generation.canceled = True
        except asyncio.TimeoutError:
            generation.timed_out = True
        except ChatClientError as exc:
            generation.error = exc
        finally:
            end = time.perf_counter()
            if clock.first:
                generation.first_token_ms = (clock.first - clock.sent) * 1e3
                generation.generation_ms = (end - clock.first) * 1e3
            elif clock.sent > clock.start:
                generation.first_token_ms = (end - clock.sent) * 1e3
            reporter.flush(generation.tokens)
        return generation

    async def _stream(self, body: Mapping[str, Any], generation: Generation, reporter: _ProgressThrottle,
                      clock: _Clock) -> None:
        """Wait for a slot, then stream the completion into generation (times into clock)."""
        self._waiting += 1
        waiting = True
        try:
            reporter.stage(STAGE_QUEUED)
            assert self._slots is not None
            async with self._slots:
                self._waiting -= 1
                waiting = False
                self._in_flight += 1
                try:
                    clock.sent = time.perf_counter()
                    generation.queue_ms = (clock.sent - clock.start) * 1e3
                    reporter.stage(STAGE_GENERATING)
                    async for chunk in self._client.stream_chat(body):
                        if chunk.text and not clock.first:
                            clock.first = time.perf_counter()
                        generation.text += chunk.text
                        generation.tokens = chunk.tokens
                        generation.usage = chunk.usage or generation.usage
                        generation.finish_reason = chunk.finish_reason or generation.finish_reason
                        reporter.text(chunk.text, chunk.tokens)
                finally:
                    self._in_flight -= 1
        finally:
            if waiting:
                self._waiting -= 1


@dataclass
class _Clock:
    """perf_counter() times of one generation: submitted, sent to the server, first token (0.0 = not yet)."""

    start: float
    sent: float = 0.0
    first: float = 0.0


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
