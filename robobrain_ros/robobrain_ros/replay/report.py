"""What a replay writes next to its output bag: results.json (for programs and --compare) and report.md (for
people). Pure Python: goal records hold answers as plain data (outcome_summary.message_to_data)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .goals import GoalSpec

RESULTS_FILE = 'results.json'
REPORT_FILE = 'report.md'
BAG_DIR = 'bag'
IMAGES_DIR = 'images'
FORMAT_VERSION = 1

SUCCEEDED, ABORTED, CANCELED, REJECTED, NO_RESULT = 'succeeded', 'aborted', 'canceled', 'rejected', 'no result'


@dataclass
class GoalRecord:
    goal: GoalSpec
    task: str                         # the RoboBrain task of its action (pointing, ...)
    outcome: str = NO_RESULT          # succeeded | aborted | canceled | rejected | no result
    status: str = ''                  # QueryStatus name (OK, BAD_GOAL, ...); '' without an answer
    status_code: int = 0
    message: str = ''                 # QueryStatus message, or why there is no answer
    sent_at: float | None = None      # [s] bag time (from its start) at which the goal was sent
    latency: float | None = None      # [s] wall time, goal sent -> result received
    answer: dict[str, Any] | None = None   # the result's answer message as data
    annotated_image: str = ''         # path relative to OUT, '' when the node published none for it
    result_topic: str = ''

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['goal'] = self.goal.as_dict()
        return data


@dataclass
class RunInfo:
    bag: str
    storage: str
    bag_start_ns: int
    bag_duration: float
    rate: float
    brain: str
    started_node: bool
    server_urls: list[str]
    wall_time: float = 0.0
    exit_code: int = 0
    replayed_topics: dict[str, str] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    recorded_topics: dict[str, int] = field(default_factory=dict)
    published_messages: int = 0


def results_data(run: RunInfo, records: list[GoalRecord]) -> dict[str, Any]:
    return {'tool': 'brain_replay', 'format': FORMAT_VERSION, **asdict(run),
            'goals': [record.as_dict() for record in records]}


def write_results(directory: Path, run: RunInfo, records: list[GoalRecord]) -> Path:
    path = Path(directory) / RESULTS_FILE
    path.write_text(json.dumps(results_data(run, records), indent=1, allow_nan=False) + '\n')
    return path


def answer_summary(answer: dict[str, Any] | None) -> str:
    """A few words about an answer (its kind and size), for the report's table."""
    if not answer:
        return '-'
    if 'points' in answer:
        points = answer['points']
        lifted = sum(1 for p in answer.get('points_3d', []) if p.get('valid'))
        first = f' first ({points[0]["x"]:.1f}, {points[0]["y"]:.1f})' if points else ''
        return f'{len(points)} points{first}' + (f', {lifted} in 3D' if lifted else '')
    if 'has_box' in answer:
        if not answer['has_box']:
            return 'no box'
        b = answer['box']
        return f'box ({b["x_min"]:.1f}, {b["y_min"]:.1f})-({b["x_max"]:.1f}, {b["y_max"]:.1f})'
    if 'steps' in answer:
        return f'{len(answer["steps"])} steps'
    if 'answer' in answer:
        text = ' '.join(str(answer['answer']).split())
        return f'"{text[:60]}{"..." if len(text) > 60 else ""}"'
    return '-'


def _cell(value: Any) -> str:
    return str(value).replace('|', '\\|').replace('\n', ' ')


def _seconds(value: float | None, digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def report_markdown(run: RunInfo, records: list[GoalRecord]) -> str:
    ok = sum(1 for r in records if r.outcome == SUCCEEDED)
    lines = [f'# brain_replay of {Path(run.bag).name}', '',
             f'- bag: `{run.bag}` ({run.storage}, {run.bag_duration:.3f} s), replayed at rate {run.rate:g}',
             f"- brain: `{run.brain}` ({'started by the replay, use_sim_time' if run.started_node else 'running node'})"
             + (f"; server {', '.join(run.server_urls)}" if run.server_urls else ''),
             f'- goals: {ok} of {len(records)} succeeded; wall time {run.wall_time:.1f} s; exit code {run.exit_code}',
             f'- output bag: `{BAG_DIR}/` (MCAP; `ros2 bag info {BAG_DIR}`), results: `{RESULTS_FILE}`', '']
    if run.warnings:
        lines += ['## Warnings', ''] + [f'- {_cell(w)}' for w in run.warnings] + ['']
    lines += ['## Goals', '',
              '| # | at [s] | action | instruction | camera | outcome | status | latency [s] | image age [s] | answer '
              '| annotated image |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        info = (r.answer or {}).get('info', {})
        age = info.get('image_age') if r.answer else None
        image = f'[{Path(r.annotated_image).name}]({r.annotated_image})' if r.annotated_image else '-'
        lines.append(f'| {r.goal.index} | {r.goal.at:g} | {r.goal.action} | {_cell(r.goal.instruction)} | '
                     f"{_cell(info.get('camera') or r.goal.camera or '-')} | {r.outcome} | {r.status or '-'} | "
                     f'{_seconds(r.latency)} | {_seconds(age)} | {_cell(answer_summary(r.answer))} | {image} |')
    failed = [r for r in records if r.outcome != SUCCEEDED]
    if failed:
        lines += ['', '## Goals that did not succeed', '']
        lines += [f'- goal {r.goal.index} ({r.goal.action}, "{_cell(r.goal.instruction)}"): {r.outcome}'
                  + (f', {r.status}' if r.status else '') + (f': {_cell(r.message)}' if r.message else '')
                  for r in failed]
    lines += ['', '## Topics', '', '| topic | type / messages |', '|---|---|']
    lines += [f'| {t} | replayed ({msgtype}) |' for t, msgtype in run.replayed_topics.items()]
    lines += [f'| {t} | not replayed: {_cell(why)} |' for t, why in run.skipped_topics.items()]
    lines += [f'| {t} | recorded: {count} |' for t, count in run.recorded_topics.items()]
    return '\n'.join(lines) + '\n'


def write_report(directory: Path, run: RunInfo, records: list[GoalRecord]) -> Path:
    path = Path(directory) / REPORT_FILE
    path.write_text(report_markdown(run, records))
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """A replay's results.json (given the file or OUT); ValueError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f'cannot read {path}: {exc.strerror or exc} (give a replay output folder or its '
                         f'{RESULTS_FILE})') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path} is not JSON: {exc}') from None
    if not isinstance(data, dict) or data.get('tool') != 'brain_replay' or not isinstance(data.get('goals'), list):
        raise ValueError(f'{path} is not the results.json of a brain_replay output')
    return data
