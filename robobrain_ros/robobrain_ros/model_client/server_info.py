"""What a model server is: its vLLM version, the models it serves, and how it takes an answer constraint.

vLLM answers `GET /version` on its root ({"version": "0.10.2"}); other OpenAI-compatible servers do not. The
version decides the constraint's request field, because every vLLM generation silently ignores fields it does
not know (it only logs a warning on the server):
- vLLM >= 0.10.2: `structured_outputs: {"regex": ...}` (guided_* still accepted until 0.12, then removed);
- older vLLM (e.g. the generation of vllm-ascend 0.9): `guided_regex`;
- no /version (not vLLM): none; answers are unconstrained and parsed tolerantly.
The choice is a claim about the server; self_checks.check_constraint verifies it with one request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from robobrain_ros.model_client.chat_client import ChatClient, ServerError, server_root
from robobrain_ros.protocol import ConstraintDialect

# The first vLLM release whose chat API takes `structured_outputs`.
STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)


@dataclass
class ServedModel:
    id: str
    max_model_len: int | None = None


@dataclass
class ServerInfo:
    base_url: str
    version: str | None                   # vLLM's version string; None when GET /version did not give one
    is_vllm: bool
    models: list[ServedModel] = field(default_factory=list)


async def fetch_server_info(client: ChatClient, base_url: str) -> ServerInfo:
    """GET <root>/version and <base_url>/models of one server.

    Raises ServerUnreachable / StreamStalled when the server cannot be asked, ServerError when /models answers
    an error status or something that is not a model list (the body is quoted). A missing or unreadable
    /version only means the server is not vLLM.
    """
    version = await _read_version(client, base_url)
    url = base_url.rstrip('/') + '/models'
    data = await client.get_json(url)
    entries = data.get('data') if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ServerError(f'{url} answered JSON that is not a model list: {str(data)[:300]!r}')
    models = [ServedModel(str(entry['id']), _int_or_none(entry.get('max_model_len')))
              for entry in entries if isinstance(entry, dict) and 'id' in entry]
    return ServerInfo(base_url=base_url, version=version, is_vllm=version is not None, models=models)


async def _read_version(client: ChatClient, base_url: str) -> str | None:
    try:
        data = await client.get_json(server_root(base_url) + '/version')
    except ServerError:   # 404, or not JSON: not a vLLM server
        return None
    version = data.get('version') if isinstance(data, dict) else None
    return version if isinstance(version, str) and version else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def version_tuple(version: str) -> tuple[int, ...] | None:
    """(0, 10, 2) from '0.10.2', '0.10.2rc1', '0.9.2+cpu' or 'v0.11.0'; None when no number leads."""
    match = re.match(r'v?(\d+(?:\.\d+)*)', version.strip())
    return tuple(int(part) for part in match.group(1).split('.')) if match else None


def choose_constraint(info: ServerInfo) -> ConstraintDialect:
    """The constraint field this server's API generation understands (see the module docstring).

    A vLLM version that does not read as numbers is taken as current (the self-check then tells).
    """
    if not info.is_vllm or info.version is None:
        return ConstraintDialect.NONE
    parsed = version_tuple(info.version)
    if parsed is not None and parsed < STRUCTURED_OUTPUTS_SINCE:
        return ConstraintDialect.GUIDED_REGEX
    return ConstraintDialect.STRUCTURED_OUTPUTS
