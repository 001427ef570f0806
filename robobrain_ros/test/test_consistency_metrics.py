"""Unit tests of the consistency tool's pure parts: geometry, log-probability agreement, scoring, gate, table."""

import json
import math

import numpy as np
import pytest

from robobrain_ros.consistency.baseline import (
    Baseline,
    BaselineError,
    calibrated_gate,
    check_same_reference,
    load_baseline,
)
from robobrain_ros.consistency.cli import EXIT_ERROR, main
from robobrain_ros.consistency.metrics import (
    PositionLogprobs,
    box_iou,
    compare_logprobs,
    discrete_frechet,
    fraction_in_box,
    fraction_in_mask,
    mean_nearest_distance,
)
from robobrain_ros.consistency.report import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    GateThresholds,
    SampleResult,
    build_report,
    markdown_table,
)
from robobrain_ros.consistency.samples import GroundTruth, Sample
from robobrain_ros.consistency.scoring import Tolerances, compare_answers, task_scores
from robobrain_ros.protocol import Answer, AnswerBox, AnswerPoint, Task


def test_frechet_of_parallel_lines_is_their_gap():
    assert discrete_frechet([(0, 0), (1, 0), (2, 0)], [(0, 3), (1, 3), (2, 3)]) == pytest.approx(3.0)


def test_frechet_follows_order_unlike_nearest_distance():
    forward, backward = [(0, 0), (10, 0)], [(10, 0), (0, 0)]
    assert discrete_frechet(forward, backward) == pytest.approx(10.0)
    assert mean_nearest_distance(forward, backward) == 0.0


def test_frechet_couples_a_long_and_a_short_polyline():
    # Every point of the long one couples to the nearest end of the short one, in order.
    assert discrete_frechet([(0, 0), (1, 0), (2, 0), (3, 0)], [(0, 0), (3, 0)]) == pytest.approx(1.0)
    assert discrete_frechet([(0, 0)], [(3, 4)]) == pytest.approx(5.0)
    assert math.isinf(discrete_frechet([], [(0, 0)]))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 1.0   # the same degenerate box
    assert box_iou((0, 0, 0, 0), (1, 1, 1, 1)) == 0.0


def test_points_in_box_and_mask():
    assert fraction_in_box([(5, 5), (10, 10), (11, 5)], (0, 0, 10, 10)) == pytest.approx(2 / 3)
    assert fraction_in_box([], (0, 0, 10, 10)) == 0.0
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:4] = 255
    assert fraction_in_mask([(2.5, 1.2), (3.99, 2.99), (4.0, 1.0), (0, 0)], mask) == 0.5
    assert fraction_in_mask([(6.0, 4.0)], np.full((4, 6), 1, np.uint8)) == 1.0   # border point = last pixel


def _position(token, token_logprob, top):
    return PositionLogprobs(token, token_logprob, top)


def test_identical_logprobs_have_no_drift():
    positions = [_position(1, -0.1, {1: -0.1, 2: -2.0, 3: -3.0}), _position(2, -1.0, {3: -0.5, 2: -1.0, 4: -2.5})]
    agreement = compare_logprobs(positions, positions, 0.01)
    assert (agreement.drift, agreement.max_abs_delta, agreement.top1_agreement, agreement.topk_overlap) == (0, 0, 1, 1)
    assert agreement.decisiveness == pytest.approx((2.9 + 2.0) / 2)


def test_drift_is_measured_against_the_reference_spread():
    reference = [_position(1, -0.1, {1: -0.1, 2: -1.1})]          # spread 1 nat
    candidate = [_position(1, -0.3, {2: -0.2, 1: -0.3})]          # token moved 0.2 nats, top-1 flipped
    agreement = compare_logprobs(reference, candidate, 0.01)
    assert agreement.drift == pytest.approx(0.2)
    assert agreement.top1_agreement == 0.0
    assert agreement.topk_overlap == 1.0


def test_different_tokens_cannot_be_compared():
    with pytest.raises(ValueError, match='token 0'):
        compare_logprobs([_position(1, -1, {1: -1})], [_position(2, -1, {2: -1})], 0.01)
    with pytest.raises(ValueError, match='scored 1 answer tokens'):
        compare_logprobs([_position(1, -1, {1: -1})], [], 0.01)


def _answer(task, points=(), box=None, text=''):
    return Answer(task=task, raw=text, answer=text, points=[AnswerPoint(x, y) for x, y in points],
                  box=None if box is None else AnswerBox(*box))


def test_answer_agreement_per_task():
    tol = Tolerances()
    size = (640, 480)
    close = compare_answers(Task.POINTING, _answer(Task.POINTING, [(10, 10)]), _answer(Task.POINTING, [(13, 14)]),
                            size, tol)
    assert close.agree and close.distance == pytest.approx(5.0)
    missing = compare_answers(Task.POINTING, _answer(Task.POINTING, [(10, 10)]), _answer(Task.POINTING), size, tol)
    assert not missing.agree and missing.distance == pytest.approx(800.0)
    assert compare_answers(Task.POINTING, _answer(Task.POINTING), _answer(Task.POINTING), size, tol).agree
    boxes = compare_answers(Task.GROUNDING, _answer(Task.GROUNDING, box=(0, 0, 10, 10)),
                            _answer(Task.GROUNDING, box=(0, 0, 10, 12)), size, tol)
    assert not boxes.agree and boxes.distance == pytest.approx(100 / 120)
    track = compare_answers(Task.TRAJECTORY, _answer(Task.TRAJECTORY, [(0, 0), (100, 0)]),
                            _answer(Task.TRAJECTORY, [(0, 3), (100, 4)]), size, tol)
    assert track.agree and track.distance == pytest.approx(4.0)
    assert compare_answers(Task.PLANNING, _answer(Task.PLANNING, text='1. go'),
                           _answer(Task.PLANNING, text='1. go '), size, tol).agree


def _sample(task, **truth):
    return Sample(f'{task.value}-sample', task, None, 'x', GroundTruth(**truth))  # type: ignore[arg-type]


def test_task_scores_against_ground_truth():
    tol = Tolerances()
    size = (640, 480)
    pointing = _sample(Task.POINTING, box=(0, 0, 10, 10))
    assert (task_scores(pointing, _answer(Task.POINTING, [(5, 5), (50, 50)]), size, tol)
            == {'points in target (%)': 50.0})
    grounding = _sample(Task.GROUNDING, box=(0, 0, 10, 10))
    assert task_scores(grounding, _answer(Task.GROUNDING, box=(0, 0, 10, 18)), size, tol) == {'IoU >= 0.5 (%)': 100.0}
    assert task_scores(grounding, _answer(Task.GROUNDING), size, tol) == {'IoU >= 0.5 (%)': 0.0}
    trajectory = _sample(Task.TRAJECTORY, trajectory=((0, 0), (100, 0)))
    near = task_scores(trajectory, _answer(Task.TRAJECTORY, [(0, 30), (100, 30)]), size, tol)
    assert near == {'Fréchet to ground truth (px)': 30.0, 'success (%)': 100.0}
    lost = task_scores(trajectory, _answer(Task.TRAJECTORY), size, tol)
    assert lost == {'Fréchet to ground truth (px)': 800.0, 'success (%)': 0.0}
    assert task_scores(_sample(Task.POINTING), _answer(Task.POINTING, [(1, 1)]), size, tol) == {}


def _result(sample, reference, candidate, forced_ref, forced_cand):
    return SampleResult(sample, (640, 480), reference, candidate, forced_ref, forced_cand)


_DECISIVE = [_position(1, -0.1, {1: -0.1, 2: -2.0}), _position(2, -0.2, {2: -0.2, 3: -3.0})]


def _rows(report):
    return {row.metric: row for row in report.rows}


def test_gate_passes_identical_servers():
    sample = _sample(Task.GROUNDING, box=(0, 0, 10, 10))
    answer = _answer(Task.GROUNDING, box=(0, 0, 10, 10))
    report = build_report([_result(sample, answer, answer, _DECISIVE, _DECISIVE)], GateThresholds(), Tolerances())
    assert report.passed
    rows = _rows(report)
    assert rows['grounding: IoU >= 0.5 (%)'].status == PASS
    assert rows['overall numerical: logprob drift (abs Δ / spread)'].status == PASS
    table = markdown_table(report, 'ref', 'cand')
    assert table.splitlines()[0] == '| metric | ref | cand | delta | gate |'
    assert '| grounding: IoU >= 0.5 (%) | 100 | 100 | 0 | pass |' in table


def test_gate_names_a_score_drop_and_numerical_drift():
    sample = _sample(Task.GROUNDING, box=(0, 0, 10, 10))
    moved = [_position(1, -1.5, {2: -0.5, 1: -1.5}), _position(2, -0.2, {2: -0.2, 3: -3.0})]
    report = build_report([_result(sample, _answer(Task.GROUNDING, box=(0, 0, 10, 10)),
                                   _answer(Task.GROUNDING, box=(50, 50, 60, 60)), _DECISIVE, moved)],
                          GateThresholds(), Tolerances())
    failed = {row.metric for row in report.failed}
    assert failed == {'grounding: IoU >= 0.5 (%)', 'overall numerical: logprob drift (abs Δ / spread)',
                      'overall numerical: top-1 agreement (%)'}
    data = report.as_json()
    assert data['passed'] is False
    assert any(line.startswith('grounding: IoU >= 0.5 (%): drop 100.0 points') for line in data['failed'])
    assert '| FAIL: drop 100.0 points vs at most 5 |' in markdown_table(report, 'ref', 'cand')


def test_near_uniform_reference_is_inconclusive_not_a_pass():
    # vLLM's dummy weights: every log-probability within 2.5e-5 nats of -ln(vocabulary).
    flat = [_position(1, -11.93201, {1: -11.93200, 2: -11.93201, 3: -11.93202})]
    sample = _sample(Task.PLANNING)
    answer = _answer(Task.PLANNING, text='1. go')
    report = build_report([_result(sample, answer, answer, flat, flat)], GateThresholds(), Tolerances())
    rows = _rows(report)
    assert rows['overall numerical: logprob drift (abs Δ / spread)'].status == INCONCLUSIVE
    assert 'near-uniform' in rows['overall numerical: logprob drift (abs Δ / spread)'].reason
    assert not report.passed


def test_answer_agreement_is_gated_only_on_request():
    sample = _sample(Task.PLANNING)
    report_args = ([_result(sample, _answer(Task.PLANNING, text='1. go'), _answer(Task.PLANNING, text='1. stop'),
                            _DECISIVE, _DECISIVE)], )
    assert build_report(*report_args, GateThresholds(), Tolerances()).passed
    gated = build_report(*report_args, GateThresholds(min_answer_agreement=100.0), Tolerances())
    assert [row.metric for row in gated.failed] == ['planning: answers agree (%)']
    assert FAIL == gated.failed[0].status


def _moved_report(gate=GateThresholds()):
    """A candidate whose numbers moved (drift 0.5, top-1 50%) and whose box missed the target."""
    sample = _sample(Task.GROUNDING, box=(0, 0, 10, 10))
    moved = [_position(1, -1.5, {2: -0.5, 1: -1.5}), _position(2, -0.2, {2: -0.2, 3: -3.0})]
    return build_report([_result(sample, _answer(Task.GROUNDING, box=(0, 0, 10, 10)),
                                 _answer(Task.GROUNDING, box=(50, 50, 60, 60)), _DECISIVE, moved)], gate, Tolerances())


def test_a_deep_models_harmless_baseline_widens_the_numerical_gate_never_tightens_it():
    # the 32B architecture's vLLM eager vs compiled on the H200 (docs/BENCHMARKS.md)
    wide = calibrated_gate(GateThresholds(), Baseline(drift=0.2466, top1_agreement=75.05, tokens=2313, source='e'))
    assert wide.max_drift == pytest.approx(1.8 * 0.2466) and wide.min_top1_agreement == pytest.approx(68.05)
    assert wide.max_score_drop == GateThresholds().max_score_drop
    # the 7B's FlagGems run moved the numbers less than the defaults allow: nothing changes
    assert calibrated_gate(GateThresholds(), Baseline(0.089, 91.5, 2180, 'f')) == GateThresholds()


def test_a_baseline_is_read_from_a_report_and_must_share_its_reference(tmp_path):
    report = _moved_report()
    path = tmp_path / 'eager.json'
    path.write_text(json.dumps(report.as_json()))
    baseline = load_baseline(path)
    rows = _rows(report)
    assert baseline.drift == rows['overall numerical: logprob drift (abs Δ / spread)'].candidate
    assert baseline.top1_agreement == rows['overall numerical: top-1 agreement (%)'].candidate
    calibrated = _moved_report(calibrated_gate(GateThresholds(), baseline))
    check_same_reference(calibrated, baseline)
    # as far off as the baseline: the numbers pass, the missed box still fails
    assert {row.metric for row in calibrated.failed} == {'grounding: IoU >= 0.5 (%)'}
    with pytest.raises(BaselineError, match='another reference or sample set'):
        check_same_reference(calibrated, Baseline(baseline.drift, baseline.top1_agreement, baseline.tokens + 1, 'x'))


def test_a_file_that_is_not_a_report_is_refused_before_any_server_is_asked(tmp_path, capsys):
    bad = tmp_path / 'notes.json'
    bad.write_text('{"drift": 0.2}')
    with pytest.raises(BaselineError, match='notes.json: not a consistency report'):
        load_baseline(bad)
    status = main(['--reference-file', str(tmp_path / 'missing.json'), '--candidate', 'http://127.0.0.1:9/v1',
                   '--baseline-file', str(bad)])
    assert status == EXIT_ERROR
    assert 'notes.json: not a consistency report' in capsys.readouterr().err
