"""The latest camera data, and nothing older: what a query may use.

Image callbacks only store the message (no decoding of pixels, no copy), so they stay cheap at any frame rate;
a query decodes the one frame it uses. A CachedFrame can also hold the serialized bytes of a raw subscription
(stamp and frame_id read from the bytes, the message deserialised once, by the first query that takes it): the
node does not subscribe that way, because with rmw_fastrtps a raw take copies a frame more often than a
deserialising one (docs/BENCHMARKS.md, "Camera frames", measures both; bench/frames.py runs the raw variant).
Colour keeps the last frame of each topic (raw and compressed may both be subscribed) and a query takes the
newest of those; a topic's last frame always replaces its previous one, even with an older stamp (a restarted
driver or bag must not be ignored); depth keeps a short history so the depth frame nearest in time to the colour
frame can be chosen.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

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


class CachedFrame:
    """One received frame: its serialized bytes, deserialised into `msg` on first use (then kept), or a message.

    stamp [s]: header stamp, the receipt time when the driver left it at zero; received [s]: node clock at receipt.
    """

    __slots__ = ('compressed', 'topic', 'stamp', 'received', 'frame_id', '_msg', '_serialized', '_msg_type',
                 '_lock')

    def __init__(self, msg: Any = None, *, compressed: bool, topic: str, stamp: float, received: float,
                 frame_id: str = '', serialized: bytes | None = None, msg_type: type | None = None) -> None:
        if (msg is None) == (serialized is None) or (serialized is not None and msg_type is None):
            raise ValueError('a CachedFrame holds a message, or serialized bytes with their message type')
        self.compressed = compressed
        self.topic = topic
        self.stamp = stamp
        self.received = received
        self.frame_id = frame_id
        self._msg = msg
        self._serialized = serialized
        self._msg_type = msg_type
        self._lock = threading.Lock()

    @classmethod
    def from_serialized(cls, serialized: bytes, msg_type: type, compressed: bool, topic: str,
                        received: float) -> CachedFrame:
        """A frame from a raw subscription's bytes (sensor_msgs/Image or CompressedImage)."""
        try:
            stamp, frame_id = read_cdr_header(serialized)
        except HeaderUnreadable:
            # Not plain CDR (another middleware's encoding): deserialise now rather than guess at offsets.
            from rclpy.serialization import deserialize_message
            msg = deserialize_message(serialized, msg_type)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            return cls(msg, compressed=compressed, topic=topic, stamp=stamp or received, received=received,
                       frame_id=msg.header.frame_id)
        return cls(compressed=compressed, topic=topic, stamp=stamp or received, received=received,
                   frame_id=frame_id, serialized=serialized, msg_type=msg_type)

    @property
    def msg(self) -> Any:
        """The sensor_msgs/Image or CompressedImage; deserialised by the first caller, shared by the others."""
        with self._lock:
            if self._msg is None:
                from rclpy.serialization import deserialize_message
                self._msg = deserialize_message(self._serialized, self._msg_type)
                self._serialized = None    # the message holds the pixels now: keep one copy
            return self._msg


class FrameCache:
    def __init__(self, depth_history: int = 8) -> None:
        self._lock = threading.Condition()
        self._colour: dict[str, CachedFrame] = {}
        self._depth: deque[CachedFrame] = deque(maxlen=depth_history)
        self._camera_info: Any = None
        self._colour_count = 0
        self._last_arrival: float | None = None   # [s] time.monotonic() of the last colour frame
        self._largest_gap = 0.0                    # [s] longest time between two colour frames

    def put_colour(self, frame: CachedFrame) -> None:
        arrival = time.monotonic()
        with self._lock:
            self._colour[frame.topic] = frame
            self._colour_count += 1
            if self._last_arrival is not None:
                self._largest_gap = max(self._largest_gap, arrival - self._last_arrival)
            self._last_arrival = arrival
            self._lock.notify_all()

    def put_depth(self, frame: CachedFrame) -> None:
        with self._lock:
            self._depth.append(frame)
            self._lock.notify_all()

    def put_camera_info(self, msg: Any) -> None:
        with self._lock:
            self._camera_info = msg

    @property
    def colour_count(self) -> int:
        return self._colour_count

    def diagnostic_values(self) -> dict[str, str]:
        """/diagnostics keys of the colour stream: how many frames came and the longest wait between two."""
        with self._lock:
            return {'frames received': str(self._colour_count),
                    'largest frame gap [s]': f'{self._largest_gap:.3f}'}

    def latest_colour(self) -> CachedFrame | None:
        with self._lock:
            return self._newest()

    def _newest(self) -> CachedFrame | None:
        return max(self._colour.values(), key=lambda f: f.stamp, default=None)

    def camera_info(self) -> Any:
        with self._lock:
            return self._camera_info

    def wait_for_colour(self, max_age: float, timeout: float, now: Callable[[], float],
                        cancelled: Callable[[], bool] = lambda: False) -> tuple[CachedFrame | None, CachedFrame | None]:
        """Wait up to timeout [s] for a colour frame not older than max_age [s].

        Returns (fresh frame or None, the newest frame seen, possibly too old, for the error message).
        """
        end = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                frame = self._newest()
                if frame is not None and now() - frame.stamp <= max_age:
                    return frame, frame
                remaining = end - time.monotonic()
                if remaining <= 0 or cancelled():
                    return None, frame
                # Wake up now and then to notice a cancel even when no frame arrives.
                self._lock.wait(min(remaining, 0.05))

    def depth_near(self, stamp: float, tolerance: float, wait: float = 0.0) -> CachedFrame | None:
        """The depth frame closest in time to stamp, if within tolerance [s].

        Depth often arrives a little after the colour frame of the same instant: with wait > 0, wait up to
        that long [s] for one within tolerance to arrive.
        """
        end = time.monotonic() + wait
        with self._lock:
            while True:
                best = min(self._depth, key=lambda f: abs(f.stamp - stamp), default=None)
                if best is not None and abs(best.stamp - stamp) <= tolerance:
                    return best
                remaining = end - time.monotonic()
                # Nothing more can come: no depth frame ever arrived (no depth camera: waiting would only delay
                # every answer by `wait`), or a newer depth frame is already past the window.
                if remaining <= 0 or best is None or best.stamp > stamp + tolerance:
                    return None
                self._lock.wait(remaining)
