"""Per-task constraints that let the server sample only the model's native answer format.

A constraint is a regex over the completion, i.e. over what follows the assistant prefill actually sent
(prompts.assistant_prefill):
- prefill '<think></think><answer>' (RoboBrain 2.0 7B/32B, thinking off): ANSWER</answer>
- no prefill (RoboBrain 2.0 3B, RoboBrain 2.5, or no thinking switch asked): ANSWER, optionally wrapped in
  <answer>...</answer> as some checkpoints write it (the parser strips the tags either way)
- thinking on: no constraint at all. The thinking text is free prose; a regex would be the only thing shaping it
  (and bounding it), so nothing is sent (vLLM can start a constraint after </think> only with a reasoning parser
  configured on the server, which the node cannot know).

Pointing, trajectory, affordance and grounding also accept the empty list `[]`: the model's way to say that
nothing in the image matches (parsed to Answer.not_found).

How the regex goes to the server depends on the server's API generation (ConstraintDialect): vLLM from about
0.10.2 takes `structured_outputs: {"regex": ...}`, older vLLM `guided_regex` (removed in 0.12); both silently
ignore the other one's field, which is why the node negotiates and checks (client.server_info).

Every repetition is bounded (list lengths, digits per number, characters per text) so that even a
random-weight model reaches the end of the pattern, and thus stops, within a few hundred tokens.
The regexes use only syntax xgrammar (vLLM's default backend) converts: literals, escaped
punctuation, character classes, groups, alternation and bounded {m,n} / ? quantifiers; no
lookarounds, backreferences, anchors or lazy quantifiers.
"""

from __future__ import annotations

import enum

from .prompts import THINKING_OFF_PREFILL, assistant_prefill
from .tasks import ModelFamily, ModelSpec, Task, as_model_spec


class ConstraintDialect(str, enum.Enum):
    """How an answer constraint is sent: the field the server's vLLM generation understands, or not at all."""

    STRUCTURED_OUTPUTS = 'structured_outputs'   # vLLM >= 0.10.2: {"structured_outputs": {"regex": ...}}
    GUIDED_REGEX = 'guided_regex'               # vLLM < 0.12 (the only choice before 0.10.2): {"guided_regex": ...}
    NONE = 'none'                               # no constraint (not vLLM, or a server that ignores both)


MAX_POINTS = 10
MAX_TRAJECTORY_POINTS = 10
MAX_PLAN_STEPS = 10
MAX_PLAN_STEP_CHARS = 120
MAX_GENERAL_ANSWER_CHARS = 2000

# 2.0 answers in pixels of the sent image (at most a few thousand; bounded by its size when known);
# 2.5 in 0..1000.
_PIXEL = r'\d{1,4}'
_DEPTH = r'\d{1,3}(\.\d{1,4})?'
RELATIVE_MAX = 1000


def int_range_pattern(maximum: int) -> str:
    """Regex of the whole numbers 0..maximum written without leading zeros (e.g. 0..1288 for a 1288 px axis).

    Every number with fewer digits than `maximum`, then those of its length below it (position by
    position: same prefix, a smaller digit, any digits after), then `maximum` itself.
    """
    if maximum < 0:
        raise ValueError(f'maximum must not be negative, got {maximum}')
    top = str(maximum)
    if len(top) == 1:
        return f'[0-{top}]'
    shorter = [r'\d'] + [r'[1-9]\d' + (f'{{{n - 1}}}' if n > 2 else '') for n in range(2, len(top))]
    below = []
    for i, digit in enumerate(top):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if high < low:
            continue
        rest = len(top) - i - 1
        digits = str(low) if low == high else f'[{low}-{high}]'
        below.append(top[:i] + digits + (r'\d' + (f'{{{rest}}}' if rest > 1 else '') if rest else ''))
    return '(' + '|'.join(shorter + below + [top]) + ')'


def _repeat_list(item: str, max_items: int, allow_empty: bool = True) -> str:
    """A bracketed, ', '-separated list of 0..max_items items (the empty list says: nothing found), or of
    1..max_items items when allow_empty is false."""
    items = rf'{item}(, {item}){{0,{max_items - 1}}}'
    return rf'\[({items})?\]' if allow_empty else rf'\[{items}\]'


def _tuple(*fields: str) -> str:
    return r'\(' + ', '.join(fields) + r'\)'


def _bracket_pair(*fields: str) -> str:
    return r'\[' + ', '.join(fields) + r'\]'


def _numbered_list(max_steps: int, max_chars: int) -> str:
    """1. step\\n2. step ... with consecutive numbers, built as nested optional groups."""
    line = rf'[^\n<]{{1,{max_chars}}}'
    pattern = ''
    for number in range(max_steps, 1, -1):
        pattern = rf'(\n{number}\. {line}{pattern})?'
    return rf'1\. {line}{pattern}'


def _coordinate_patterns(model_family: ModelFamily, sent_size: tuple[int, int] | None) -> tuple[str, str]:
    """Patterns of x and y: 0..1000 for 2.5; for 2.0 the sent image's pixels when its size is known."""
    if model_family is ModelFamily.ROBOBRAIN_2_5:
        relative = int_range_pattern(RELATIVE_MAX)
        return relative, relative
    if sent_size is None:
        return _PIXEL, _PIXEL
    width, height = sent_size
    return int_range_pattern(width), int_range_pattern(height)


def answer_pattern(task: Task, model_family: ModelFamily, sent_size: tuple[int, int] | None = None,
                   allow_empty: bool = True) -> str:
    """Regex of the bare native answer (no tags) for this task and family.

    sent_size (width, height) of the image the model sees bounds RoboBrain 2.0's pixel coordinates to it, so
    an answer cannot point outside the image; without it any 1-4 digit number is allowed. allow_empty false
    takes "nothing found" (`[]`) away: the model must give at least one point or a box.
    """
    task = Task(task)
    family = ModelFamily(model_family)
    if task is Task.GENERAL:
        return rf'[^<]{{1,{MAX_GENERAL_ANSWER_CHARS}}}'
    if task is Task.PLANNING:
        return _numbered_list(MAX_PLAN_STEPS, MAX_PLAN_STEP_CHARS)
    x, y = _coordinate_patterns(family, sent_size)
    if task in (Task.AFFORDANCE, Task.GROUNDING):
        if family is ModelFamily.ROBOBRAIN_2_5 and task is Task.AFFORDANCE:
            raise ValueError('robobrain2.5 has no affordance task')
        box = _bracket_pair(x, y, x, y)
        return rf'(\[\]|{box})' if allow_empty else box
    if task is Task.POINTING:
        return _repeat_list(_tuple(x, y), MAX_POINTS, allow_empty)
    if task is Task.TRAJECTORY:
        if family is ModelFamily.ROBOBRAIN_2_5:
            return _repeat_list(_tuple(x, y, _DEPTH), MAX_TRAJECTORY_POINTS, allow_empty)
        # The 2.0 prompt asks for [[x, y], ...] but the model also answers [(x, y), ...].
        tuples = _repeat_list(_tuple(x, y), MAX_TRAJECTORY_POINTS, allow_empty)
        pairs = _repeat_list(_bracket_pair(x, y), MAX_TRAJECTORY_POINTS, allow_empty)
        return f'({tuples}|{pairs})'
    raise ValueError(f'no answer pattern for task {task!r}')


def completion_pattern(task: Task, thinking: bool | None, spec: ModelSpec | ModelFamily,
                       sent_size: tuple[int, int] | None = None, allow_empty: bool = True) -> str | None:
    """Regex of the whole completion after the prefill this model gets; None with thinking on (no constraint)."""
    if thinking:
        return None
    spec = as_model_spec(spec)
    answer = answer_pattern(task, spec.family, sent_size, allow_empty)
    if assistant_prefill(thinking, spec) == THINKING_OFF_PREFILL:
        return f'{answer}</answer>'
    return f'(<answer>)?{answer}(</answer>)?'


def constraint_fields(task: Task, thinking: bool | None, spec: ModelSpec | ModelFamily,
                      sent_size: tuple[int, int] | None = None,
                      dialect: ConstraintDialect = ConstraintDialect.STRUCTURED_OUTPUTS,
                      allow_empty: bool = True) -> dict:
    """Request-body fields that constrain the answer in the given dialect; {} when none applies.

    None applies with dialect NONE or with thinking on. sent_size: (width, height) of the image the model sees,
    which bounds RoboBrain 2.0's pixel answers.
    """
    if ConstraintDialect(dialect) is ConstraintDialect.NONE:
        return {}
    pattern = completion_pattern(task, thinking, spec, sent_size, allow_empty)
    return {} if pattern is None else regex_fields(pattern, dialect)


def regex_fields(pattern: str, dialect: ConstraintDialect) -> dict:
    """The request-body fields that send a regex constraint in this dialect ({} for NONE)."""
    dialect = ConstraintDialect(dialect)
    if dialect is ConstraintDialect.GUIDED_REGEX:
        return {'guided_regex': pattern}
    if dialect is ConstraintDialect.STRUCTURED_OUTPUTS:
        return {'structured_outputs': {'regex': pattern}}
    return {}
