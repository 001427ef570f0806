"""Frames kept as a raw subscription's serialized bytes: the variant of the node that bench/frames.py measures.

The stamp and frame_id are read from the bytes at receipt; the message is deserialised once, by the first query
that takes the frame. The node does not subscribe that way, because with rmw_fastrtps a raw take copies a frame
more often than a deserialising one (docs/BENCHMARKS.md, "Camera frames", measures both).
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from robobrain_ros.node.frame_cache import CachedFrame

# CDR encapsulation: the first 2 of the 4 bytes before every serialized ROS 2 message. Plain CDR (what the ROS 2
# middlewares send) is read here; other encodings (XCDR2 adds length headers) are deserialised instead.
# Offsets in the message body count from after these 4 bytes (CDR alignment is relative to them).
_CDR_BYTE_ORDER = {b'\x00\x00': '>', b'\x00\x01': '<'}


class HeaderUnreadable(ValueError):
    """Serialized bytes that do not start with a std_msgs/Header in CDR."""


def read_cdr_header(serialized: bytes) -> tuple[float, str]:
    """(header stamp [s], frame_id) of a serialized message whose first field is a std_msgs/Header.

    Reads 16 bytes and the frame_id, not the image: builtin_interfaces/Time is int32 sec + uint32 nanosec
    at body offset 0, then frame_id as uint32 length (with its NUL) and the characters.
    """
    kind = bytes(serialized[:2])
    order = _CDR_BYTE_ORDER.get(kind)
    if order is None:
        raise HeaderUnreadable(f'not plain CDR: encapsulation {kind!r}')
    if len(serialized) < 16:
        raise HeaderUnreadable(f'{len(serialized)} bytes: too short for a header')
    sec, nanosec, length = struct.unpack_from(order + 'iII', serialized, 4)
    if length > len(serialized) - 16:
        raise HeaderUnreadable(f'frame_id length {length} runs past the {len(serialized)} bytes')
    frame_id = bytes(serialized[16:16 + max(0, length - 1)]).decode('utf-8', errors='replace')
    return sec + nanosec * 1e-9, frame_id


class SerializedFrame(CachedFrame):
    """A frame holding serialized bytes until a query takes it: deserialised by the first caller, then kept."""

    __slots__ = ('_serialized', '_msg_type', '_lock')

    def __init__(self, serialized: bytes, msg_type: type, *, compressed: bool, topic: str, stamp: float,
                 received: float, frame_id: str) -> None:
        super().__init__(None, compressed=compressed, topic=topic, stamp=stamp, received=received, frame_id=frame_id)
        self._serialized: bytes | None = serialized
        self._msg_type = msg_type
        self._lock = threading.Lock()

    @property
    def msg(self) -> Any:
        """The sensor_msgs/Image or CompressedImage; deserialised by the first caller, shared by the others."""
        with self._lock:
            if self._msg is None:
                from rclpy.serialization import deserialize_message
                self._msg = deserialize_message(self._serialized, self._msg_type)
                self._serialized = None    # the message holds the pixels now: keep one copy
            return self._msg


def raw_frame(serialized: bytes, msg_type: type, compressed: bool, topic: str, received: float) -> CachedFrame:
    """A frame from a raw subscription's bytes (sensor_msgs/Image or CompressedImage)."""
    try:
        stamp, frame_id = read_cdr_header(serialized)
    except HeaderUnreadable:
        # Not plain CDR (another middleware's encoding): deserialise now rather than guess at offsets.
        from rclpy.serialization import deserialize_message
        msg = deserialize_message(serialized, msg_type)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        return CachedFrame(msg, compressed=compressed, topic=topic, stamp=stamp or received, received=received,
                           frame_id=msg.header.frame_id)
    return SerializedFrame(serialized, msg_type, compressed=compressed, topic=topic, stamp=stamp or received,
                           received=received, frame_id=frame_id)
