"""The node's resident memory (RSS): idle, and sampled while bursts of simultaneous goals run."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from robobrain_ros.bench.common import BenchContext, bench_frame, load, summary
from robobrain_ros.bench.concurrency import node_parallel
from robobrain_ros.bench.overhead import goal_image_msg, start_camera


class RssSampler:
    """Samples a process's RSS [MiB] every period seconds in a thread, while in the with block."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        self._process = psutil.Process(pid)
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[float] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mib(self._process))
            self._stop.wait(self._period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def run(ctx: BenchContext, bursts: int = 5, burst_size: int = 16,
        idle_at_start_mib: float | None = None) -> dict[str, Any]:
    """idle_at_start_mib: the RSS measured right after the node started (default: now)."""
    process = psutil.Process(ctx.brain_pid)
    idle_before = rss_mib(process)
    rgb = bench_frame(1280, 720)
    load_before = load()
    camera = start_camera(ctx, rgb)
    image = goal_image_msg(rgb)
    try:
        time.sleep(1.0)
        with RssSampler(ctx.brain_pid) as topic_load:
            for _ in range(bursts):
                node_parallel(ctx, burst_size)
        with RssSampler(ctx.brain_pid) as goal_load:
            for _ in range(bursts):
                node_parallel(ctx, burst_size, image=image)
    finally:
        camera.stop()
    time.sleep(2.0)
    return {'idle_at_start_mib': idle_before if idle_at_start_mib is None else idle_at_start_mib,
            'idle_mib': idle_before, 'idle_after_mib': rss_mib(process),
            'topic_load_mib': summary(topic_load.samples), 'goal_image_load_mib': summary(goal_load.samples),
            'burst_size': burst_size, 'bursts': bursts, 'load_before': load_before, 'load_after': load()}
