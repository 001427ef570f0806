"""Per-sample judgements: does the candidate answer like the reference, and how does an answer score against
the sample's ground truth. Answers are protocol Answers, so coordinates are already original-image pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from robobrain_ros.protocol import Answer, AnswerBox, Task

from .metrics import Box, Point, box_iou, discrete_frechet, fraction_in_box, fraction_in_mask, mean_nearest_distance
from .samples import Sample

BOX_TASKS = frozenset({Task.AFFORDANCE, Task.GROUNDING})
TEXT_TASKS = frozenset({Task.PLANNING, Task.GENERAL})
# A grounding answer counts as right at IoU >= 0.5 (the usual referring-expression criterion).
GROUNDING_SUCCESS_IOU = 0.5


@dataclass(frozen=True)
class Tolerances:
    """When two answers count as the same, and when a trajectory counts as reaching its ground truth."""

    point_px: float = 10.0              # pointing: symmetric mean nearest-point distance [px]
    box_iou: float = 0.9                # affordance, grounding: IoU at least this
    trajectory_px: float = 10.0         # trajectory: discrete Fréchet distance [px]
    trajectory_success: float = 0.1     # ground truth: Fréchet distance at most this fraction of the image diagonal


@dataclass(frozen=True)
class AnswerAgreement:
    """agree: the answers count as the same; distance: px for points and trajectories, IoU for boxes, 1/0 for text."""

    agree: bool
    distance: float


def points_of(answer: Answer) -> list[Point]:
    return [(point.x, point.y) for point in answer.points]


def _box(box: AnswerBox | None) -> Box | None:
    return None if box is None else (box.x_min, box.y_min, box.x_max, box.y_max)


def diagonal(size: tuple[int, int]) -> float:
    return math.hypot(*size)


def compare_answers(task: Task, reference: Answer, candidate: Answer, image_size: tuple[int, int],
                    tolerances: Tolerances) -> AnswerAgreement:
    """How the candidate's answer relates to the reference's. A missing answer on one side only is as far off
    as an answer can be (the image diagonal, IoU 0); none on both sides is agreement."""
    if task in TEXT_TASKS:
        same = reference.answer.strip() == candidate.answer.strip()
        return AnswerAgreement(same, 1.0 if same else 0.0)
    if task in BOX_TASKS:
        ref_box, cand_box = _box(reference.box), _box(candidate.box)
        if ref_box is None or cand_box is None:
            iou = 1.0 if ref_box is None and cand_box is None else 0.0
        else:
            iou = box_iou(ref_box, cand_box)
        return AnswerAgreement(iou >= tolerances.box_iou, iou)
    ref_points, cand_points = points_of(reference), points_of(candidate)
    if not ref_points or not cand_points:
        distance = 0.0 if not ref_points and not cand_points else diagonal(image_size)
    elif task is Task.TRAJECTORY:
        distance = discrete_frechet(ref_points, cand_points)
    else:
        distance = mean_nearest_distance(ref_points, cand_points)
    limit = tolerances.trajectory_px if task is Task.TRAJECTORY else tolerances.point_px
    return AnswerAgreement(distance <= limit, distance)


def task_scores(sample: Sample, answer: Answer, image_size: tuple[int, int],
                tolerances: Tolerances) -> dict[str, float]:
    """The sample's scores against its ground truth, by metric name (empty without ground truth).

    Scores are 0..100 except the trajectory distance [px], which a missing trajectory sets to the image diagonal.
    """
    truth = sample.truth
    task = sample.task
    if task is Task.POINTING and truth.box is not None:
        return {'points in target (%)': 100.0 * fraction_in_box(points_of(answer), truth.box)}
    if task is Task.POINTING and truth.mask_path is not None:
        return {'points in target (%)': 100.0 * fraction_in_mask(points_of(answer), sample.load_mask())}
    if task in BOX_TASKS and truth.box is not None:
        box = _box(answer.box)
        hit = box is not None and box_iou(box, truth.box) >= GROUNDING_SUCCESS_IOU
        return {'IoU >= 0.5 (%)': 100.0 if hit else 0.0}
    if task is Task.TRAJECTORY and truth.trajectory is not None:
        diag = diagonal(image_size)
        distance = min(discrete_frechet(points_of(answer), truth.trajectory), diag)
        return {'Fréchet to ground truth (px)': distance,
                'success (%)': 100.0 if distance <= tolerances.trajectory_success * diag else 0.0}
    if task in TEXT_TASKS and truth.text is not None:
        return {'exact match (%)': 100.0 if answer.answer.strip() == truth.text.strip() else 0.0}
    return {}
