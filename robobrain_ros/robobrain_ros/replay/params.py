"""The node's parameters as a replay needs them: read from a ROS 2 params file, and ROS name resolution.

Pure Python (no rclpy): the parameter table itself (defaults) is the node's, read by the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and why."""


def flatten(nested: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """{'server': {'base_urls': x}} -> {'server.base_urls': x} (params files are nested, parameters dotted)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def node_sections(full_name: str) -> set[str]:
    """The keys of a params file that apply to the node /ns/name: wildcards, its name, its full name."""
    name = full_name.rstrip('/').rsplit('/', 1)[-1]
    bare = full_name.lstrip('/')
    return {'/**', '**', name, '/' + name, full_name, bare, '/**/' + name, '**/' + name}


def load_params_file(path: str | Path, full_name: str = '/robobrain') -> dict[str, Any]:
    """The parameters a params file gives the node full_name, flat (dotted names); later sections win."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ParamsError(f'cannot read the params file {path}: {exc.strerror or exc}') from None
    except yaml.YAMLError as exc:
        raise ParamsError(f'{path} is not YAML: {exc}') from None
    if not isinstance(data, dict):
        raise ParamsError(f'{path}: not a ROS 2 params file (a mapping of node names to ros__parameters)')
    wanted = node_sections(full_name)
    found: dict[str, Any] = {}
    matched = False
    for key, section in data.items():
        if str(key) not in wanted:
            continue
        if not isinstance(section, dict) or not isinstance(section.get('ros__parameters'), dict):
            raise ParamsError(f'{path}: section {key!r} has no ros__parameters mapping')
        matched = True
        found.update(flatten(section['ros__parameters']))
    if not matched:
        raise ParamsError(f"{path}: no section for the node {full_name} (its keys: {', '.join(map(str, data))}; "
                          "use '/**' or the node's name)")
    return found


def split_full_name(full_name: str) -> tuple[str, str]:
    """'/ns/robobrain' -> ('/ns', 'robobrain'); 'robobrain' -> ('', 'robobrain')."""
    full_name = '/' + full_name.strip('/')
    namespace, _, name = full_name.rpartition('/')
    if not name:
        raise ParamsError(f'{full_name!r} names no node')
    return namespace, name


def resolve_topic(topic: str, full_name: str) -> str:
    """A topic name as the node full_name resolves it: absolute stays, ~/x is under the node, x under its namespace."""
    namespace, name = split_full_name(full_name)
    if topic.startswith('/'):
        return topic
    if topic == '~':
        return f'{namespace}/{name}'
    if topic.startswith('~/'):
        return f'{namespace}/{name}/{topic[2:]}'
    return f'{namespace}/{topic}'
