"""The latest camera data, and nothing older: what a query may use.

Image callbacks only store the message (no decoding of pixels, no copy), so they stay cheap at any frame rate;
a query decodes the one frame it uses. Colour keeps the last frame of each topic (raw and compressed may both be
subscribed) and a query takes the newest of those; a topic's last frame always replaces its previous one, even with
an older stamp (a restarted driver or bag must not be ignored); depth keeps a short history so the depth frame
nearest in time to the colour frame can be chosen.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class CachedFrame:
    """One received frame: the sensor_msgs/Image or CompressedImage and where and when it came.

    stamp [s]: header stamp, the receipt time when the driver left it at zero; received [s]: node clock at receipt.
    """

    __slots__ = ('_msg', 'compressed', 'topic', 'stamp', 'received', 'frame_id')

    def __init__(self, msg: Any, *, compressed: bool, topic: str, stamp: float, received: float,
                 frame_id: str = '') -> None:
        self._msg = msg
        self.compressed = compressed
        self.topic = topic
        self.stamp = stamp
        self.received = received
        self.frame_id = frame_id

    @property
    def msg(self) -> Any:
        # A property, not an attribute: a frame kept serialized (bench/raw_frames.py) builds its message here.
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

    def forget_frames(self) -> None:
        """Drop the colour and depth frames (the clock jumped back: they are stamped in its future); camera_info,
        the calibration, stays."""
        with self._lock:
            self._colour.clear()
            self._depth.clear()

    def put_camera_info(self, msg: Any) -> None:
        with self._lock:
            self._camera_info = msg

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
