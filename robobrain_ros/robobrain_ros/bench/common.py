"""What every benchmark shares: the frame, the forced model work, statistics, the machine and its load.

The GPU benchmark scripts (scripts/gpu/) take the instruction, their token count and the statistics from here too.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

IMAGE_TOPIC = '/robobrain_bench/image'
INSTRUCTION = 'the handle of the coffee cup'
# Every answer is exactly this many tokens long (min_tokens = max_tokens, temperature 0), so each goal does the same
# model work. How many depends on the model: on a CPU the tiny random-weight model, whose decoding costs little,
# with a count that keeps a run of hundreds of goals short; on a GPU the 7B at its real size, where decoding is a
# real share of a goal's time, with a count nearer a real short answer's.
CPU_FORCED_TOKENS = 32
GPU_FORCED_TOKENS = 64


def bench_frame(width: int = 1280, height: int = 720) -> np.ndarray:
    """A natural photo (scikit-image's coffee cup) scaled to a camera frame, HxWx3 uint8 RGB.

    JPEG cost depends on content: noise would overstate it, a flat colour understate it.
    """
    from skimage import data
    return np.ascontiguousarray(cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC))


# A list of points far longer than any forced length: the answer always parses (random weights write no points
# of their own) and generation never ends before max_tokens, so min_tokens never fights the grammar.
POINTS_REGEX = r'\[\(\d{1,3}, \d{1,3}\)(, \(\d{1,3}, \d{1,3}\)){40}\]'


def forced_extra(tokens: int = CPU_FORCED_TOKENS) -> dict[str, Any]:
    """Request fields that make the model work fixed: exactly `tokens` generated tokens of a points list (the
    node's model.extra_body: its max_tokens comes from model.max_tokens, a key the node owns)."""
    return {'min_tokens': tokens, 'structured_outputs': {'regex': POINTS_REGEX}}


def node_params(base_url: str, model: str, tokens: int = CPU_FORCED_TOKENS, image_topic: str = IMAGE_TOPIC,
                **overrides: Any) -> dict[str, Any]:
    """Brain node parameters that make its model work equal to the direct requests' (see overhead.py)."""
    params = {
        'server.base_urls': [base_url],
        'server.model': model,
        'model.temperature': 0.0,
        'model.max_tokens': tokens,
        'model.structured_outputs': False,
        'model.extra_body': json.dumps(forced_extra(tokens)),
        'topics.image': image_topic,
        'topics.compressed_image': '',
        'topics.depth': '',
        'topics.camera_info': '',
    }
    params.update(overrides)
    return params


def summary(samples: list[float]) -> dict[str, float]:
    """Count, median, p95 (nearest rank), mean, min and max of samples (same unit in and out)."""
    if not samples:
        return {'n': 0, **{key: float('nan') for key in ('median', 'p95', 'mean', 'min', 'max')}}
    ordered = sorted(samples)
    rank = math.ceil(0.95 * len(ordered))   # nearest rank: the smallest sample with 95% of them at or below it
    return {'n': len(ordered), 'median': statistics.median(ordered), 'p95': ordered[rank - 1],
            'mean': statistics.fmean(ordered), 'min': ordered[0], 'max': ordered[-1]}


def load() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared: other runs add noise)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    memory_gib = 0.0
    try:
        import psutil
        memory_gib = psutil.virtual_memory().total / 2**30
    except ImportError:
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(memory_gib, 1),
            'python': platform.python_version(), 'numpy': np.__version__, 'opencv': cv2.__version__,
            'rmw': os.environ.get('RMW_IMPLEMENTATION', ''), 'date': time.strftime('%Y-%m-%d %H:%M:%S'),
            'load_at_start': load()}


@dataclass
class BenchContext:
    """Everything a node benchmark talks to. The brain client is bound to the node under test."""

    base_url: str          # OpenAI base URL of the vLLM server (http://127.0.0.1:PORT/v1)
    model: str             # served model name
    brain: Any             # robobrain_ros.brain_client.BrainClient bound to the node
    brain_pid: int         # the node's process, for its memory
    camera_node: Any       # rclpy node that publishes the camera frames
    tokens: int = CPU_FORCED_TOKENS
    image_topic: str = IMAGE_TOPIC
