"""Which queries run now: admission (max_concurrent + max_queued), their cancel tokens, and draining them.

Action goals are keyed by their goal id, ~/task queries by a key of their own; the token is registered before a
query starts (an action goal's in handle_accepted_callback), so a cancel that comes before the execute callback
runs is never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from robobrain_ros.node.query_pipeline import CancelToken, QueryCode


class GoalRegistry:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._admitted = 0
        self._tokens: dict[Hashable, CancelToken] = {}

    @property
    def admitted(self) -> int:
        return self._admitted

    def admit(self, limit: int) -> str:
        """'' and a reserved slot when one more query may start, else why not."""
        with self._lock:
            if self._admitted >= limit:
                return f'{self._admitted} goals already running or queued (max_concurrent + max_queued = {limit})'
            self._admitted += 1
        return ''

    def register(self, key: Hashable) -> CancelToken:
        """The token of an admitted query (created on first use)."""
        with self._lock:
            return self._tokens.setdefault(key, CancelToken())

    def token(self, key: Hashable) -> CancelToken | None:
        with self._lock:
            return self._tokens.get(key)

    def finish(self, key: Hashable) -> None:
        """The query ended: forget its token and free its slot."""
        with self._lock:
            self._tokens.pop(key, None)
            self._admitted -= 1
            self._lock.notify_all()

    def stop_all(self, message: str, timeout: float) -> bool:
        """Stop every query (they end with NODE_STOPPING) and wait up to timeout [s]; True when all ended."""
        with self._lock:
            tokens = list(self._tokens.values())
        for token in tokens:
            token.cancel(QueryCode.NODE_STOPPING, message)
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._admitted > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True
