"""What only the GPU benchmark scripts need: their test frame, the GPU's facts, statistics in their keys.

The instruction, the token count (GPU_FORCED_TOKENS) and the statistics are robobrain_ros.bench.common's, the CPU
benchmarks' too. The frame is drawn here: the CPU benchmarks' photo needs scikit-image, which the GPU machine's
image does not have. Each script puts the package's source folder on sys.path before importing this.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from robobrain_ros.bench.common import summary

FRAME_SIZE = (1280, 720)          # width, height


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
    """summary() of durations in seconds, in ms under the keys of the GPU results files (median_ms, p95_ms, ...)."""
    if not seconds:
        return {}
    stats = summary([s * 1e3 for s in seconds])
    return {'n': stats['n'], **{f'{key}_ms': round(stats[key], 2) for key in ('median', 'p95', 'mean', 'min', 'max')}}


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
