"""parse_completion: published RoboBrain 2.0 answers, tolerance, mapping, clipping, plans, robustness."""

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robobrain_ros.protocol import (
    AnswerBox,
    AnswerPoint,
    AnswerStep,
    ModelFamily,
    ModelSize,
    ModelSpec,
    Task,
    parse_completion,
)

R20, R25 = ModelFamily.ROBOBRAIN_2_0, ModelFamily.ROBOBRAIN_2_5
DEMO_DIR = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'robobrain2_demo'
STILL_THINKING = 'the model was still thinking when generation stopped (no </think>)'


def _published_cases() -> list[dict]:
    vectors = DEMO_DIR / 'vectors.json'
    if not vectors.is_file():
        pytest.fail(f'published RoboBrain 2.0 test vectors missing: expected {vectors.resolve()} '
                    '(shared/ next to the repo)')
    return json.loads(vectors.read_text())['cases']


EXPECTED = {
    'pointing': [(376, 309), (332, 357), (384, 335), (343, 296), (348, 327), (328, 346), (371, 322), (392, 303),
                 (380, 324), (337, 295)],
    'trajectory': [(137, 116), (169, 94), (208, 84), (228, 80)],
    'affordance': (577, 224, 638, 310),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_published_answers_with_thinking_on(name):
    (case,) = [c for c in _published_cases() if c['name'] == name]
    completion = case['thinking'] + '</think><answer>' + case['answer'] + '</answer>'
    size = tuple(case['image_size_wh'])
    answer = parse_completion(Task(case['task']), completion, True, size, size, R20)
    assert answer.ok, answer.error
    assert answer.raw == completion
    assert answer.thinking == case['thinking'].strip()
    assert answer.answer == case['answer']
    if name == 'affordance':
        assert answer.box == AnswerBox(*EXPECTED[name])
        assert answer.points == []
    else:
        assert answer.points == [AnswerPoint(float(x), float(y)) for x, y in EXPECTED[name]]
        assert answer.box is None
    assert answer.depths == [] and answer.steps == []


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_published_answers_with_thinking_off_and_none(name):
    (case,) = [c for c in _published_cases() if c['name'] == name]
    size = tuple(case['image_size_wh'])
    off = parse_completion(Task(case['task']), case['answer'] + '</answer>', False, size, size, R20)
    bare = parse_completion(Task(case['task']), case['answer'], None, size, size, R20)
    assert off.ok and bare.ok
    assert off.points == bare.points and off.box == bare.box
    assert off.thinking == '' and off.answer == case['answer']


def test_cut_short_thinking_is_an_error_and_no_points_are_read_from_it():
    completion = 'The mug is near (100, 200), so the points are [(100, 200)'
    answer = parse_completion(Task.POINTING, completion, True, (640, 480), (640, 480), R20)
    assert answer.error == STILL_THINKING
    assert answer.points == [] and answer.thinking == completion and answer.raw == completion
    assert not answer.ok


def test_thinking_that_echoes_the_open_tag_is_still_cut_short_in_any_mode():
    answer = parse_completion(Task.POINTING, '<think>I see (1, 2)', False, (640, 480), (640, 480), R20)
    assert answer.error == STILL_THINKING and answer.points == []


@pytest.mark.parametrize(
    ('completion', 'thinking'),
    [
        ('<think>why</think><answer>[(10, 20)]</answer>', True),  # server echoed the prefill
        ('why</think><answer>[(10, 20)]</answer>', True),
        ('why</think>[(10, 20)]', True),  # no answer tags
        ('why<answer>[(10, 20)]</answer>', True),  # no </think> but an answer
        ('[(10, 20)]</answer>', False),
        ('<answer>[(10, 20)]</answer>', False),
        ('<think></think><answer>[(10, 20)]</answer>', False),
        ('<think>why</think><answer>[(10, 20)]</answer>', None),
        ('[(10, 20)]', None),
        ('[(10, 20)]', False),
        ('<answer>[(10, 20)]', False),  # cut before </answer>
    ],
)
def test_tags_present_or_absent_in_any_mode(completion, thinking):
    answer = parse_completion(Task.POINTING, completion, thinking, (640, 480), (640, 480), R20)
    assert answer.ok, answer.error
    assert answer.points == [AnswerPoint(10.0, 20.0)]
    assert answer.answer == '[(10, 20)]'


@pytest.mark.parametrize(
    'text',
    [
        '[(10, 20), (30, 40)]',
        '[[10, 20], [30, 40]]',
        '[(10.0, 20.0), (30.0, 40.0)]',
        '[ ( 10 ,20 ) ,(30,  40) ]',
        'The points are [(10, 20), (30, 40)]. Done.',
        '(10, 20), (30, 40)',
        '[(+10, 20), (30., 40)]',
    ],
)
def test_point_list_variants(text):
    answer = parse_completion(Task.TRAJECTORY, text, None, (640, 480), (640, 480), R20)
    assert answer.ok, answer.error
    assert answer.points == [AnswerPoint(10.0, 20.0), AnswerPoint(30.0, 40.0)]


def test_float_coordinates_are_kept():
    answer = parse_completion(Task.POINTING, '[(10.25, .5)]', None, (640, 480), (640, 480), R20)
    assert answer.points == [AnswerPoint(10.25, 0.5)]


def test_points_map_from_sent_to_original_pixels():
    # Sent at 644x476 (processor size of 1280x960 at a small budget, for instance): scale 2 / ~2.0168
    answer = parse_completion(Task.POINTING, '[(322, 238), (0, 476)]', None, (644, 476), (1288, 952), R20)
    assert answer.points == [AnswerPoint(644.0, 476.0), AnswerPoint(0.0, 952.0)]


def test_out_of_image_points_are_clipped_and_flagged_not_dropped():
    answer = parse_completion(Task.POINTING, '[(-5, 10), (700, 500), (320, 240)]', None, (640, 480), (640, 480), R20)
    assert answer.ok
    assert answer.points == [
        AnswerPoint(0.0, 10.0, clipped=True),
        AnswerPoint(640.0, 480.0, clipped=True),
        AnswerPoint(320.0, 240.0, clipped=False),
    ]


def test_box_is_scaled_normalised_and_clipped():
    answer = parse_completion(Task.GROUNDING, '[300, 200, 100, 50]', None, (320, 240), (640, 480), R20)
    assert answer.box == AnswerBox(200.0, 100.0, 600.0, 400.0, clipped=False)
    clipped = parse_completion(Task.AFFORDANCE, '[-10, 20, 400, 100]', None, (320, 240), (640, 480), R20)
    assert clipped.box == AnswerBox(0.0, 40.0, 640.0, 200.0, clipped=True)


def test_box_from_two_corner_points():
    answer = parse_completion(Task.GROUNDING, '[(10, 20), (30, 40)]', None, (640, 480), (640, 480), R20)
    assert answer.box == AnswerBox(10.0, 20.0, 30.0, 40.0)


def test_robobrain_2_5_relative_coordinates_and_depth():
    pointing = parse_completion(Task.POINTING, '[(500, 250)]', None, (999, 999), (640, 480), R25)
    assert pointing.points == [AnswerPoint(320.0, 120.0)]
    assert pointing.depths == []
    trajectory = parse_completion(
        Task.TRAJECTORY, '[(0, 1000, 0.52), (250, 500, 0.481), (1100, 500)]', None, (0, 0), (640, 480), R25
    )
    assert trajectory.points == [AnswerPoint(0.0, 480.0), AnswerPoint(160.0, 240.0),
                                 AnswerPoint(640.0, 240.0, clipped=True)]
    assert trajectory.depths[:2] == [0.52, 0.481] and math.isnan(trajectory.depths[2])
    box = parse_completion(Task.GROUNDING, '[100, 100, 500, 500]', None, (1, 1), (1000, 2000), R25)
    assert box.box == AnswerBox(100.0, 200.0, 500.0, 1000.0)


def test_robobrain_2_0_trajectory_ignores_a_third_number_as_depth():
    answer = parse_completion(Task.TRAJECTORY, '[(1, 2, 3)]', None, (640, 480), (640, 480), R20)
    assert answer.points == [AnswerPoint(1.0, 2.0)] and answer.depths == []


@pytest.mark.parametrize(('task', 'what'), [(Task.POINTING, 'points'), (Task.TRAJECTORY, 'points'),
                                            (Task.AFFORDANCE, 'box'), (Task.GROUNDING, 'box')])
def test_missing_structure_is_an_error_quoting_the_answer(task, what):
    answer = parse_completion(task, 'I cannot see any mug on the table', None, (640, 480), (640, 480), R20)
    assert not answer.ok
    assert "'I cannot see any mug on the table'" in answer.error
    assert answer.points == [] and answer.box is None
    assert answer.answer == 'I cannot see any mug on the table'


@pytest.mark.parametrize('task', [Task.POINTING, Task.TRAJECTORY, Task.AFFORDANCE, Task.GROUNDING])
@pytest.mark.parametrize(('completion', 'thinking'), [('[]</answer>', False), ('[]', None), ('[ ]', None),
                                                      ('<answer>[]</answer>', None),
                                                      ('none here</think><answer>[]</answer>', True)])
def test_an_empty_list_is_nothing_found_not_an_error(task, completion, thinking):
    # Finding (issue 11): there was no way to say "nothing found"; an empty answer was a parse error.
    answer = parse_completion(task, completion, thinking, (640, 480), (640, 480), R20)
    assert answer.ok, answer.error
    assert answer.not_found is True
    assert answer.points == [] and answer.box is None


def test_found_answers_are_not_not_found():
    assert parse_completion(Task.POINTING, '[(1, 2)]', None, (640, 480), (640, 480), R20).not_found is False
    assert parse_completion(Task.GROUNDING, '[1, 2, 3, 4]', None, (640, 480), (640, 480), R20).not_found is False
    assert parse_completion(Task.POINTING, 'no mug', None, (640, 480), (640, 480), R20).not_found is False


@pytest.mark.parametrize('spec', [ModelSpec(R25, ModelSize.B8, 'name'), ModelSpec(R20, ModelSize.B3, 'name')],
                         ids=['2.5-8b', '2.0-3b'])
def test_models_without_a_thinking_prefill_answer_bare_even_with_thinking_on(spec):
    # No prefill went out (build_request with the same spec), so the completion is not thinking cut short.
    answer = parse_completion(Task.POINTING, '[(500, 250)]', True, (1000, 1000), (1000, 1000), spec)
    assert answer.ok, answer.error
    assert len(answer.points) == 1
    # A model that thinks on its own and is cut short is still recognised.
    cut = parse_completion(Task.POINTING, '<think>the mug is at (1, 2)', True, (1000, 1000), (1000, 1000), spec)
    assert cut.error == STILL_THINKING


def test_error_excerpt_is_short():
    answer = parse_completion(Task.POINTING, 'word ' * 200, None, (640, 480), (640, 480), R20)
    assert len(answer.error) < 200 and answer.error.endswith("...'")


def test_pointing_does_not_read_a_box_as_points():
    answer = parse_completion(Task.POINTING, '[577, 224, 638, 310]', None, (640, 480), (640, 480), R20)
    assert not answer.ok and answer.points == []


def test_unusable_sizes_are_an_error_not_an_exception():
    answer = parse_completion(Task.POINTING, '[(1, 2)]', None, (0, 480), (640, 480), R20)
    assert not answer.ok and 'sent_size' in answer.error
    # 2.5 does not need the sent size.
    assert parse_completion(Task.POINTING, '[(1, 2)]', None, (0, 0), (640, 480), R25).ok


def test_general_answer_text():
    answer = parse_completion(Task.GENERAL, 'It is a kitchen.</answer>', False, (1, 1), (1, 1), R20)
    assert answer.ok and answer.answer == 'It is a kitchen.'
    empty = parse_completion(Task.GENERAL, '</answer>', False, (1, 1), (1, 1), R20)
    assert empty.error == 'the answer is empty'


@pytest.mark.parametrize(
    'text',
    [
        '1. Pick up the cup\n2. Move it to the sink\n3. Release it',
        '1) Pick up the cup\n2) Move it to the sink\n3) Release it',
        'Step 1: Pick up the cup\nStep 2: Move it to the sink\nStep 3: Release it',
        'Here is the plan:\n1. Pick up the cup\n2. Move it to the sink\n\n3. Release it\nGood luck.',
        '**Step 1:** Pick up the cup\n**Step 2:** Move it to the sink\n**Step 3:** Release it',
        '- Pick up the cup\n- Move it to the sink\n- Release it',
        'Pick up the cup\nMove it to the sink\nRelease it',
    ],
)
def test_plan_formats(text):
    answer = parse_completion(Task.PLANNING, text + '</answer>', False, (1, 1), (1, 1), R20)
    assert answer.ok, answer.error
    assert answer.steps == [
        AnswerStep(1, 'Pick up the cup'),
        AnswerStep(2, 'Move it to the sink'),
        AnswerStep(3, 'Release it'),
    ]


def test_roboos_json_plan_in_a_fence():
    plan = {
        'reasoning_explanation': 'The cup must be held before it can be moved.',
        'subtask_list': [
            {'robot_name': 'arm_b', 'subtask': 'Open the cabinet', 'subtask_order': 2},
            {'robot_name': 'arm_a', 'subtask': 'Pick up the cup', 'subtask_order': 1},
        ],
    }
    text = 'Sure.\n```json\n' + json.dumps(plan, indent=2) + '\n```'
    answer = parse_completion(Task.PLANNING, text, None, (1, 1), (1, 1), R20)
    assert answer.ok, answer.error
    assert answer.steps == [AnswerStep(1, 'Pick up the cup', 'arm_a'), AnswerStep(2, 'Open the cabinet', 'arm_b')]
    assert answer.reasoning == 'The cup must be held before it can be moved.'


def test_bare_json_plan_and_list_of_strings():
    answer = parse_completion(Task.PLANNING, '["grasp", "lift"]', None, (1, 1), (1, 1), R20)
    assert answer.steps == [AnswerStep(1, 'grasp'), AnswerStep(2, 'lift')]
    bad_json = parse_completion(Task.PLANNING, '{"subtask_list": [}\n1. grasp', None, (1, 1), (1, 1), R20)
    assert bad_json.steps == [AnswerStep(1, 'grasp')]


def test_empty_plan_is_an_error():
    answer = parse_completion(Task.PLANNING, '  \n </answer>', False, (1, 1), (1, 1), R20)
    assert not answer.ok and answer.steps == []


def test_non_text_completion_is_an_error_not_an_exception():
    answer = parse_completion(Task.POINTING, None, None, (1, 1), (1, 1), R20)  # type: ignore[arg-type]
    assert not answer.ok


_TOKENS = st.sampled_from(
    ['<think>', '</think>', '<answer>', '</answer>', '[', ']', '(', ')', ',', ' ', '\n', '-', '.', '1', '42', '1e9',
     '9' * 400, '```json', '```', '{', '}', '"subtask_list":', '"subtask_order": ', 'Step 1:', '1.', 'nan', 'inf']
)
_SIZES = st.tuples(st.integers(-2, 5000), st.integers(-2, 5000))


@settings(max_examples=400, deadline=None)
@given(
    task=st.sampled_from(list(Task)),
    family=st.sampled_from(list(ModelFamily)),
    thinking=st.sampled_from([True, False, None]),
    text=st.one_of(st.text(max_size=300), st.lists(_TOKENS, max_size=60).map(''.join)),
    sent=_SIZES,
    original=_SIZES,
)
def test_parse_completion_never_raises(task, family, thinking, text, sent, original):
    answer = parse_completion(task, text, thinking, sent, original, family)
    assert answer.raw == text
    assert answer.task is task
    for point in answer.points:
        assert math.isfinite(point.x) and math.isfinite(point.y)
        assert 0 <= point.x <= original[0] and 0 <= point.y <= original[1]
    if answer.not_found:
        assert answer.ok and not answer.points and answer.box is None
    if answer.ok and task in (Task.POINTING, Task.TRAJECTORY):
        assert answer.points or answer.not_found
    if answer.ok and task in (Task.AFFORDANCE, Task.GROUNDING) and not answer.not_found:
        assert answer.box is not None and answer.box.x_min <= answer.box.x_max and answer.box.y_min <= answer.box.y_max
