"""Answer constraints: accept native answers (and "nothing found"), reject others, follow the prefill actually
sent, go out in each API generation's field, and stay within xgrammar's regex syntax."""

import json
import re
from pathlib import Path

import pytest

from robobrain_ros.protocol import (
    ConstraintDialect,
    ModelFamily,
    ModelSize,
    ModelSpec,
    Task,
    completion_pattern,
    constraint_fields,
)
from robobrain_ros.protocol.structured_outputs import int_range_pattern

R20, R25 = ModelFamily.ROBOBRAIN_2_0, ModelFamily.ROBOBRAIN_2_5
SPEC_2_0_3B = ModelSpec(R20, ModelSize.B3, 'name')
DEMO_DIR = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'robobrain2_demo'

ALL_COMBINATIONS = [
    (task, thinking, family, sent_size)
    for family in ModelFamily
    for task in Task
    for thinking in (None, False)
    for sent_size in (None, (1288, 728))
    if not (family is R25 and task is Task.AFFORDANCE)
]

# Native answers (bare, no tags) that must be accepted, and wrong formats that must not.
ACCEPT = {
    (R20, Task.POINTING): ['[]', '[(376, 309)]',
                           '[(376, 309), (332, 357), (384, 335), (343, 296), (348, 327), (328, 346), (371, 322), '
                           '(392, 303), (380, 324), (337, 295)]'],
    (R20, Task.TRAJECTORY): ['[]', '[(137, 116), (169, 94), (208, 84), (228, 80)]', '[[137, 116], [169, 94]]'],
    (R20, Task.AFFORDANCE): ['[]', '[577, 224, 638, 310]'],
    (R20, Task.GROUNDING): ['[]', '[0, 0, 1288, 728]'],
    (R20, Task.PLANNING): ['1. Pick up the cup', '1. Pick up the cup\n2. Put it in the sink\n3. Open the tap'],
    (R20, Task.GENERAL): ['A kitchen with two mugs.', 'Yes'],
    (R25, Task.POINTING): ['[]', '[(500, 250)]', '[(0, 1000), (12, 7)]'],
    (R25, Task.TRAJECTORY): ['[]', '[(500, 250, 0.52), (510, 260, 0.5), (520, 270, 1)]'],
    (R25, Task.GROUNDING): ['[]', '[100, 200, 300, 400]'],
    (R25, Task.PLANNING): ['1. Grasp'],
    (R25, Task.GENERAL): ['Two mugs.'],
}
REJECT = {
    (R20, Task.POINTING): ['', '[ ]', '[()]', '[(376, 309),]', '[(376,309)]', '(376, 309)', '[(3760, 30900)]',
                           '[(-1, 2)]', '[(1.5, 2)]', '[577, 224, 638, 310]', 'The point is [(1, 2)]',
                           '[' + ', '.join(['(1, 2)'] * 11) + ']'],
    (R20, Task.TRAJECTORY): ['[(1, 2), [3, 4]]', '[(1, 2, 3)]', '[' + ', '.join(['(1, 2)'] * 11) + ']'],
    (R20, Task.AFFORDANCE): ['[[]]', '[577, 224, 638]', '[(577, 224), (638, 310)]', '[577, 224, 638, 310, 1]'],
    (R20, Task.GROUNDING): ['[1, 2, 3, 4] ', 'box: [1, 2, 3, 4]'],
    (R20, Task.PLANNING): ['', '2. Start with two', '1. a\n3. skipped two', '1. ' + 'x' * 121, 'Pick up the cup',
                           '\n'.join(f'{n}. step' for n in range(1, 12))],
    (R20, Task.GENERAL): ['', 'x' * 2001, 'a <b> c'],
    (R25, Task.POINTING): ['[(500, 250, 0.5)]'],
    (R25, Task.TRAJECTORY): ['[(500, 250)]', '[(500, 250, -0.5)]', '[(500, 250, 0.12345)]'],
    (R25, Task.GROUNDING): ['[(1, 2), (3, 4)]'],
}


def _wrap(answer: str, thinking: bool | None) -> str:
    """The completion after the prefill a RoboBrain 2.0 7B/32B gets (none for thinking None)."""
    return answer if thinking is None else f'{answer}</answer>'


def _regex(task, thinking, family, sent_size=None) -> str:
    fields = constraint_fields(task, thinking, family, sent_size)
    assert set(fields) == {'structured_outputs'} and set(fields['structured_outputs']) == {'regex'}
    return fields['structured_outputs']['regex']


@pytest.mark.parametrize(('family', 'task'), sorted(ACCEPT, key=str))
@pytest.mark.parametrize('thinking', [None, False])
def test_native_answers_are_accepted(family, task, thinking):
    pattern = re.compile(_regex(task, thinking, family))
    for answer in ACCEPT[(family, task)]:
        assert pattern.fullmatch(_wrap(answer, thinking)), answer


@pytest.mark.parametrize(('family', 'task'), sorted(REJECT, key=str))
@pytest.mark.parametrize('thinking', [None, False])
def test_wrong_formats_are_rejected(family, task, thinking):
    pattern = re.compile(_regex(task, thinking, family))
    for answer in REJECT[(family, task)]:
        assert not pattern.fullmatch(_wrap(answer, thinking)), answer


@pytest.mark.parametrize('task', [Task.POINTING, Task.TRAJECTORY, Task.AFFORDANCE, Task.GROUNDING])
def test_nothing_found_is_an_answer_the_constraint_allows(task):
    # Finding (issue 11): the constraint demanded at least one point, so a model could not say "nothing here".
    assert re.fullmatch(_regex(task, False, R20, (640, 480)), '[]</answer>')
    assert re.fullmatch(_regex(task, None, SPEC_2_0_3B, (640, 480)), '[]')


@pytest.mark.parametrize('task', list(Task))
@pytest.mark.parametrize('dialect', list(ConstraintDialect))
def test_thinking_on_gets_no_constraint(task, dialect):
    family = R25 if task is not Task.AFFORDANCE else R20
    assert completion_pattern(task, True, family) is None
    assert constraint_fields(task, True, family, (640, 480), dialect) == {}


def test_dialects():
    pattern = completion_pattern(Task.POINTING, False, R20, (640, 480))
    assert constraint_fields(Task.POINTING, False, R20, (640, 480)) == {'structured_outputs': {'regex': pattern}}
    assert constraint_fields(Task.POINTING, False, R20, (640, 480), ConstraintDialect.GUIDED_REGEX) == {
        'guided_regex': pattern}
    assert constraint_fields(Task.POINTING, False, R20, (640, 480), ConstraintDialect.NONE) == {}


@pytest.mark.parametrize('maximum', [0, 7, 9, 10, 47, 99, 100, 640, 728, 999, 1000, 1288, 2000, 9999, 10000])
def test_int_range_pattern_is_exactly_zero_to_maximum(maximum):
    pattern = re.compile(int_range_pattern(maximum))
    assert [n for n in range(12000) if pattern.fullmatch(str(n))] == list(range(maximum + 1))
    for text in ('', '-1', '01', '007', '1.5', ' 1', '1 '):
        assert not pattern.fullmatch(text), text


def test_sent_size_bounds_robobrain_2_0_coordinates_to_the_image():
    # The sent image is 644 x 476: x in 0..644, y in 0..476 (box edges may lie on the border).
    point = re.compile(_regex(Task.POINTING, False, R20, (644, 476)))
    assert point.fullmatch('[(644, 476), (0, 0), (321, 99)]</answer>')
    for outside in ('[(645, 10)]', '[(10, 477)]', '[(1000, 10)]', '[(10, 4760)]'):
        assert not point.fullmatch(outside + '</answer>'), outside
    box = re.compile(_regex(Task.GROUNDING, None, R20, (644, 476)))
    assert box.fullmatch('[0, 12, 644, 476]') and not box.fullmatch('[0, 12, 645, 476]')
    assert not box.fullmatch('[0, 477, 10, 10]')
    trajectory = re.compile(_regex(Task.TRAJECTORY, None, R20, (644, 476)))
    assert trajectory.fullmatch('[[10, 20], [644, 476]]')
    assert not trajectory.fullmatch('[[10, 20], [644, 477]]')
    # RoboBrain 2.5 answers 0..1000 whatever the image.
    relative = re.compile(_regex(Task.POINTING, False, R25, (644, 476)))
    assert relative.fullmatch('[(1000, 999)]</answer>') and not relative.fullmatch('[(1001, 5)]</answer>')
    assert _regex(Task.POINTING, False, R25) == _regex(Task.POINTING, False, R25, (644, 476))


def test_pattern_follows_the_prefill_actually_sent():
    # 2.0 7B/32B thinking off: the prefill opened <answer>, so the completion is ANSWER</answer>.
    off = re.compile(_regex(Task.GROUNDING, False, R20))
    assert off.fullmatch('[1, 2, 3, 4]</answer>')
    assert not off.fullmatch('[1, 2, 3, 4]')  # the closing tag is required
    assert not off.fullmatch('<answer>[1, 2, 3, 4]</answer>')  # the prefill already opened it
    # No prefill (2.0 3B, 2.5, or no switch): the bare answer, tags allowed as some checkpoints write them.
    for spec in (SPEC_2_0_3B, R25, ModelSpec(R25, ModelSize.B8, 'name')):
        for thinking in (None, False):
            bare = re.compile(_regex(Task.GROUNDING, thinking, spec))
            assert bare.fullmatch('[1, 2, 3, 4]') and bare.fullmatch('<answer>[1, 2, 3, 4]</answer>')
            assert not bare.fullmatch('<think></think><answer>[1, 2, 3, 4]</answer>')
    assert _regex(Task.GROUNDING, None, R20) == _regex(Task.GROUNDING, False, SPEC_2_0_3B)


def test_published_answers_are_accepted():
    vectors = DEMO_DIR / 'vectors.json'
    if not vectors.is_file():
        pytest.fail(f'published RoboBrain 2.0 test vectors missing: expected {vectors.resolve()}')
    for case in json.loads(vectors.read_text())['cases']:
        pattern = re.compile(_regex(Task(case['task']), False, R20, tuple(case['image_size_wh'])))
        assert pattern.fullmatch(case['answer'] + '</answer>'), case['name']


def test_robobrain_2_5_has_no_affordance_constraint():
    with pytest.raises(ValueError, match='affordance'):
        constraint_fields(Task.AFFORDANCE, False, R25)


def _regex_syntax_problems(pattern: str) -> list[str]:
    """Constructs xgrammar's regex converter rejects or we forbid (unbounded repetition)."""
    problems = []
    i = 0
    in_class = False
    previous = ''
    while i < len(pattern):
        ch = pattern[i]
        if ch == '\\':
            escaped = pattern[i + 1]
            if escaped.isdigit() and escaped != '0':
                problems.append(f'backreference \\{escaped} at {i}')
            if escaped in 'bBAZzGkpP':
                problems.append(f'unsupported escape \\{escaped} at {i}')
            previous = 'atom'
            i += 2
            continue
        if in_class:
            if ch == ']':
                in_class = False
                previous = 'atom'
            i += 1
            continue
        if ch == '[':
            in_class = True
            i += 1
            if pattern[i] == '^':
                i += 1
            if pattern[i] == ']':  # a literal ] first in a class
                i += 1
            continue
        if ch == '(' and pattern[i + 1] == '?':
            problems.append(f'group extension (?{pattern[i + 2]} (lookaround / non-capturing / flags) at {i}')
        if ch in '*+':
            problems.append(f'unbounded {ch} at {i}')
        if ch == '?' and previous == 'quantifier':
            problems.append(f'lazy quantifier at {i}')
        if ch in '^$':
            problems.append(f'anchor {ch} at {i}')
        if ch == '{':
            end = pattern.index('}', i)
            if not re.fullmatch(r'\d+(,\d+)?', pattern[i + 1:end]):
                problems.append(f'open repetition {pattern[i:end + 1]} at {i}')
            i = end + 1
            previous = 'quantifier'
            continue
        previous = 'quantifier' if ch in '*+?' else 'atom'
        i += 1
    if in_class:
        problems.append('unterminated class')
    return problems


def test_syntax_checker_catches_forbidden_constructs():
    assert _regex_syntax_problems(r'(?=a)b')
    assert _regex_syntax_problems(r'(a)\1')
    assert _regex_syntax_problems(r'a{1,3}?')
    assert _regex_syntax_problems(r'a+')
    assert _regex_syntax_problems(r'a{2,}')
    assert _regex_syntax_problems(r'^a$')
    assert not _regex_syntax_problems(r'[^<+*]{0,5}\[\(\d{1,4}\)(, x)?\]')


@pytest.mark.parametrize(('task', 'thinking', 'family', 'sent_size'), ALL_COMBINATIONS)
def test_constraints_use_only_xgrammar_safe_bounded_syntax(task, thinking, family, sent_size):
    pattern = _regex(task, thinking, family, sent_size)
    assert _regex_syntax_problems(pattern) == []
    if thinking is None:  # the bare form (optional tags) of 3B and 2.5 models too
        assert _regex(task, False, SPEC_2_0_3B if family is R20 else family, sent_size) == pattern
    re.compile(pattern)
    assert len(pattern) < 1000  # keeps server-side grammar compilation cheap


@pytest.mark.parametrize('task', [Task.POINTING, Task.TRAJECTORY, Task.AFFORDANCE, Task.GROUNDING])
def test_allow_empty_false_takes_nothing_found_out_of_the_constraint(task):
    from robobrain_ros.protocol.structured_outputs import answer_pattern
    assert re.fullmatch(answer_pattern(task, ModelFamily.ROBOBRAIN_2_0, (640, 480)), '[]')
    assert not re.fullmatch(answer_pattern(task, ModelFamily.ROBOBRAIN_2_0, (640, 480), allow_empty=False), '[]')
    one = '[(10, 20)]' if task in (Task.POINTING, Task.TRAJECTORY) else '[1, 2, 30, 40]'
    assert re.fullmatch(answer_pattern(task, ModelFamily.ROBOBRAIN_2_0, (640, 480), allow_empty=False), one)
