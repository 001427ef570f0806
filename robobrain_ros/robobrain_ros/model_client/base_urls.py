"""Model server base URLs (http(s)://host[:port][/path], e.g. http://127.0.0.1:9010/v1): the one check of them.

The launch file, the node's server.base_urls and the client all refuse the same URLs with this; each says where
the URL came from. No ROS and no HTTP here.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

EXAMPLE = 'http://127.0.0.1:9010/v1'


def base_url_problem(url: str) -> str:
    """'' when url can be a base URL, else what is wrong with it, as a phrase to follow the URL ('is not ...')."""
    try:
        parts = urlsplit(url)
        parts.port   # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        return f'is not a URL: {exc}'
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return 'is not an http(s) URL with a host, like http://host:port/v1'
    # A quote pasted along with the URL, or a space, would reach the server as part of every request path.
    if any(c.isspace() or c in '"\'' for c in url):
        return 'contains a space or a quote'
    return ''


def base_urls_problem(urls: Sequence[str], name: str) -> str:
    """'' when urls is a non-empty list of base URLs, else what is wrong, naming the setting `name`."""
    if not urls:
        return f'{name} is empty: give at least one model server base URL, e.g. {EXAMPLE}'
    for url in urls:
        problem = base_url_problem(url)
        if problem:
            return f'{name} has {url!r}, which {problem}'
    return ''


def split_base_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """The base URLs of a list as given (server.base_urls): each stripped, blanks dropped."""
    return tuple(u.strip() for u in urls if u and u.strip())
