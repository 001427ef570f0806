"""From per-sample results to the FlagRelease-style table, the gate's verdict and the JSON report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from robobrain_ros.protocol import Answer, Task

from .metrics import NumericalAgreement, PositionLogprobs, compare_logprobs
from .samples import Sample
from .scoring import BOX_TASKS, TEXT_TASKS, AnswerAgreement, Tolerances, compare_answers, task_scores

PASS, FAIL, INCONCLUSIVE = 'pass', 'FAIL', 'INCONCLUSIVE'


@dataclass(frozen=True)
class GateThresholds:
    """What the gate demands (defaults and their measurements: docs/CONSISTENCY.md)."""

    max_score_drop: float = 5.0             # [points] of a 0..100 score
    max_drift: float = 0.25                 # mean |Δ logprob| / reference top-k spread (docs/CONSISTENCY.md)
    min_top1_agreement: float = 80.0        # [%] of answer positions
    min_decisiveness: float = 0.01          # [nats] median reference top-k spread; below it: INCONCLUSIVE
    min_answer_agreement: float | None = None   # [%] per task; None: reported, not gated


@dataclass
class Row:
    """One line of the table; status is '' for rows the gate does not judge."""

    metric: str
    reference: float | None
    candidate: float | None
    status: str = ''
    reason: str = ''

    @property
    def delta(self) -> float | None:
        if self.reference is None or self.candidate is None:
            return None
        return self.candidate - self.reference


@dataclass(frozen=True)
class SampleResult:
    """Everything the report needs about one sample: both answers and both servers' scores of the reference's."""

    sample: Sample
    image_size: tuple[int, int]
    reference: Answer
    candidate: Answer
    reference_forced: list[PositionLogprobs]
    candidate_forced: list[PositionLogprobs]


@dataclass
class Report:
    rows: list[Row]
    samples: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.status in (FAIL, INCONCLUSIVE)]

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_json(self) -> dict:
        return {'passed': self.passed,
                'failed': [f'{row.metric}: {row.reason}' for row in self.failed],
                'rows': [dict(asdict(row), delta=row.delta) for row in self.rows],
                'samples': self.samples}


def _numerical_rows(label: str, agreement: NumericalAgreement | None, problem: str, gate: GateThresholds,
                    gated: bool) -> list[Row]:
    if agreement is None:
        return [Row(f'{label}: logprob drift', 0.0, None, FAIL, problem)]
    drift = Row(f'{label}: logprob drift (abs Δ / spread)', 0.0, agreement.drift)
    top1 = Row(f'{label}: top-1 agreement (%)', 100.0, 100.0 * agreement.top1_agreement)
    if gated:
        if agreement.positions == 0:
            drift.status, drift.reason = INCONCLUSIVE, 'no answer tokens to compare'
        elif agreement.decisiveness < gate.min_decisiveness:
            drift.status = top1.status = INCONCLUSIVE
            drift.reason = top1.reason = (
                f'the reference is near-uniform (median top-k spread {agreement.decisiveness:.2g} nats < '
                f'{gate.min_decisiveness:g}): differences mean nothing; use weights of a realistic scale')
        else:
            drift.status = PASS if agreement.drift <= gate.max_drift else FAIL
            drift.reason = f'{agreement.drift:.3g} vs at most {gate.max_drift:g}'
            top1.status = PASS if 100.0 * agreement.top1_agreement >= gate.min_top1_agreement else FAIL
            top1.reason = f'{100.0 * agreement.top1_agreement:.1f}% vs at least {gate.min_top1_agreement:g}%'
    rows = [drift, top1]
    if gated:
        rows = [Row(f'{label}: reference decisiveness (nats)', agreement.decisiveness, None),
                Row(f'{label}: answer tokens compared', float(agreement.positions), None),
                *rows,
                Row(f'{label}: max abs Δ logprob (nats)', 0.0, agreement.max_abs_delta),
                Row(f'{label}: mean abs Δ logprob (nats)', 0.0, agreement.mean_abs_delta),
                Row(f'{label}: top-k overlap (%)', 100.0, 100.0 * agreement.topk_overlap)]
    return rows


def _agreement(results: Sequence[SampleResult], decisiveness_floor: float) -> tuple[NumericalAgreement | None, str]:
    try:
        return compare_logprobs([p for r in results for p in r.reference_forced],
                                [p for r in results for p in r.candidate_forced], decisiveness_floor), ''
    except ValueError as exc:
        return None, f'the servers tokenized the answers differently: {exc}'


def _distance_name(task: Task) -> str:
    if task in BOX_TASKS:
        return 'box IoU (mean)'
    return 'Fréchet distance (px, mean)' if task is Task.TRAJECTORY else 'point distance (px, mean)'


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def answer_rows(task: Task, agreements: Sequence[AnswerAgreement], gate: GateThresholds) -> list[Row]:
    """A task's answer-agreement rows: the share of answers that agree (gated with gate.min_answer_agreement) and,
    but for text, the mean distance (px, or IoU for boxes). The replay tool's --compare builds its table from them."""
    agree = Row(f'{task.value}: answers agree (%)', 100.0, 100.0 * _mean([a.agree for a in agreements]))
    if gate.min_answer_agreement is not None:
        agree.status = PASS if agree.candidate >= gate.min_answer_agreement else FAIL
        agree.reason = f'{agree.candidate:.1f}% vs at least {gate.min_answer_agreement:g}%'
    rows = [agree]
    if task not in TEXT_TASKS:     # for text the distance is the agreement itself
        identical = 1.0 if task in BOX_TASKS else 0.0
        rows.append(Row(f'{task.value}: {_distance_name(task)}', identical, _mean([a.distance for a in agreements])))
    return rows


def build_report(results: Sequence[SampleResult], gate: GateThresholds, tolerances: Tolerances) -> Report:
    """The table: per task answer agreement, ground-truth scores and numerical drift, then the overall
    numerical agreement. Scores higher-is-better are gated against gate.max_score_drop."""
    rows: list[Row] = []
    sample_rows: list[dict] = []
    tasks = [task for task in Task if any(r.sample.task is task for r in results)]
    for task in tasks:
        of_task = [r for r in results if r.sample.task is task]
        agreements = [compare_answers(task, r.reference, r.candidate, r.image_size, tolerances) for r in of_task]
        rows += answer_rows(task, agreements, gate)
        scores: dict[str, tuple[list[float], list[float]]] = {}
        for result, agreement in zip(of_task, agreements):
            ref_scores = task_scores(result.sample, result.reference, result.image_size, tolerances)
            cand_scores = task_scores(result.sample, result.candidate, result.image_size, tolerances)
            for name in ref_scores:
                scores.setdefault(name, ([], []))[0].append(ref_scores[name])
                scores[name][1].append(cand_scores[name])
            sample_rows.append({'id': result.sample.id, 'task': task.value,
                                'reference_answer': result.reference.raw, 'candidate_answer': result.candidate.raw,
                                'answers_agree': agreement.agree, 'distance': agreement.distance,
                                'reference_scores': ref_scores, 'candidate_scores': cand_scores})
        for name, (ref_values, cand_values) in scores.items():
            row = Row(f'{task.value}: {name}', _mean(ref_values), _mean(cand_values))
            if name.endswith('(%)'):
                drop = row.reference - row.candidate
                row.status = PASS if drop <= gate.max_score_drop else FAIL
                row.reason = f'drop {drop:.1f} points vs at most {gate.max_score_drop:g}'
            rows.append(row)
        agreement, problem = _agreement(of_task, gate.min_decisiveness)
        rows += _numerical_rows(task.value, agreement, problem, gate, gated=False)
    agreement, problem = _agreement(results, gate.min_decisiveness)
    rows += _numerical_rows('overall numerical', agreement, problem, gate, gated=True)
    return Report(rows, sample_rows)


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:.4g}' if abs(value) < 1e4 else f'{value:.3e}'


def markdown_table(report: Report, reference_name: str, candidate_name: str) -> str:
    """`| metric | reference | candidate | delta |` with a gate column saying what failed and why."""
    # Metric names hold no '|': a cell with one would split the row.
    lines = [f'| metric | {reference_name} | {candidate_name} | delta | gate |', '|---|---|---|---|---|']
    for row in report.rows:
        gate = f'{row.status}: {row.reason}' if row.status and row.status != PASS else row.status
        lines.append(f'| {row.metric} | {_cell(row.reference)} | {_cell(row.candidate)} | {_cell(row.delta)} '
                     f'| {gate} |')
    return '\n'.join(lines)
