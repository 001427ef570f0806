"""What a replay needs to know about the brain node: its cameras' topics, its goal timeout, its servers.

From a params file (the node the replay starts, or a running one described by the user's file) on top of the
node's own parameter table (its defaults: one source of truth), or asked from a running node over its standard
parameter services. Never from inside the node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.node import Node

from robobrain_ros.node import parameters as node_parameters

from .params import resolve_topic
from .topics import CameraInputs

# Parameters a replay reads from a running node (prefixes for ListParameters).
RUNNING_NODE_PREFIXES = ('topics', 'cameras', 'queries', 'server')


@dataclass(frozen=True)
class NodeSettings:
    cameras: list[CameraInputs]
    goal_timeout: float          # [s] queries.goal_timeout
    server_urls: list[str]
    use_sim_time: bool | None    # None: not known (a params file that does not say)

    @property
    def camera_names(self) -> list[str]:
        return [camera.name for camera in self.cameras]


def settings_from(flat: dict[str, Any], brain: str) -> NodeSettings:
    """The node's settings from its parameters (flat, dotted names) over the parameter table's defaults."""
    values = {name: spec.default for name, spec in node_parameters.PARAMETERS.items()}
    values.update(flat)
    cameras = [CameraInputs(name, *(resolve_topic(topic, brain) if topic else ''
                                    for topic in (t.image, t.compressed_image, t.camera_info, t.depth)))
               for name, t in node_parameters.camera_topics(values).items()]
    urls = values['server.base_urls']
    urls = [urls] if isinstance(urls, str) else list(urls)
    sim = flat.get('use_sim_time')
    return NodeSettings(cameras, float(values['queries.goal_timeout']), urls, None if sim is None else bool(sim))


def _value(value) -> Any:
    kinds = {ParameterType.PARAMETER_BOOL: 'bool_value', ParameterType.PARAMETER_INTEGER: 'integer_value',
             ParameterType.PARAMETER_DOUBLE: 'double_value', ParameterType.PARAMETER_STRING: 'string_value',
             ParameterType.PARAMETER_STRING_ARRAY: 'string_array_value',
             ParameterType.PARAMETER_BYTE_ARRAY: 'byte_array_value',
             ParameterType.PARAMETER_BOOL_ARRAY: 'bool_array_value',
             ParameterType.PARAMETER_INTEGER_ARRAY: 'integer_array_value',
             ParameterType.PARAMETER_DOUBLE_ARRAY: 'double_array_value'}
    field = kinds.get(value.type)
    if field is None:
        return None
    found = getattr(value, field)
    return list(found) if field.endswith('array_value') else found


def _call(node: Node, kind, name: str, request, timeout: float):
    client = node.create_client(kind, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)    # the node is spun by the session's executor thread
        return future.result() if future.done() else None
    finally:
        node.destroy_client(client)


def fetch_parameters(node: Node, brain: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """A running node's parameters (the replay's prefixes, and use_sim_time), or None when it does not answer."""
    listed = _call(node, ListParameters, f'{brain}/list_parameters',
                   ListParameters.Request(prefixes=list(RUNNING_NODE_PREFIXES), depth=0), timeout)
    if listed is None:
        return None
    names = list(listed.result.names) + ['use_sim_time']
    got = _call(node, GetParameters, f'{brain}/get_parameters', GetParameters.Request(names=names), timeout)
    if got is None:
        return None
    return {name: _value(value) for name, value in zip(names, got.values)
            if _value(value) is not None}
