"""The newest camera frame prepared once for all the goals that use it.

A burst of goals without their own image all take the same newest frame: each decoding, resizing and encoding it
again cost 15-18 ms a goal on the GIL (docs/BENCHMARKS.md), so the 32nd goal of a burst was sent hundreds of
milliseconds after the first. The first goal to need a frame prepares it; goals that ask for the same frame
meanwhile wait for that result instead of doing the work again. Only the newest key is kept: a new frame replaces
it, and nothing older is held.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar('T')


class SharedPreparation(Generic[T]):
    """prepare() run once per (frame, settings): concurrent and later callers with the same key share its result.

    The frame is compared by identity (the cached message object), the settings by value. A failure is shared
    too (the same frame fails the same way), and is not kept: the next caller tries again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: object = None
        self._settings: Hashable = None
        self._result: concurrent.futures.Future | None = None

    def get(self, frame: object, settings: Hashable, prepare: Callable[[], T]) -> T:
        with self._lock:
            shared = self._result is not None and self._frame is frame and self._settings == settings
            if shared:
                result = self._result
            else:
                result = self._result = concurrent.futures.Future()
                self._frame, self._settings = frame, settings
        if shared:
            return result.result()
        try:
            value = prepare()
        except BaseException as exc:
            with self._lock:
                if self._result is result:
                    self._result = self._frame = self._settings = None
            result.set_exception(exc)
            raise
        result.set_result(value)
        return value
