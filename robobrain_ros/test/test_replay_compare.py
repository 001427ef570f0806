"""brain_replay --compare: two replays' answers side by side with the consistency tool's metrics and gate. Pure:
results.json files written here, no ROS processes."""

from __future__ import annotations

import json
import math

import pytest

import robobrain_ros.consistency.report as consistency_report
import robobrain_ros.consistency.scoring as consistency_scoring
from robobrain_ros.consistency.metrics import box_iou, discrete_frechet, mean_nearest_distance
from robobrain_ros.consistency.report import GateThresholds
from robobrain_ros.replay import compare as replay_compare
from robobrain_ros.replay.cli import main
from robobrain_ros.replay.compare import CompareError, CompareGate, compare_results
from robobrain_ros.replay.goals import GoalSpec
from robobrain_ros.replay.report import GoalRecord, RunInfo, load_results, results_data

GATE = CompareGate(GateThresholds(min_answer_agreement=80.0), 100.0)


def info(status: str = 'OK', answer_text: str = '') -> dict:
    return {'status': {'code': 1 if status == 'OK' else 7, 'message': ''}, 'original_width': 640,
            'original_height': 480, 'raw_completion': answer_text, 'answer_text': answer_text, 'camera': 'default'}


def points_answer(points, status='OK') -> dict:
    return {'info': info(status, str(points)), 'points': [{'x': x, 'y': y, 'clipped': False} for x, y in points],
            'points_3d': []}


def box_answer(box) -> dict:
    return {'info': info('OK', str(box)), 'has_box': box is not None,
            'box': dict(zip(('x_min', 'y_min', 'x_max', 'y_max'), box or (0, 0, 0, 0)), clipped=False)}


def text_answer(text) -> dict:
    return {'info': info('OK', text), 'answer': text}


def plan_answer(text) -> dict:
    return {'info': info('OK', text), 'steps': [{'order': 1, 'description': text, 'robot_name': ''}], 'reasoning': ''}


TASKS = {'point': 'pointing', 'affordance': 'affordance', 'trajectory': 'trajectory', 'ground': 'grounding',
         'plan': 'planning', 'ask': 'general'}


def results(answers: list[tuple[str, dict | None, str]], duration: float = 2.9) -> dict:
    """answers: (action, answer data, outcome) per goal, in goal order."""
    records = []
    for index, (action, answer, outcome) in enumerate(answers, start=1):
        status = (answer or {}).get('info', {}).get('status', {}).get('code')
        records.append(GoalRecord(GoalSpec(index, 0.5 * index, action, f'goal {index}'), TASKS[action], outcome,
                                  {1: 'OK', 7: 'SERVER_UNREACHABLE'}.get(status, ''), status or 0, '',
                                  0.5 * index, 0.1 * index, answer))
    run = RunInfo('scene', 'mcap', 0, duration, 1.0, '/robobrain', True, ['http://x/v1'])
    return json.loads(json.dumps(results_data(run, records)))


REFERENCE = [('point', points_answer([(100.0, 100.0), (200.0, 150.0)]), 'succeeded'),
             ('affordance', box_answer((10.0, 10.0, 110.0, 110.0)), 'succeeded'),
             ('trajectory', points_answer([(0.0, 0.0), (100.0, 0.0), (200.0, 0.0)]), 'succeeded'),
             ('ground', box_answer((300.0, 300.0, 400.0, 400.0)), 'succeeded'),
             ('plan', plan_answer('1. pick up the cup'), 'succeeded'),
             ('ask', text_answer('a cup'), 'succeeded')]


def rows(report) -> dict:
    return {row.metric: row for row in report.rows}


def test_the_comparison_uses_the_consistency_metrics_themselves():
    assert replay_compare.compare_answers is consistency_scoring.compare_answers
    assert replay_compare.answer_rows is consistency_report.answer_rows
    assert replay_compare.markdown_table is consistency_report.markdown_table


def test_identical_replays_agree_everywhere_and_pass():
    report = compare_results(results(REFERENCE), results(REFERENCE), GATE)
    found = rows(report)
    for task in ('pointing', 'affordance', 'trajectory', 'grounding', 'planning', 'general'):
        assert found[f'{task}: answers agree (%)'].candidate == 100.0, task
    assert found['pointing: point distance (px, mean)'].candidate == 0.0
    assert found['affordance: box IoU (mean)'].candidate == 1.0
    assert found['trajectory: Fréchet distance (px, mean)'].candidate == 0.0
    assert found['goals: ended alike (%)'].candidate == 100.0
    assert report.passed


def test_distances_are_the_consistency_metrics_of_the_two_answers():
    candidate = list(REFERENCE)
    candidate[0] = ('point', points_answer([(103.0, 104.0), (200.0, 150.0)]), 'succeeded')
    candidate[1] = ('affordance', box_answer((20.0, 10.0, 120.0, 110.0)), 'succeeded')
    candidate[2] = ('trajectory', points_answer([(0.0, 6.0), (100.0, 8.0), (200.0, 0.0)]), 'succeeded')
    report = compare_results(results(REFERENCE), results(candidate), GATE)
    found = rows(report)
    assert found['pointing: point distance (px, mean)'].candidate == pytest.approx(
        mean_nearest_distance([(100, 100), (200, 150)], [(103, 104), (200, 150)]))
    assert found['affordance: box IoU (mean)'].candidate == pytest.approx(box_iou((10, 10, 110, 110),
                                                                                 (20, 10, 120, 110)))
    assert found['trajectory: Fréchet distance (px, mean)'].candidate == pytest.approx(8.0) == discrete_frechet(
        [(0, 0), (100, 0), (200, 0)], [(0, 6), (100, 8), (200, 0)])
    # 2.5 px and 8 px are within the 10 px tolerances; IoU 0.82 is under 0.9: the affordance answers differ.
    assert found['pointing: answers agree (%)'].candidate == 100.0
    assert found['affordance: answers agree (%)'].candidate == 0.0
    assert found['affordance: answers agree (%)'].status == 'FAIL'
    assert not report.passed


def test_text_answers_compare_exactly():
    candidate = list(REFERENCE)
    candidate[5] = ('ask', text_answer('a mug'), 'succeeded')
    report = compare_results(results(REFERENCE), results(candidate), GATE)
    assert rows(report)['general: answers agree (%)'].candidate == 0.0
    assert {row['index']: row['answers_agree'] for row in report.samples}[6] is False


def test_a_goal_that_failed_on_the_candidate_fails_the_gate_and_is_listed():
    candidate = list(REFERENCE)
    candidate[0] = ('point', points_answer([], status='SERVER_UNREACHABLE'), 'aborted')
    report = compare_results(results(REFERENCE), results(candidate), GATE)
    found = rows(report)
    assert found['goals: ended alike (%)'].candidate == pytest.approx(100 * 5 / 6)
    assert found['goals: ended alike (%)'].status == 'FAIL'
    # No answer on one side is as far off as an answer can be: the image diagonal.
    assert found['pointing: point distance (px, mean)'].candidate == pytest.approx(math.hypot(640, 480))
    first = report.samples[0]
    assert (first['reference_ending'], first['candidate_ending']) == ('succeeded/OK', 'aborted/SERVER_UNREACHABLE')


def test_replays_of_other_goals_cannot_be_compared():
    other = results(REFERENCE)
    other['goals'][2]['goal']['instruction'] = 'something else'
    with pytest.raises(CompareError, match="goal 3: instruction is 'goal 3' in the reference and 'something else'"):
        compare_results(results(REFERENCE), other, GATE)
    with pytest.raises(CompareError, match='the reference ran 6 goals, the candidate 5'):
        compare_results(results(REFERENCE), results(REFERENCE[:5]), GATE)
    with pytest.raises(CompareError, match='replay the same bag'):
        compare_results(results(REFERENCE), results(REFERENCE, duration=5.0), GATE)


def write(tmp_path, name, data) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / 'results.json').write_text(json.dumps(data))
    return str(folder)


def test_the_command_line_prints_the_table_and_exits_by_the_gate(tmp_path, capsys):
    a = write(tmp_path, 'reference', results(REFERENCE))
    b = write(tmp_path, 'candidate', results(REFERENCE))
    assert main(['--compare', a, b, '--json', str(tmp_path / 'table.json')]) == 0
    printed = capsys.readouterr().out
    assert '| metric | reference | candidate | delta | gate |' in printed
    assert '| pointing: answers agree (%) | 100 | 100 | 0 | pass |' in printed
    assert printed.rstrip().endswith('gate PASSED')
    assert json.loads((tmp_path / 'table.json').read_text())['passed'] is True
    candidate = list(REFERENCE)
    candidate[5] = ('ask', text_answer('a mug'), 'succeeded')
    c = write(tmp_path, 'worse', results(candidate))
    assert main(['--compare', a, c]) == 1
    assert 'gate FAILED: general: answers agree (%): 0.0% vs at least 80%' in capsys.readouterr().out
    # A looser gate lets it pass.
    assert main(['--compare', a, c, '--min-answer-agreement', '0']) == 0


def test_the_command_line_refuses_what_it_cannot_compare(tmp_path, capsys):
    a = write(tmp_path, 'reference', results(REFERENCE))
    b = write(tmp_path, 'other', results(REFERENCE[:2]))
    assert main(['--compare', a, b]) == 2
    assert 'cannot compare' in capsys.readouterr().err
    assert main(['--compare', a, str(tmp_path / 'nothing')]) == 2
    assert 'cannot read' in capsys.readouterr().err
    (tmp_path / 'not_replay.json').write_text('{"rows": []}')
    with pytest.raises(ValueError, match='is not the results.json of a brain_replay output'):
        load_results(tmp_path / 'not_replay.json')
