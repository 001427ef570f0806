"""The sample set: a JSONL file of RoboBrain questions about images, with optional ground truth.

One JSON object per line (blank lines and lines starting with # are skipped)::

    {"id": "point-red-cup", "task": "pointing", "image": "images/table.png",
     "instruction": "Point to the red cup", "ground_truth": {"box": [150, 250, 210, 330]}}

Paths are relative to the sample file. ground_truth keys: box [x1, y1, x2, y2] (pointing: points inside it count;
affordance, grounding: IoU >= 0.5), mask (an image path; pointing: points on its non-zero pixels count),
trajectory [[x, y], ...] (discrete Fréchet distance), text (planning, general: exact match). Coordinates are
pixels of the image as stored. docs/CONSISTENCY.md has the full description.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robobrain_ros.protocol import Task

from .metrics import Box, Point

SHIPPED_SAMPLES = Path(__file__).resolve().parent / 'shipped_samples' / 'samples.jsonl'
_GROUND_TRUTH_KEYS = frozenset({'box', 'mask', 'trajectory', 'text'})
# Which ground truth each task can be scored against.
_TRUTH_FOR_TASK = {
    Task.POINTING: {'box', 'mask'},
    Task.AFFORDANCE: {'box'},
    Task.GROUNDING: {'box'},
    Task.TRAJECTORY: {'trajectory'},
    Task.PLANNING: {'text'},
    Task.GENERAL: {'text'},
}


class SampleError(ValueError):
    """A sample file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class GroundTruth:
    box: Box | None = None
    mask_path: Path | None = None
    trajectory: tuple[Point, ...] | None = None
    text: str | None = None


@dataclass(frozen=True)
class Sample:
    id: str
    task: Task
    image_path: Path
    instruction: str
    truth: GroundTruth

    def load_image(self) -> np.ndarray:
        """The image as HxWx3 RGB uint8."""
        return _read_image(self.image_path, cv2.IMREAD_COLOR, self.id)[:, :, ::-1].copy()

    def load_mask(self) -> np.ndarray:
        """The ground-truth mask as a HxW array (non-zero: target). Raises SampleError without one."""
        if self.truth.mask_path is None:
            raise SampleError(f'sample {self.id} has no mask')
        return _read_image(self.truth.mask_path, cv2.IMREAD_GRAYSCALE, self.id)


def _read_image(path: Path, flags: int, sample_id: str) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SampleError(f'sample {sample_id}: cannot read the image {path}')
    return image


def load_samples(path: Path) -> list[Sample]:
    """Read and check a sample file. Raises SampleError naming the line of the first problem."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SampleError(f'cannot read the sample file {path}: {exc}') from None
    samples: list[Sample] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        where = f'{path}:{number}'
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise SampleError(f'{where}: not JSON ({exc})') from None
        sample = _sample(entry, path.parent, where)
        if sample.id in seen:
            raise SampleError(f'{where}: the id {sample.id!r} is used twice')
        seen.add(sample.id)
        samples.append(sample)
    if not samples:
        raise SampleError(f'{path} holds no samples')
    return samples


def _sample(entry: object, base: Path, where: str) -> Sample:
    if not isinstance(entry, dict):
        raise SampleError(f'{where}: a sample is a JSON object')
    for key in ('id', 'task', 'image', 'instruction'):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise SampleError(f'{where}: "{key}" must be a non-empty string')
    try:
        task = Task(entry['task'])
    except ValueError:
        raise SampleError(f'{where}: unknown task {entry["task"]!r}; one of: '
                          + ', '.join(t.value for t in Task)) from None
    image_path = base / entry['image']
    if not image_path.is_file():
        raise SampleError(f'{where}: no image at {image_path}')
    truth = _ground_truth(entry.get('ground_truth') or {}, task, base, where)
    return Sample(entry['id'], task, image_path, entry['instruction'], truth)


def _ground_truth(raw: object, task: Task, base: Path, where: str) -> GroundTruth:
    if not isinstance(raw, dict):
        raise SampleError(f'{where}: "ground_truth" must be an object')
    unknown = set(raw) - _GROUND_TRUTH_KEYS
    if unknown:
        raise SampleError(f'{where}: unknown ground_truth keys {sorted(unknown)}')
    unusable = set(raw) - _TRUTH_FOR_TASK[task]
    if unusable:
        raise SampleError(f'{where}: a {task.value} sample cannot be scored against {sorted(unusable)}')
    box = None
    if 'box' in raw:
        values = _numbers(raw['box'], 4, 'box', where)
        if values[0] > values[2] or values[1] > values[3]:
            raise SampleError(f'{where}: box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2')
        box = (values[0], values[1], values[2], values[3])
    mask_path = None
    if 'mask' in raw:
        if not isinstance(raw['mask'], str):
            raise SampleError(f'{where}: mask must be an image path')
        mask_path = base / raw['mask']
        if not mask_path.is_file():
            raise SampleError(f'{where}: no mask at {mask_path}')
    trajectory = None
    if 'trajectory' in raw:
        if not isinstance(raw['trajectory'], list) or not raw['trajectory']:
            raise SampleError(f'{where}: trajectory must be a non-empty list of [x, y]')
        trajectory = tuple(tuple(_numbers(point, 2, 'trajectory point', where)) for point in raw['trajectory'])
    text = raw.get('text')
    if text is not None and not isinstance(text, str):
        raise SampleError(f'{where}: text must be a string')
    return GroundTruth(box=box, mask_path=mask_path, trajectory=trajectory, text=text)  # type: ignore[arg-type]


def _numbers(value: object, count: int, what: str, where: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != count
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise SampleError(f'{where}: {what} must be a list of {count} numbers, got {value!r}')
    return [float(v) for v in value]
