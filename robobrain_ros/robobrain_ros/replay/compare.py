"""Two replays of the same bag and goals side by side: does the candidate server answer like the reference on my
robot's scenes? Pure Python.

The answer metrics, the table and the gate are the consistency tool's (robobrain_ros.consistency: compare_answers,
answer_rows, markdown_table), applied to the goals of two results.json: per task, the share of answers that agree
and their mean distance (point distance, IoU, Fréchet; exact match for text), plus how many goals ended alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robobrain_ros.consistency.report import FAIL, PASS, GateThresholds, Report, Row, answer_rows, markdown_table
from robobrain_ros.consistency.scoring import Tolerances, compare_answers
from robobrain_ros.protocol import Answer, AnswerBox, AnswerPoint, AnswerStep, Task

# Goal fields that must be the same in both replays for their answers to be compared.
SAME_GOAL_FIELDS = ('at', 'action', 'instruction', 'camera', 'target_frame', 'thinking')
DEFAULT_MIN_ANSWER_AGREEMENT = 80.0    # [%] per task
DEFAULT_MIN_SAME_OUTCOME = 100.0       # [%] of goals


class CompareError(ValueError):
    """The two outputs cannot be compared (different goals); the message says where they differ."""


@dataclass(frozen=True)
class CompareGate:
    answers: GateThresholds      # min_answer_agreement per task
    min_same_outcome: float = DEFAULT_MIN_SAME_OUTCOME


def answer_of(record: dict[str, Any]) -> Answer:
    """A goal record's answer as a protocol Answer (empty when the goal brought none back)."""
    task = Task(record['task'])
    data = record.get('answer') or {}
    info = data.get('info', {})
    answer = Answer(task=task, raw=info.get('raw_completion', ''),
                    answer=info.get('answer_text')
                    or (data.get('answer') if isinstance(data.get('answer'), str) else '')
                    or '')
    answer.points = [AnswerPoint(p['x'], p['y'], bool(p.get('clipped'))) for p in data.get('points', [])]
    if data.get('has_box'):
        b = data['box']
        answer.box = AnswerBox(b['x_min'], b['y_min'], b['x_max'], b['y_max'], bool(b.get('clipped')))
    answer.steps = [AnswerStep(s['order'], s['description'], s.get('robot_name', '')) for s in data.get('steps', [])]
    return answer


def _image_size(*records: dict[str, Any]) -> tuple[int, int]:
    for record in records:
        info = (record.get('answer') or {}).get('info', {})
        if info.get('original_width') and info.get('original_height'):
            return int(info['original_width']), int(info['original_height'])
    return 0, 0


def _ending(record: dict[str, Any]) -> str:
    return f"{record['outcome']}/{record.get('status') or '-'}"


def check_same_goals(reference: dict[str, Any], candidate: dict[str, Any]) -> None:
    ref_goals, cand_goals = reference['goals'], candidate['goals']
    if len(ref_goals) != len(cand_goals):
        raise CompareError(f'the reference ran {len(ref_goals)} goals, the candidate {len(cand_goals)}: replay the '
                           'same goals file on both')
    for ref, cand in zip(ref_goals, cand_goals):
        for name in SAME_GOAL_FIELDS:
            if ref['goal'].get(name) != cand['goal'].get(name):
                raise CompareError(f"goal {ref['goal']['index']}: {name} is {ref['goal'].get(name)!r} in the reference "
                                   f"and {cand['goal'].get(name)!r} in the candidate: "
                                   'replay the same goals file on both')
    if reference.get('bag_duration') is not None and candidate.get('bag_duration') is not None \
            and abs(reference['bag_duration'] - candidate['bag_duration']) > 1e-3:
        raise CompareError(f"the reference replayed a bag of {reference['bag_duration']:.3f} s, the candidate one of "
                           f"{candidate['bag_duration']:.3f} s: replay the same bag on both")


def compare_results(reference: dict[str, Any], candidate: dict[str, Any], gate: CompareGate,
                    tolerances: Tolerances | None = None) -> Report:
    """The agreement table of two results.json (load_results); CompareError when their goals differ."""
    check_same_goals(reference, candidate)
    tolerances = tolerances or Tolerances()
    pairs = list(zip(reference['goals'], candidate['goals']))
    rows: list[Row] = []
    goal_rows: list[dict[str, Any]] = []
    for task in Task:
        of_task = [(ref, cand) for ref, cand in pairs if ref['task'] == task.value]
        if not of_task:
            continue
        agreements = [compare_answers(task, answer_of(ref), answer_of(cand), _image_size(ref, cand), tolerances)
                      for ref, cand in of_task]
        rows += answer_rows(task, agreements, gate.answers)
        for (ref, cand), agreement in zip(of_task, agreements):
            goal_rows.append({'index': ref['goal']['index'], 'action': ref['goal']['action'], 'task': task.value,
                              'instruction': ref['goal']['instruction'], 'reference_ending': _ending(ref),
                              'candidate_ending': _ending(cand), 'answers_agree': agreement.agree,
                              'distance': agreement.distance,
                              'reference_answer': answer_of(ref).raw, 'candidate_answer': answer_of(cand).raw})
    goal_rows.sort(key=lambda row: row['index'])
    same = 100.0 * statistics.fmean(_ending(ref) == _ending(cand) for ref, cand in pairs)
    outcome = Row('goals: ended alike (%)', 100.0, same)
    outcome.status = PASS if same >= gate.min_same_outcome else FAIL
    outcome.reason = f'{same:.1f}% vs at least {gate.min_same_outcome:g}%'
    rows.append(outcome)
    rows.append(Row('goals: succeeded (%)', _share_succeeded(reference['goals']), _share_succeeded(candidate['goals'])))
    rows.append(Row('goals: median latency (s)', _median_latency(reference['goals']),
                    _median_latency(candidate['goals'])))
    return Report(rows, goal_rows)


def _share_succeeded(records: Sequence[dict[str, Any]]) -> float:
    return 100.0 * statistics.fmean(record['outcome'] == 'succeeded' for record in records)


def _median_latency(records: Sequence[dict[str, Any]]) -> float | None:
    latencies = [record['latency'] for record in records if record.get('latency') is not None]
    return statistics.median(latencies) if latencies else None


def goals_table(report: Report) -> str:
    """One line per goal: how each side ended and whether the answers agree."""
    lines = ['| goal | action | reference | candidate | answers agree | distance |', '|---|---|---|---|---|---|']
    for row in report.samples:
        lines.append(f"| {row['index']} | {row['action']} | {row['reference_ending']} | {row['candidate_ending']} | "
                     f"{'yes' if row['answers_agree'] else 'NO'} | {row['distance']:.4g} |")
    return '\n'.join(lines)


def comparison_text(report: Report, reference_name: str, candidate_name: str) -> str:
    verdict = 'PASSED' if report.passed else 'FAILED: ' + '; '.join(f'{r.metric}: {r.reason}' for r in report.failed)
    return '\n\n'.join([markdown_table(report, reference_name, candidate_name), goals_table(report), f'gate {verdict}'])
