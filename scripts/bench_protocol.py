#!/usr/bin/env python3
"""Benchmark of robobrain_ros.protocol's hot paths: parsing a completion and building a request.

Targets (issue 3): parse_completion median < 50 us; build a request from a 1280x720 frame
(resize + JPEG + base64 + body) median < 15 ms. Each sub-step is timed on its own so the report
says what dominates. Writes docs/benchmarks/protocol.md and protocol.json.

Usage: PYTHONPATH=robobrain_ros .venv/ros/bin/python scripts/bench_protocol.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / 'robobrain_ros'))

from robobrain_ros.protocol import (  # noqa: E402
    ImageBudget,
    ModelFamily,
    Task,
    build_request,
    parse_completion,
    prepare_image,
    smart_resize,
)

DEMO_DIR = REPO_ROOT.parent / 'shared' / 'data' / 'robobrain2_demo'
OUT_DIR = REPO_ROOT / 'docs' / 'benchmarks'
PARSE_TARGET_US = 50.0
BUILD_TARGET_MS = 15.0


def time_median(function: Callable[[], object], repeats: int, inner: int = 1) -> dict:
    """Median, p10 and p90 of one call in microseconds over `repeats` samples of `inner` calls."""
    function()  # warm caches, lazy imports, compiled regexes
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - start) / inner * 1e6)
    samples.sort()
    return {
        'median_us': statistics.median(samples),
        'p10_us': samples[len(samples) // 10],
        'p90_us': samples[(len(samples) * 9) // 10],
        'samples': repeats,
        'calls_per_sample': inner,
    }


def load_demo() -> tuple[list[dict], np.ndarray]:
    vectors = DEMO_DIR / 'vectors.json'
    if not vectors.is_file():
        sys.exit(f'published vectors missing: expected {vectors} (shared/ next to the repo)')
    cases = json.loads(vectors.read_text())['cases']
    bgr = cv2.imread(str(DEMO_DIR / 'pointing.jpg'), cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f'cannot read {DEMO_DIR / "pointing.jpg"}')
    # A natural photo scaled to a camera frame: JPEG cost depends on content, noise would overstate it.
    frame = np.ascontiguousarray(cv2.resize(bgr, (1280, 720), interpolation=cv2.INTER_CUBIC)[:, :, ::-1])
    return cases, frame


def bench_parse(cases: list[dict], repeats: int) -> dict:
    results = {}
    for case in cases:
        size = tuple(case['image_size_wh'])
        task = Task(case['task'])
        thinking_on = case['thinking'] + '</think><answer>' + case['answer'] + '</answer>'
        thinking_off = case['answer'] + '</answer>'
        results[f'{case["name"]} (thinking on, {len(thinking_on)} chars)'] = time_median(
            lambda: parse_completion(task, thinking_on, True, size, size, ModelFamily.ROBOBRAIN_2_0), repeats, 100
        )
        results[f'{case["name"]} (thinking off, {len(thinking_off)} chars)'] = time_median(
            lambda: parse_completion(task, thinking_off, False, size, size, ModelFamily.ROBOBRAIN_2_0), repeats, 100
        )
    plan = '1. Pick up the cup\n2. Move it over the sink\n3. Tilt it to pour\n4. Put it down</answer>'
    results[f'planning numbered list (thinking off, {len(plan)} chars)'] = time_median(
        lambda: parse_completion(Task.PLANNING, plan, False, (1, 1), (1, 1), ModelFamily.ROBOBRAIN_2_0), repeats, 100
    )
    return results


def bench_build(frame: np.ndarray, budget: ImageBudget, repeats: int) -> dict:
    """End to end and per sub-step for one frame at one budget."""
    height, width = frame.shape[:2]
    sent_h, sent_w = smart_resize(height, width, budget.min_pixels, budget.max_pixels, budget.factor)
    shrink = max(width / sent_w, height / sent_h)
    used_area = shrink >= 2.0  # prepare_image's rule: INTER_AREA only when shrinking 2x or more
    resized = cv2.resize(frame, (sent_w, sent_h), interpolation=cv2.INTER_AREA if used_area else cv2.INTER_LINEAR)
    _, jpeg = cv2.imencode('.jpg', cv2.cvtColor(resized, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    prepared = prepare_image(frame, budget)

    def end_to_end():
        image = prepare_image(frame, budget)
        return build_request(Task.POINTING, 'the mug', [image], False, ModelFamily.ROBOBRAIN_2_0, model='rb',
                             budget=budget)

    steps = {
        'end to end: prepare_image + build_request': time_median(end_to_end, repeats),
        'smart_resize (size computation)': time_median(
            lambda: smart_resize(height, width, budget.min_pixels, budget.max_pixels, budget.factor), repeats, 1000
        ),
        f'cv2.resize INTER_AREA ({"used" if used_area else "alternative"})': time_median(
            lambda: cv2.resize(frame, (sent_w, sent_h), interpolation=cv2.INTER_AREA), repeats
        ),
        f'cv2.resize INTER_LINEAR ({"alternative" if used_area else "used"})': time_median(
            lambda: cv2.resize(frame, (sent_w, sent_h), interpolation=cv2.INTER_LINEAR), repeats
        ),
        'cv2.cvtColor RGB2BGR + imencode JPEG q90 (used)': time_median(
            lambda: cv2.imencode('.jpg', cv2.cvtColor(resized, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]),
            repeats,
        ),
        'imencode q90 of a reversed-channel view (alternative, was first version)': time_median(
            lambda: cv2.imencode('.jpg', resized[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]), repeats
        ),
        'cv2.cvtColor + imencode JPEG q80 (alternative)': time_median(
            lambda: cv2.imencode('.jpg', cv2.cvtColor(resized, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]),
            repeats,
        ),
        'base64 encode + data URL': time_median(
            lambda: 'data:image/jpeg;base64,' + base64.b64encode(jpeg).decode('ascii'), repeats
        ),
        'build_request (body only, image prepared)': time_median(
            lambda: build_request(Task.POINTING, 'the mug', [prepared], False, ModelFamily.ROBOBRAIN_2_0, model='rb',
                                  budget=budget),
            repeats,
            100,
        ),
    }
    return {
        'frame_size': [width, height],
        'sent_size': [sent_w, sent_h],
        'budget_max_pixels': budget.max_pixels,
        'jpeg_bytes': int(len(jpeg)),
        'data_url_chars': len(prepared.data_url),
        'steps': steps,
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {
        'cpu': cpu,
        'cpu_count': os.cpu_count(),
        'opencv_threads': cv2.getNumThreads(),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'opencv': cv2.__version__,
    }


def render_markdown(report: dict) -> str:
    parse_rows = '\n'.join(
        f'| {name} | {r["median_us"]:.1f} | {r["p10_us"]:.1f} | {r["p90_us"]:.1f} |'
        for name, r in report['parse'].items()
    )
    worst_parse = max(r['median_us'] for r in report['parse'].values())
    sections = []
    for label, build in report['build'].items():
        rows = '\n'.join(
            f'| {name} | {r["median_us"] / 1e3:.3f} | {r["p10_us"] / 1e3:.3f} | {r["p90_us"] / 1e3:.3f} |'
            for name, r in build['steps'].items()
        )
        sections.append(
            f'### {label}\n\n'
            f'{build["frame_size"][0]}x{build["frame_size"][1]} frame sent at '
            f'{build["sent_size"][0]}x{build["sent_size"][1]} '
            f'(max_pixels {build["budget_max_pixels"]}); JPEG {build["jpeg_bytes"]} bytes, '
            f'data URL {build["data_url_chars"]} chars.\n\n'
            f'| step | median ms | p10 ms | p90 ms |\n|---|---|---|---|\n{rows}\n'
        )
    main_build = report['build']['1280x720, default budget']['steps']
    total = main_build['end to end: prepare_image + build_request']['median_us'] / 1e3
    encode = main_build['cv2.cvtColor RGB2BGR + imencode JPEG q90 (used)']['median_us'] / 1e3
    resize = main_build['cv2.resize INTER_LINEAR (used)']['median_us'] / 1e3
    b64 = main_build['base64 encode + data URL']['median_us'] / 1e3
    m = report['machine']
    return f"""# protocol benchmark

Generated by `scripts/bench_protocol.py` ({report['generated']}); raw numbers in `protocol.json`.
Machine: {m['cpu']}, {m['cpu_count']} CPUs (OpenCV threads {m['opencv_threads']}), Python {m['python']},
numpy {m['numpy']}, OpenCV {m['opencv']}. Frame: the published `pointing.jpg` demo photo scaled to the frame size
(JPEG cost depends on content; a natural photo is representative, noise would overstate it).

## Results against the targets

| what | median | target | met |
|---|---|---|---|
| parse_completion (slowest case below) | {worst_parse:.1f} us | < {PARSE_TARGET_US:.0f} us | \
{'yes' if worst_parse < PARSE_TARGET_US else 'NO'} |
| build a request from a 1280x720 frame | {total:.2f} ms | < {BUILD_TARGET_MS:.0f} ms | \
{'yes' if total < BUILD_TARGET_MS else 'NO'} |

What dominates building: the JPEG encode ({encode:.2f} ms of {total:.2f} ms), then the resize ({resize:.2f} ms) and
base64 ({b64:.2f} ms); computing the size and assembling the body are microseconds. Parsing time grows with the
completion length (the thinking text is scanned for `</think>`) and with the number of points (regex matches
and float conversions): the 10-point answer is the slowest.

Optimisations made after the first run (numbers in the sub-step tables): JPEG-encoding a contiguous
`cvtColor` copy instead of a reversed-channel view (the view made `imencode` about 2x slower), and bilinear
instead of area resizing below a 2x shrink (OpenCV's non-integer INTER_AREA took 10 ms for 1920x1080 -> 1316x728;
bilinear at < 2x shrink still samples every source pixel, so it does not alias). JPEG quality 80 vs 90 saves
little time, so quality stays at 90.

## parse_completion (published RoboBrain2.0-7B answers)

| case | median us | p10 us | p90 us |
|---|---|---|---|
{parse_rows}

## build_request sub-steps

{chr(10).join(sections)}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='fewer samples (smoke run)')
    parser.add_argument('--no-write', action='store_true', help='print only')
    args = parser.parse_args()
    repeats = 15 if args.quick else 101

    cases, frame = load_demo()
    report = {
        'generated': time.strftime('%Y-%m-%d %H:%M:%S'),
        'machine': machine(),
        'targets': {'parse_median_us': PARSE_TARGET_US, 'build_1280x720_median_ms': BUILD_TARGET_MS},
        'parse': bench_parse(cases, repeats),
        'build': {
            '1280x720, default budget': bench_build(frame, ImageBudget(), repeats),
            '1280x720, max_pixels 401408 (downsized)': bench_build(frame, ImageBudget(max_pixels=401408), repeats),
            '1920x1080, default budget': bench_build(
                np.ascontiguousarray(cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC)),
                ImageBudget(),
                repeats,
            ),
        },
    }
    markdown = render_markdown(report)
    print(markdown)
    if not args.no_write:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / 'protocol.md').write_text(markdown)
        (OUT_DIR / 'protocol.json').write_text(json.dumps(report, indent=1) + '\n')
        print(f'wrote {OUT_DIR / "protocol.md"} and {OUT_DIR / "protocol.json"}')


if __name__ == '__main__':
    main()
