"""An asyncio client for OpenAI-compatible chat servers (vLLM), built for streaming robot queries.

One job: move a request body to a server and the generated text back, as it arrives. It retries only what
is safe to retry (a connection that was never made), fails over across several base URLs, and closes the
HTTP stream the moment its task is cancelled, which makes vLLM abort the request and free its slot.
No ROS types here.

Works with aiohttp from 3.8 (Ubuntu 22.04 / Humble) on Python 3.10: it uses no exception class newer than
3.8 (aiohttp 3.10's ConnectionTimeoutError / SocketTimeoutError do not exist there, and naming one in an
`except` clause turns every error into AttributeError). A connect timeout and a read timeout after connecting
are both ServerTimeoutError on 3.8/3.9, so the client tells them apart itself: a trace hook marks the moment
the connection exists.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import aiohttp

from robobrain_ros.model_client.base_urls import base_urls_problem
from robobrain_ros.model_client.sse import DONE, StreamFormatError, Usage, stream_delta, stream_line

# The oldest aiohttp the robots' distributions ship: python3-aiohttp 3.8 on Ubuntu 22.04 (Humble).
MIN_AIOHTTP = (3, 8)


def aiohttp_version_problem(version: str) -> str | None:
    """Why this aiohttp version is too old for the client, or None when it is recent enough."""
    match = re.match(r'(\d+)\.(\d+)', version)
    if match is not None and (int(match.group(1)), int(match.group(2))) >= MIN_AIOHTTP:
        return None
    minimum = '.'.join(map(str, MIN_AIOHTTP))
    return (f'robobrain_ros needs aiohttp >= {minimum}, found {version}: install a newer one '
            f'(apt: python3-aiohttp on Ubuntu 22.04 or later; pip: "aiohttp>={minimum}")')


_problem = aiohttp_version_problem(aiohttp.__version__)
if _problem is not None:
    raise ImportError(_problem)

_GET_ANSWER_S = 5.0   # [s] after connecting, how long a GET (/v1/models, /version) may take to answer


class ChatClientError(Exception):
    """Base class of the errors this client raises."""


class ServerUnreachable(ChatClientError):
    """No connection could be made to any base URL (after the allowed retries)."""


class ServerError(ChatClientError):
    """The server was reached but answered with an error, or broke the stream."""

    def __init__(self, message: str, status: int | None = None, body: str = '') -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class StreamStalled(ChatClientError):
    """The server sent nothing for longer than the stall timeout."""


class _NotConnected(ChatClientError):
    """No connection was made to one URL (refused, timed out, DNS): safe to retry or fail over."""


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a streamed completion.

    text: the text generated since the previous chunk; tokens: completion tokens so far (exact when the
    server reports usage, else the number of content chunks, which vLLM sends one per decode step).
    """

    text: str
    tokens: int
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class ServerHealth:
    base_url: str
    reachable: bool
    healthy: bool
    models: list[str] = field(default_factory=list)
    error: str = ''
    latency_ms: float = 0.0


@dataclass(frozen=True)
class ClientConfig:
    base_urls: tuple[str, ...]
    api_key: str = ''
    connect_timeout: float = 3.0      # [s] TCP connect; a dead host fails this fast
    stall_timeout: float = 60.0       # [s] longest silence accepted inside a stream (first token included)
    connect_attempts: int = 2         # per base URL; only connection failures are retried
    retry_backoff: float = 0.2        # [s] first backoff, doubled on each further attempt
    max_connections: int = 64

    def __repr__(self) -> str:
        # A config printed to a log, a traceback or a test report must not carry the key: '***' says one is set.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown['api_key'] = '***' if self.api_key else ''
        return f"ClientConfig({', '.join(f'{name}={value!r}' for name, value in shown.items())})"


class _Attempt:
    """Per-request trace context: whether a TCP connection to the server exists (set by the trace hook)."""

    def __init__(self) -> None:
        self.connected = False


async def _mark_connected(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    if isinstance(context.trace_request_ctx, _Attempt):
        context.trace_request_ctx.connected = True


def _connection_tracer() -> aiohttp.TraceConfig:
    tracer = aiohttp.TraceConfig()
    tracer.on_connection_create_end.append(_mark_connected)
    tracer.on_connection_reuseconn.append(_mark_connected)
    return tracer


def server_root(base_url: str) -> str:
    """The server's root URL (where vLLM serves /health and /version) from an OpenAI base URL (.../v1)."""
    base_url = base_url.rstrip('/')
    return base_url[:-3] if base_url.endswith('/v1') else base_url


class ChatClient:
    """Streams chat completions from one of several OpenAI-compatible base URLs (e.g. http://host:9010/v1)."""

    def __init__(self, config: ClientConfig) -> None:
        """Raises ValueError without base URLs or with one that is not an http(s) URL."""
        problem = base_urls_problem(config.base_urls, 'ClientConfig.base_urls')
        if problem:
            raise ValueError(problem)
        self._config = config
        self._base_urls = [url.rstrip('/') for url in config.base_urls]
        self._preferred = 0   # index of the base URL that answered last; tried first next time
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_urls(self) -> list[str]:
        return list(self._base_urls)

    def _headers(self) -> dict[str, str]:
        headers = {'Content-Type': 'application/json'}
        if self._config.api_key:
            headers['Authorization'] = f'Bearer {self._config.api_key}'
        return headers

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._config.max_connections, force_close=False)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers(),
                                                  trace_configs=[_connection_tracer()])
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _urls_in_order(self) -> list[int]:
        n = len(self._base_urls)
        return [(self._preferred + i) % n for i in range(n)]

    async def stream_chat(self, body: Mapping[str, Any]) -> AsyncIterator[StreamChunk]:
        """POST body to /chat/completions with stream=true and yield chunks as they arrive.

        Raises ServerUnreachable, ServerError or StreamStalled. Cancelling the consuming task closes the
        connection at once (the server then aborts generation).
        """
        payload = dict(body)
        payload['stream'] = True
        payload.setdefault('stream_options', {'include_usage': True})
        response = await self._open('/chat/completions', payload)
        try:
            async for chunk in self._read_sse(response):
                yield chunk
        finally:
            # close(), not release(): an unfinished stream must drop the connection so vLLM sees the abort.
            response.close()

    def _timeout(self, read_timeout: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self._config.connect_timeout,
                                     sock_connect=self._config.connect_timeout, sock_read=read_timeout)

    async def _open(self, path: str, payload: Mapping[str, Any]) -> aiohttp.ClientResponse:
        session = await self._get_session()
        errors: list[str] = []
        for index in self._urls_in_order():
            url = self._base_urls[index] + path
            backoff = self._config.retry_backoff
            for attempt in range(self._config.connect_attempts):
                try:
                    response = await self._send(session, 'POST', url, payload, self._config.stall_timeout)
                except _NotConnected as exc:
                    errors.append(str(exc))
                    if attempt + 1 < self._config.connect_attempts:
                        await asyncio.sleep(backoff)
                        backoff *= 2
                    continue
                if response.status != 200:
                    text = await _read_error_body(response)
                    response.close()
                    raise ServerError(f'{url} answered HTTP {response.status}: {text[:500]}',
                                      status=response.status, body=text)
                self._preferred = index
                return response
        raise ServerUnreachable('no model server reachable: ' + '; '.join(errors))

    async def _send(self, session: aiohttp.ClientSession, method: str, url: str,
                    payload: Mapping[str, Any] | None, read_timeout: float) -> aiohttp.ClientResponse:
        """One request up to its response headers. Raises _NotConnected when no connection was made (safe to
        retry elsewhere), StreamStalled when a connected server said nothing for read_timeout [s]."""
        attempt = _Attempt()
        try:
            return await session.request(method, url, json=payload, timeout=self._timeout(read_timeout),
                                         trace_request_ctx=attempt)
        except (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError) as exc:
            if attempt.connected and isinstance(exc, asyncio.TimeoutError):
                # Connected, but no answer: the server is up and stuck. Retrying would only add load.
                raise StreamStalled(f'{url}: no answer within {read_timeout:g} s') from exc
            raise _NotConnected(f'{url}: {_describe(exc)}') from exc

    async def _request_json(self, method: str, url: str, payload: Mapping[str, Any] | None,
                            read_timeout: float) -> Any:
        session = await self._get_session()
        try:
            response = await self._send(session, method, url, payload, read_timeout)
        except _NotConnected as exc:
            raise ServerUnreachable(str(exc)) from exc
        try:
            text = await response.text()
        except asyncio.TimeoutError as exc:
            raise StreamStalled(f'{url}: the answer stopped for {read_timeout:g} s') from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ServerError(f'{url}: the answer broke off: {_describe(exc)}') from exc
        finally:
            response.close()
        if response.status != 200:
            raise ServerError(f'{url} answered HTTP {response.status}: {text[:500]}', status=response.status,
                              body=text)
        try:
            return json.loads(text)
        except ValueError:
            raise ServerError(f'{url} answered something that is not JSON: {text[:300]!r}', status=response.status,
                              body=text) from None

    async def get_json(self, url: str) -> Any:
        """GET an absolute URL and decode its JSON answer.

        Raises ServerUnreachable (no connection), StreamStalled (connected, no answer), ServerError (an HTTP
        error status, or an answer that is not JSON: the body is quoted in the message).
        """
        # A GET answers at once or the server is in trouble: no need to wait as long as for a generation.
        return await self._request_json('GET', url, None, self._config.connect_timeout + _GET_ANSWER_S)

    async def post_json(self, base_url: str, path: str, payload: Mapping[str, Any]) -> Any:
        """POST payload to one base URL (no failover: checks ask a given server) and decode the JSON answer.

        Raises as get_json.
        """
        return await self._request_json('POST', base_url.rstrip('/') + path, payload, self._config.stall_timeout)

    async def _read_sse(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        tokens = 0
        finished = False
        try:
            while True:
                try:
                    line = await response.content.readline()
                except asyncio.TimeoutError as exc:
                    raise StreamStalled(
                        f'the server sent nothing for {self._config.stall_timeout:g} s mid-stream') from exc
                if not line:
                    break
                try:
                    event = stream_line(line)
                except StreamFormatError as exc:
                    raise ServerError(str(exc)) from exc
                if event is None:
                    continue
                if event is DONE:
                    finished = True
                    break
                if 'error' in event:
                    raise ServerError(f'the server reported an error mid-stream: {event["error"]}')
                try:
                    delta = stream_delta(event)
                except (AttributeError, TypeError, ValueError) as exc:
                    # Valid JSON of the wrong shape (a proxy's error page, another API): the server's fault.
                    raise ServerError(f'unexpected stream event ({exc}): {json.dumps(event)[:200]}') from exc
                if delta.text:
                    tokens += 1
                if delta.usage is not None:
                    tokens = delta.usage.completion_tokens
                if delta.text or delta.finish_reason or delta.usage:
                    yield StreamChunk(text=delta.text, tokens=tokens, finish_reason=delta.finish_reason,
                                      usage=delta.usage)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise ServerError(f'the connection broke mid-stream: {_describe(exc)}') from exc
        if not finished:
            raise ServerError('the stream ended without [DONE] (connection closed by the server)')

    async def list_models(self, base_url: str | None = None) -> list[str]:
        """Model ids served at base_url (default: the preferred one). Raises as get_json."""
        url = (base_url or self._base_urls[self._preferred]).rstrip('/') + '/models'
        data = await self.get_json(url)
        entries = data.get('data') if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ServerError(f'{url} answered JSON without a "data" list: {json.dumps(data)[:300]}')
        return [str(item.get('id')) for item in entries if isinstance(item, dict)]

    async def check_health(self) -> list[ServerHealth]:
        """Probe every base URL: /health on the server root, then /v1/models."""
        reports = []
        for base_url in self._base_urls:
            start = time.perf_counter()
            report = ServerHealth(base_url=base_url, reachable=False, healthy=False)
            try:
                report.models = await self.list_models(base_url)
                report.reachable = True
                report.healthy = await self._health_endpoint(base_url)
                if not report.healthy:
                    report.error = 'GET /health did not answer 200 (engine down?)'
            except ChatClientError as exc:
                report.error = str(exc)
            report.latency_ms = (time.perf_counter() - start) * 1e3
            reports.append(report)
        return reports

    async def _health_endpoint(self, base_url: str) -> bool:
        root = server_root(base_url)
        session = await self._get_session()
        timeout = aiohttp.ClientTimeout(total=self._config.connect_timeout + 2.0)
        try:
            async with session.get(root + '/health', timeout=timeout) as response:
                # Servers without /health (404) are not unhealthy: /v1/models already answered.
                return response.status in (200, 404)
        except (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError):
            return False


async def _read_error_body(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.text())[:2000]
    except Exception as exc:  # the body of an error answer is informative only
        return f'<unreadable body: {_describe(exc)}>'


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f'{type(exc).__name__}: {text}' if type(exc).__name__ not in text else text

