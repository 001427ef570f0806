"""Run the server in its own process group, wait for /health, stop the whole group.

The server gets a new session (``start_new_session``), so a terminal's Ctrl-C reaches only
the supervisor, which forwards it; stopping sends SIGTERM (then SIGKILL after a grace period)
to the group and to every descendant seen while it ran (in case one moved to another
group), then reaps. On Linux the server also gets SIGTERM if the supervisor dies
(PR_SET_PDEATHSIG), so a killed supervisor leaves no server behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Collection, Sequence

try:  # optional: better descendant tracking
    import psutil
except ImportError:  # pragma: no cover
    psutil = None


class StartupError(RuntimeError):
    """The server exited or did not become healthy in time."""


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = '127.0.0.1') -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pdeathsig():
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def allowed_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on; None where the OS has no CPU affinity (not Linux)."""
    getaffinity = getattr(os, 'sched_getaffinity', None)
    return frozenset(getaffinity(0)) if getaffinity else None


def server_cpus(reserved: int, available: Collection[int] | None) -> tuple[frozenset[int] | None, str | None]:
    """The CPUs the server is pinned to when `reserved` of the `available` ones are kept for the robot.

    The lowest-numbered CPUs are kept (where the OS and the camera drivers usually run). Returns (None, None)
    for no pinning, and (None, why) when the server cannot be pinned (too few CPUs, or no CPU affinity here).
    """
    if reserved <= 0:
        return None, None
    if available is None:
        return None, 'reserved_cpus needs CPU affinity (Linux): the server is not pinned'
    cpus = sorted(available)
    if len(cpus) <= reserved:
        return None, (f'reserved_cpus is {reserved} but only {len(cpus)} CPUs are available: '
                      'the server is not pinned')
    return frozenset(cpus[reserved:]), None


def cpu_list(cpus: Collection[int]) -> str:
    """'1-3,6': the form taskset -c and /sys/.../cpulist use."""
    ranges: list[list[int]] = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ','.join(str(a) if a == b else f'{a}-{b}' for a, b in ranges)


class Supervisor:
    def __init__(self, argv: Sequence[str], env: dict[str, str], health_url: str,
                 log_path: str | None = None, headers: dict[str, str] | None = None,
                 out: Callable[[str], None] | None = None, cpus: Collection[int] | None = None):
        self.argv = list(argv)
        self.cpus = frozenset(cpus) if cpus else None   # CPU affinity of the server and all it starts
        self.env = dict(env)
        self.health_url = health_url
        self.log_path = log_path
        self.headers = headers or {}
        self.out = out or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._seen: dict[int, float] = {}  # pid -> create_time of descendants seen
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        stdout = None
        if self.log_path:
            self._log = open(self.log_path, 'ab', buffering=0)
            stdout = self._log
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None, start_new_session=True,
            preexec_fn=self._prepare_child if sys.platform.startswith('linux') else None)

    def _prepare_child(self) -> None:
        """In the child before exec: die with this process, and keep to the server's CPUs (children inherit)."""
        _pdeathsig()
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def poll(self) -> int | None:
        self._remember_children()
        return self.proc.poll() if self.proc else None

    def healthy(self, timeout: float = 2.0) -> bool:
        req = urllib.request.Request(self.health_url, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float, progress_every: float = 10.0,
                   should_stop: Callable[[], bool] = lambda: False) -> float:
        """Block until /health answers 200; returns seconds waited. Raises StartupError."""
        t0 = time.monotonic()
        next_report = t0 + progress_every
        while True:
            code = self.poll()
            if code is not None:
                raise StartupError(f'the server exited with code {code} before it was ready'
                                   + self._log_hint())
            if self.healthy():
                return time.monotonic() - t0
            now = time.monotonic()
            if should_stop():
                raise StartupError('interrupted while waiting for the server')
            if now - t0 > timeout:
                raise StartupError(f'the server was not healthy after {timeout:.0f} s '
                                   f'({self.health_url})' + self._log_hint())
            if now >= next_report:
                self.out(f'waiting for {self.health_url} '
                         f'({now - t0:.0f} s of {timeout:.0f} s, pid {self.proc.pid})')
                next_report += progress_every
            time.sleep(0.5)

    def _log_hint(self) -> str:
        if not self.log_path:
            return ''
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 3000))
                tail = f.read().decode('utf-8', 'replace')
        except OSError:
            tail = ''
        return f'; log: {self.log_path}\n--- last lines ---\n{tail}'

    def _remember_children(self) -> None:
        if psutil is None or self.proc is None:
            return
        try:
            for c in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    self._seen.setdefault(c.pid, c.create_time())
                except psutil.Error:
                    pass
        except psutil.Error:
            pass

    def _alive_descendants(self) -> list:
        if psutil is None:
            return []
        alive = []
        for pid, ctime in self._seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == ctime and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                pass
        return alive

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the server's process group (and descendants outside it)."""
        if self.proc is None:
            return
        self._remember_children()
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in self._alive_descendants():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    def stop(self, grace: float = 20.0, first_signal: int = signal.SIGTERM) -> int | None:
        """Stop the group; SIGKILL after ``grace`` seconds; reap. Safe to call twice."""
        with self._lock:
            if self.proc is None:
                return None
            self._remember_children()
            if self.proc.poll() is None or self._alive_descendants():
                self.send_signal(first_signal)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None and not self._group_alive() \
                            and not self._alive_descendants():
                        break
                    time.sleep(0.2)
                else:
                    self.send_signal(signal.SIGKILL)
            self.send_signal(signal.SIGKILL)  # anything left in the group (a no-op when empty)
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            if self._log:
                self._log.close()
                self._log = None
            return code

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
