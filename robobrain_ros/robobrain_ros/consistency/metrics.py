"""Pure measures the consistency tool is built from: geometry of answers, and log-probability agreement.

No I/O, no HTTP, no ROS. Points are (x, y) pairs in image pixels; boxes are (x1, y1, x2, y2) with x1 <= x2 and
y1 <= y2; a mask is a 2D array whose non-zero pixels belong to the target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def discrete_frechet(first: Sequence[Point], second: Sequence[Point]) -> float:
    """Discrete Fréchet distance between two polylines [px] (Eiter and Mannila); inf when either is empty."""
    if not first or not second:
        return math.inf
    # coupling[j]: the Fréchet distance of first[:i+1] and second[:j+1], one row at a time.
    coupling = [0.0] * len(second)
    for i, (ax, ay) in enumerate(first):
        previous_diagonal = 0.0
        for j, (bx, by) in enumerate(second):
            distance = math.hypot(ax - bx, ay - by)
            above = coupling[j]
            if i == 0 and j == 0:
                best = distance
            elif i == 0:
                best = max(coupling[j - 1], distance)
            elif j == 0:
                best = max(above, distance)
            else:
                best = max(min(above, coupling[j - 1], previous_diagonal), distance)
            previous_diagonal = above
            coupling[j] = best
    return coupling[-1]


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes: 1 for identical boxes (degenerate ones too), else 0 without area."""
    if tuple(first) == tuple(second):
        return 1.0
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    intersection = max(width, 0.0) * max(height, 0.0)
    union = _area(first) + _area(second) - intersection
    return intersection / union if union > 0 else 0.0


def _area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def fraction_in_box(points: Sequence[Point], box: Box) -> float:
    """Share of points inside the box (borders included); 0 for no points."""
    if not points:
        return 0.0
    inside = sum(1 for x, y in points if box[0] <= x <= box[2] and box[1] <= y <= box[3])
    return inside / len(points)


def fraction_in_mask(points: Sequence[Point], mask: np.ndarray) -> float:
    """Share of points on a non-zero mask pixel (pixel (col, row) = (floor x, floor y)); 0 for no points.

    A point on the image's right or bottom border (x == width) counts as the last pixel.
    """
    if not points:
        return 0.0
    height, width = mask.shape[:2]
    inside = 0
    for x, y in points:
        column = min(max(math.floor(x), 0), width - 1)
        row = min(max(math.floor(y), 0), height - 1)
        inside += bool(mask[row, column])
    return inside / len(points)


def mean_nearest_distance(first: Sequence[Point], second: Sequence[Point]) -> float:
    """Symmetric mean distance from each point to the nearest point of the other set [px]; inf if one is empty.

    Order-free (two pointing answers may list the same points in another order), unlike the Fréchet distance.
    """
    if not first or not second:
        return math.inf

    def one_way(source: Sequence[Point], target: Sequence[Point]) -> float:
        return statistics.fmean(min(math.hypot(x - tx, y - ty) for tx, ty in target) for x, y in source)

    return (one_way(first, second) + one_way(second, first)) / 2.0


@dataclass(frozen=True)
class PositionLogprobs:
    """One answer position as a server scored it: the teacher-forced token and the server's top-k there.

    token: the id of the token actually in the prompt at this position; token_logprob: its log-probability [nats];
    top: the server's k most likely token ids with their log-probabilities.
    """

    token: int
    token_logprob: float
    top: Mapping[int, float]


@dataclass(frozen=True)
class NumericalAgreement:
    """How closely a candidate's log-probabilities follow the reference's at the same positions.

    decisiveness: median over positions of the reference's top-1 minus top-k log-probability [nats], the scale on
    which its choices are made (near 0 for a near-uniform model: nothing can be told apart then).
    drift: mean over positions of |Δ logprob of the teacher-forced token| divided by that position's spread
    (top-1 minus top-k of the reference, at least decisiveness_floor): 0 for identical numbers, about 1 when the
    candidate moves a token's log-probability as far as the reference's whole top-k is wide.
    """

    positions: int
    decisiveness: float          # [nats]
    max_abs_delta: float         # [nats] largest |Δ logprob| of a teacher-forced token
    mean_abs_delta: float        # [nats]
    drift: float                 # mean |Δ| / spread
    top1_agreement: float        # share of positions whose most likely token is the same on both
    topk_overlap: float          # mean share of the reference's top-k that is in the candidate's top-k


def _spread(top: Mapping[int, float]) -> float:
    values = sorted(top.values(), reverse=True)
    return values[0] - values[-1] if len(values) > 1 else 0.0


def _argmax(top: Mapping[int, float]) -> int:
    return max(top.items(), key=lambda item: (item[1], -item[0]))[0]


def compare_logprobs(reference: Sequence[PositionLogprobs], candidate: Sequence[PositionLogprobs],
                     decisiveness_floor: float) -> NumericalAgreement:
    """Agreement of two servers' scores of the same teacher-forced tokens (position i with position i).

    Raises ValueError when the sequences differ in length or in the token at a position (the servers tokenized
    the prompt differently: their numbers cannot be compared).
    """
    if len(reference) != len(candidate):
        raise ValueError(f'the reference scored {len(reference)} answer tokens, the candidate {len(candidate)}')
    if not reference:
        return NumericalAgreement(0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    deltas, drifts, spreads, top1, overlaps = [], [], [], [], []
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        if ref.token != cand.token:
            raise ValueError(f'answer token {index} is {ref.token} on the reference, {cand.token} on the candidate')
        spread = _spread(ref.top)
        spreads.append(spread)
        delta = abs(ref.token_logprob - cand.token_logprob)
        deltas.append(delta)
        drifts.append(delta / max(spread, decisiveness_floor))
        top1.append(bool(cand.top) and _argmax(ref.top) == _argmax(cand.top))
        overlaps.append(len(set(ref.top) & set(cand.top)) / len(ref.top) if ref.top else 1.0)
    return NumericalAgreement(
        positions=len(reference),
        decisiveness=statistics.median(spreads),
        max_abs_delta=max(deltas),
        mean_abs_delta=statistics.fmean(deltas),
        drift=statistics.fmean(drifts),
        top1_agreement=statistics.fmean(top1),
        topk_overlap=statistics.fmean(overlaps),
    )
