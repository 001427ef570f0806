"""Helpers of the reliability tests (test_reliability_*.py); not a test module."""

from __future__ import annotations

import psutil


def process_figures(pid: int) -> dict[str, float]:
    """RSS [MiB], threads and open file descriptors of a process (and of nothing else)."""
    process = psutil.Process(pid)
    return {'rss_mib': process.memory_info().rss / 2**20, 'threads': process.num_threads(),
            'fds': process.num_fds()}
