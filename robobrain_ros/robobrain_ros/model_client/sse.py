"""Reading an OpenAI-compatible chat completion stream (server-sent events), one line at a time.

The client, the CPU benchmarks' direct requests and the GPU benchmark's raw path all read the stream with these,
so they count text and tokens alike. Pure functions: no HTTP, no ROS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final


class _Done:
    def __repr__(self) -> str:
        return 'DONE'


DONE: Final = _Done()   # what stream_line returns for 'data: [DONE]', the stream's last event


class StreamFormatError(ValueError):
    """A stream line or event that is not what an OpenAI-compatible server sends."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class StreamDelta:
    """What one event adds: its text, the finish reason (on the last choice event) and usage (on the last event)."""
    text: str = ''
    finish_reason: str | None = None
    usage: Usage | None = None


def stream_line(line: bytes) -> dict[str, Any] | _Done | None:
    """One line of the stream: its JSON event, DONE for [DONE], None for a line that carries no data (blank,
    comment, other field). Raises StreamFormatError for data that is not a JSON object."""
    line = line.strip()
    if not line.startswith(b'data:'):
        return None
    data = line[5:].strip()
    if data == b'[DONE]':
        return DONE
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise StreamFormatError(f'invalid JSON in the stream: {data[:200]!r}') from exc
    if not isinstance(event, dict):
        raise StreamFormatError(f'unexpected stream event: {data[:200]!r}')
    return event


def stream_delta(event: dict[str, Any]) -> StreamDelta:
    """The text, finish reason and usage of one event; TypeError/ValueError/AttributeError when it is not shaped
    like a chat completion chunk."""
    text = ''
    finish_reason = None
    for choice in event.get('choices') or []:
        delta = choice.get('delta') or {}
        content = delta.get('content') or ''
        if not isinstance(content, str):
            raise TypeError(f'content is {type(content).__name__}, not text')
        text += content
        reason = choice.get('finish_reason')
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f'finish_reason is {type(reason).__name__}, not text')
        finish_reason = reason or finish_reason
    return StreamDelta(text, finish_reason, _usage(event.get('usage')))


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(prompt_tokens=int(raw.get('prompt_tokens') or 0),
                 completion_tokens=int(raw.get('completion_tokens') or 0))
