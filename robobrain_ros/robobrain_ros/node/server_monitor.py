"""What the node knows about its model servers: their health (probed every server.health_period) and what
negotiation learned from each (version, constraint dialect, image limit, model family and size).

No ROS types: the node asks it for the profile a query uses, probes it from a timer and reads a snapshot of it
for /diagnostics; it logs through the callables it is given.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from robobrain_ros.model_client import ChatClientError, ServerUnreachable
from robobrain_ros.model_client.generation import GenerationRunner
from robobrain_ros.node.server_profile import NegotiationSettings, ServerProfile, negotiate

# [s] longest a goal waits for the first negotiation with a server that came back.
NEGOTIATION_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerSnapshot:
    """The monitor's state at one moment, for /diagnostics."""

    health: list = field(default_factory=list)         # client.ServerHealth per base URL; [] = not checked yet
    profile: ServerProfile | None = None               # of the first healthy server negotiated with
    negotiation_errors: dict[str, str] = field(default_factory=dict)


class ServerMonitor:
    def __init__(self, runner: GenerationRunner, negotiation: Callable[[], NegotiationSettings],
                 info: Callable[[str], None], error: Callable[[str], None]) -> None:
        self._runner = runner
        self._negotiation = negotiation
        self._info, self._error = info, error
        self._lock = threading.Lock()
        self._profiles: dict[str, ServerProfile] = {}     # base URL -> what negotiation learned
        self._negotiation_errors: dict[str, str] = {}
        self._negotiating: set[str] = set()
        self._health: list = []
        self._probe_pending = False

    def profile(self) -> ServerProfile:
        """The negotiated profile of the first server (in configured order) that answered; negotiates when none has.

        Raises ServerUnreachable (no server answers) or ChatClientError (a server answers, but not usably).
        """
        urls = self._runner.client.base_urls
        with self._lock:
            for url in urls:
                if url in self._profiles:
                    return self._profiles[url]
        errors = []
        for url in urls:
            try:
                return self._store(url, self._runner.call(self._negotiate(url), timeout=NEGOTIATION_TIMEOUT))
            except ChatClientError as exc:
                errors.append(str(exc))
            except concurrent.futures.TimeoutError:
                errors.append(f'{url}: negotiation took longer than {NEGOTIATION_TIMEOUT:g} s')
        raise ServerUnreachable('no model server answered: ' + '; '.join(errors))

    def check_now(self, health_timeout: float) -> None:
        """At configure: probe every server and negotiate with those that answer; log what is wrong."""
        runner = self._runner
        try:
            self._health = runner.call(runner.client.check_health(), timeout=health_timeout)
        except concurrent.futures.TimeoutError:
            self._health = []
        reachable = [h.base_url for h in self._health if h.reachable]
        if not reachable:
            errors = '; '.join(h.error for h in self._health) or 'no answer'
            self._error(f'model server unreachable ({errors}); goals will abort with SERVER_UNREACHABLE until it '
                        'answers: /diagnostics tells when')
        for url in reachable:
            try:
                self._store(url, runner.call(self._negotiate(url), timeout=NEGOTIATION_TIMEOUT))
            except (ChatClientError, concurrent.futures.TimeoutError) as exc:
                with self._lock:
                    self._negotiation_errors[url] = str(exc) or type(exc).__name__
                self._error(f'{url}: negotiation failed: {self._negotiation_errors[url]}')

    def probe(self) -> None:
        """Check health in the background (one check at a time); negotiate again with a server that came back."""
        with self._lock:
            if self._probe_pending:
                return
            self._probe_pending = True
        future = self._runner.submit_coroutine(self._runner.client.check_health())

        def store(done) -> None:
            self._probe_pending = False
            if done.cancelled() or done.exception() is not None:
                return
            self._health = done.result()
            for health in self._health:
                with self._lock:
                    if not health.reachable:
                        # Negotiate again when it comes back: it may be another server or version by then.
                        self._profiles.pop(health.base_url, None)
                        continue
                    if health.base_url in self._profiles or health.base_url in self._negotiating:
                        continue
                    self._negotiating.add(health.base_url)
                self._negotiate_in_background(health.base_url)

        future.add_done_callback(store)

    def snapshot(self) -> ServerSnapshot:
        health = list(self._health)
        healthy = [h for h in health if h.reachable and h.healthy]
        with self._lock:
            profile = next((self._profiles[h.base_url] for h in healthy if h.base_url in self._profiles), None)
            return ServerSnapshot(health, profile, dict(self._negotiation_errors))

    # ------------------------------------------------------------------ negotiation
    async def _negotiate(self, url: str) -> ServerProfile:
        return await negotiate(self._runner.client, url, self._negotiation())

    def _negotiate_in_background(self, url: str) -> None:
        future = self._runner.submit_coroutine(self._negotiate(url))

        def store(done) -> None:
            with self._lock:
                self._negotiating.discard(url)
            if done.cancelled():
                return
            if done.exception() is not None:
                with self._lock:
                    self._negotiation_errors[url] = str(done.exception())
                return
            self._store(url, done.result())

        future.add_done_callback(store)

    def _store(self, url: str, profile: ServerProfile) -> ServerProfile:
        with self._lock:
            first = url not in self._profiles
            self._profiles[url] = profile
            self._negotiation_errors.pop(url, None)
        if first:
            spec = profile.spec
            self._info(f"{url}: {'vLLM ' + profile.version if profile.version else 'not vLLM'}, model "
                       f"'{profile.model}' read as {spec.family.value} {spec.size.value} ({spec.source}); answer "
                       f'constraint: {profile.constraint_note}; image limit: {profile.image_limit_note}; vision: '
                       f'{profile.vision_note}')
            if profile.vision_ok is False:
                self._error(f'{url}: the vision self-check failed ({profile.vision_note}): answers about images are '
                            'likely wrong')
        return profile
