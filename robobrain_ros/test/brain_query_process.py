"""brain_query as a user runs it, for tests: a process of its own, Ctrl-C delivered as SIGINT as in a terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from robobrain_ros.harness.brain_process import wait_until


def start_brain_query(*args: str, brain: str) -> subprocess.Popen:
    """`brain_query *args --brain brain`, stdout and stderr piped (text)."""
    # SIGINT back to its default: a process started from a test that ignores it would ignore Ctrl-C too.
    return subprocess.Popen([sys.executable, '-m', 'robobrain_ros.brain_client', *args, '--brain', brain],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def read_stderr_until(run: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    """run's stderr, line by line, up to the first line that holds text or the process's end: what was read.
    The caller checks it holds text (a process that ended first or said nothing within timeout returns without)."""
    read = ''

    def seen() -> bool:
        nonlocal read
        read += run.stderr.readline()
        return text in read or run.poll() is not None
    wait_until(seen, timeout)
    return read
