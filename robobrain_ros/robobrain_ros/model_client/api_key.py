"""The model server's API key on the client side: where it is read from, and where sending it would expose it.

No ROS here: the brain node and the consistency tool (which must run without ROS) read keys the same way.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from urllib.parse import urlsplit


def load_api_key(env_name: str, file_path: str, *, file_option: str) -> str:
    """The API key: from file_path when given (it wins), else from $env_name; '' = no key.

    The file holds the key on its first line (surrounding whitespace and the newline are dropped). A file that is
    named but cannot be read, or is empty, raises ValueError naming file_option (the setting that gave the path)
    and the file, never the key: a client configured for a key must not silently run without one.
    """
    if file_path:
        path = os.path.expanduser(file_path)
        try:
            with open(path, encoding='utf-8') as f:
                lines = f.read().strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ValueError(f'{file_option} {path} cannot be read: {reason}') from None
        if not lines or not lines[0].strip():
            raise ValueError(f'{file_option} {path} is empty')
        return lines[0].strip()
    if env_name:
        return os.environ.get(env_name, '').strip()
    return ''


def _is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:   # a host name: it may resolve anywhere
        return False


def insecure_key_urls(base_urls: Sequence[str], api_key: str) -> list[str]:
    """The base URLs (each once, in order) to which api_key would travel in clear text over the network: plain
    http to a host other than loopback (127.0.0.0/8, ::1, localhost). [] without a key."""
    if not api_key:
        return []
    found: list[str] = []
    for url in base_urls:
        parts = urlsplit(url)
        if parts.scheme == 'http' and not _is_loopback(parts.hostname or '') and url not in found:
            found.append(url)
    return found
