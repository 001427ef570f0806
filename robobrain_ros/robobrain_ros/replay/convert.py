"""From a bag's CDR bytes to this installation's rclpy message objects, by type name.

A topic can be replayed when its type's Python package is installed here and the bag's definition of the type
(from the bag itself) is the installed one: the bytes are then read with rclpy.serialization.deserialize_message
into the rclpy class. That holds for the camera and tf types from Humble to Kilted. Anything else is skipped with
the reason (unusable()).
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from rclpy.serialization import deserialize_message

from .definitions import DefinitionError, difference, installed_typestore, normalize_type

# PyPI's ROS 2 wheels have no tf2_msgs: say what that means for a replay.
_MISSING_HINTS = {'tf2_msgs': 'tf2_msgs is not installed here (the ROS 2 PyPI wheels have none); target frames '
                              'need a ROS 2 install with tf2 (apt install ros-$ROS_DISTRO-tf2-msgs)'}


@lru_cache(maxsize=None)
def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image; ImportError (with why) when it is not installed here."""
    package, kind, name = normalize_type(msgtype).split('/')
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError:
        raise ImportError(_MISSING_HINTS.get(package, f'no Python message package {package} is installed here '
                                                      f'(its ROS 2 package {package.replace("_", "-")})')) from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f'{package} is installed here but has no {kind} {name}') from None


def type_name(cls: type) -> str:
    """sensor_msgs.msg.Image -> 'sensor_msgs/msg/Image'."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


class Converter:
    def __init__(self, bag_typestore, definitions_in_bag: bool) -> None:
        self._bag_store = bag_typestore
        self._definitions_in_bag = definitions_in_bag

    def unusable(self, topic: str, msgtype: str) -> str:
        """'' when messages of msgtype can be converted here, else why not (for the warning)."""
        try:
            message_class(msgtype)
        except ImportError as exc:
            return str(exc)
        try:
            installed = installed_typestore([msgtype])
        except DefinitionError as exc:
            return str(exc)
        if self._definitions_in_bag:
            problem = difference(self._bag_store, installed, msgtype)
            if problem:
                return f"the bag's definition of {normalize_type(msgtype)} is not the installed one: {problem}"
        return ''

    @staticmethod
    def convert(msgtype: str, raw: bytes):
        return deserialize_message(raw, message_class(msgtype))
