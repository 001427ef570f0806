"""Helpers of the reliability tests (test_reliability_*.py); not a test module."""

from __future__ import annotations

import time

import psutil


def answering(client, attempts: int = 12, wait: float = 5.0):
    """Return client once a goal round trip works: send a goal that fails at once (empty instruction) until its
    result comes back.

    A brain that has just started can lose the response to the very first goal: its action server was found
    by the client (wait_for_server), but it has not matched the client's response reader yet, and rmw drops
    the response ("failed to send response (timeout)" in its log). The goal itself runs and ends; only the
    client never hears of it. See docs/RELIABILITY.md.
    """
    for _ in range(attempts):
        try:
            client.query('point', '', wait_timeout=wait)
            return client
        except TimeoutError:
            time.sleep(0.5)
    raise AssertionError(f'no goal round trip with the brain in {attempts} attempts')


def process_figures(pid: int) -> dict[str, float]:
    """RSS [MiB], threads and open file descriptors of a process (and of nothing else)."""
    process = psutil.Process(pid)
    return {'rss_mib': process.memory_info().rss / 2**20, 'threads': process.num_threads(),
            'fds': process.num_fds()}
