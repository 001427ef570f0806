"""Message definitions as this ROS 2 installation has them, and whether a bag's definition is the same.

Installed definitions are the .msg (or .idl) files of share/<package>/msg/ under $AMENT_PREFIX_PATH: exactly what
rclpy serializes here, whatever the distribution (visualization_msgs/Marker, say, has fields on Kilted that
Humble's lacks). They give the output bag its definitions (robobrain_interfaces included), and tell whether a bag's
CDR bytes can be read by this installation's message classes. Pure Python on rosbags' type system; no rclpy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype

_NAME = Nodetype.NAME
_CONTAINERS = (Nodetype.ARRAY, Nodetype.SEQUENCE)


class DefinitionError(LookupError):
    """No installed definition for a type (its package is not installed here)."""


def normalize_type(msgtype: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image'."""
    parts = msgtype.strip('/').split('/')
    if len(parts) == 2:
        return f'{parts[0]}/msg/{parts[1]}'
    return '/'.join(parts)


def share_dirs() -> list[Path]:
    return [Path(prefix) / 'share' for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if prefix]


def _definition_file(msgtype: str) -> Path | None:
    package, kind, name = normalize_type(msgtype).split('/')
    for share in share_dirs():
        for suffix in ('.msg', '.idl'):
            candidate = share / package / kind / f'{name}{suffix}'
            if candidate.is_file():
                return candidate
    return None


def _types_of_file(path: Path, msgtype: str) -> dict:
    text = path.read_text()
    if path.suffix == '.msg':
        return get_types_from_msg(text, normalize_type(msgtype))
    return get_types_from_idl(text)


def _referenced(fields: list) -> Iterable[str]:
    for _, (kind, args) in fields:
        while kind in _CONTAINERS:
            kind, args = args[0]
        if kind == _NAME:
            yield args


def installed_typestore(msgtypes: Iterable[str]):
    """A rosbags typestore with these types and every type they use, from the installed definition files.

    Raises DefinitionError naming the first type without an installed definition.
    """
    store = get_typestore(Stores.EMPTY)
    known: dict = dict(store.fielddefs)
    pending = [normalize_type(t) for t in msgtypes]
    while pending:
        msgtype = pending.pop()
        if msgtype in known:
            continue
        path = _definition_file(msgtype)
        if path is None:
            raise DefinitionError(f'{msgtype}: no definition installed here (no share/{msgtype.split("/")[0]}/'
                                  f'{msgtype.split("/")[1]}/{msgtype.split("/")[2]}.msg under AMENT_PREFIX_PATH)')
        types = _types_of_file(path, msgtype)
        known.update(types)
        for _, fields in types.values():
            pending.extend(name for name in _referenced(fields) if name not in known)
    store.register({name: value for name, value in known.items() if name not in store.fielddefs})
    return store


def difference(first, second, msgtype: str) -> str:
    """'' when msgtype (and every type it uses) has the same fields in both typestores, else the first difference."""
    seen: set[str] = set()

    def compare(name: str) -> str:
        if name in seen:
            return ''
        seen.add(name)
        a, b = first.fielddefs.get(name), second.fielddefs.get(name)
        if a is None or b is None:
            return f'{name} is not defined in {"the first" if a is None else "the second"}'
        fields_a, fields_b = a[1], b[1]
        names_a, names_b = [f[0] for f in fields_a], [f[0] for f in fields_b]
        if names_a != names_b:
            return f'{name} has fields ({", ".join(names_a)}) against ({", ".join(names_b)})'
        for (field_name, type_a), (_, type_b) in zip(fields_a, fields_b):
            if _shape(type_a) != _shape(type_b):
                return f'{name}.{field_name} is {_shape(type_a)} against {_shape(type_b)}'
        for nested in _referenced(fields_a):
            problem = compare(nested)
            if problem:
                return problem
        return ''

    return compare(normalize_type(msgtype))


def _shape(field_type) -> str:
    """A field's type in words, comparable across typestores (element types, lengths, bounds)."""
    kind, args = field_type
    if kind == Nodetype.ARRAY:
        return f'{_shape(args[0])}[{args[1]}]'
    if kind == Nodetype.SEQUENCE:
        return f'sequence<{_shape(args[0])}{", " + str(args[1]) if args[1] else ""}>'
    if kind == _NAME:
        return args
    base, bound = args
    return f'{base}<={bound}' if bound else base
