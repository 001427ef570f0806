"""The latest camera data, and nothing older: what a query may use.

Image callbacks only store the message (no decoding, no copy), so they stay cheap at any frame rate;
a query decodes the one frame it uses. Colour keeps the last frame of each topic (raw and compressed may
both be subscribed) and a query takes the newest of those; a topic's last frame always replaces its
previous one, even with an older stamp (a restarted driver or bag must not be ignored); depth keeps a short history so the depth frame nearest in time to the colour frame can be chosen.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CachedFrame:
    msg: Any                # sensor_msgs/Image or sensor_msgs/CompressedImage
    compressed: bool
    topic: str
    stamp: float            # [s] header stamp; the receipt time when the driver left it at zero
    received: float         # [s] node clock at receipt


class FrameCache:
    def __init__(self, depth_history: int = 8) -> None:
        self._lock = threading.Condition()
        self._colour: dict[str, CachedFrame] = {}
        self._depth: deque[CachedFrame] = deque(maxlen=depth_history)
        self._camera_info: Any = None
        self._colour_count = 0

    def put_colour(self, frame: CachedFrame) -> None:
        with self._lock:
            self._colour[frame.topic] = frame
            self._colour_count += 1
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
