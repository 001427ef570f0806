"""A daemon thread that runs the newest job handed to it and drops older ones still waiting.

For work whose latest result is the only one anybody wants (drawing the annotated image): a burst of answers
costs one pending job, never a queue of full frames.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class LatestOnlyWorker:
    def __init__(self, name: str) -> None:
        self._lock = threading.Condition()
        self._job: Callable[[], None] | None = None
        self._stopped = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._job is not None:
                self.dropped += 1
            self._job = job
            self._lock.notify()

    def stop(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._stopped = True
            self._job = None
            self._lock.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._job is None and not self._stopped:
                    self._lock.wait()
                if self._stopped:
                    return
                job, self._job = self._job, None
            job()
