"""Shared by the GPU benchmark scripts: the test frame, the instruction, statistics, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

import numpy as np

INSTRUCTION = 'the handle of the red mug on the table'
FRAME_SIZE = (1280, 720)          # width, height
FORCED_TOKENS = 64


def make_frame(width: int = FRAME_SIZE[0], height: int = FRAME_SIZE[1], seed: int = 7) -> np.ndarray:
    """A deterministic 'natural-looking' RGB frame: smooth shading, shapes, edges and sensor noise.

    JPEG cost depends on content; pure noise would overstate it and a flat image understate it. With random
    model weights nothing else about the picture matters.
    """
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([90 + 60 * np.sin(x / 210.0) + 30 * (y / height),
                     110 + 50 * np.cos(y / 160.0) + 20 * (x / width),
                     130 + 40 * np.sin((x + y) / 300.0)], axis=-1)
    img = np.clip(base, 0, 255).astype(np.uint8)
    for _ in range(40):   # table, objects, shelves
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(20, 200))),
                          colour, -1)
        else:
            cv2.circle(img, (int(rng.integers(0, width)), int(rng.integers(0, height))), int(rng.integers(8, 90)),
                       colour, -1)
    img = cv2.GaussianBlur(img, (5, 5), 1.2)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def save_frame_jpeg(rgb: np.ndarray, path: Path, quality: int = 95) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def stats_ms(seconds: list[float]) -> dict:
    """median / p95 / mean / min / max in ms of a list of durations in seconds (p95: nearest rank)."""
    if not seconds:
        return {}
    ms = sorted(s * 1e3 for s in seconds)
    rank = max(0, min(len(ms) - 1, int(np.ceil(0.95 * len(ms))) - 1))
    return {'n': len(ms), 'median_ms': round(statistics.median(ms), 2), 'p95_ms': round(ms[rank], 2),
            'mean_ms': round(statistics.fmean(ms), 2), 'min_ms': round(ms[0], 2), 'max_ms': round(ms[-1], 2)}


def machine_facts() -> dict:
    facts = {'python': platform.python_version(), 'cpus': os.cpu_count(), 'kernel': platform.release()}
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version,clocks.max.sm',
                              '--format=csv,noheader'], capture_output=True, text=True, timeout=20, check=False).stdout
        facts['gpu'] = out.strip()
    except (OSError, subprocess.SubprocessError):
        facts['gpu'] = ''
    from importlib import metadata
    for dist in ('torch', 'transformers', 'triton', 'vllm', 'flag-gems', 'numpy', 'opencv-python-headless',
                 'aiohttp', 'ros-rclpy'):
        try:
            facts[dist] = metadata.version(dist)   # metadata only: importing vllm / flag_gems has side effects
        except metadata.PackageNotFoundError:
            pass
    return facts


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + '\n')
