"""Per-task constraints that let the server sample only the model's native answer format.

Each constraint is vLLM's `structured_outputs` request field ({"regex": ...}). It applies to the
completion, i.e. to what follows the assistant prefill:
- thinking None (3B models): ANSWER
- thinking False (prefill '<think></think><answer>'): ANSWER</answer>
- thinking True (prefill '<think>'): THINKING</think><answer>ANSWER</answer>

Every repetition is bounded (list lengths, digits per number, characters per text) so that even a
random-weight model reaches the end of the pattern, and thus stops, within a few hundred tokens.
The regexes use only syntax xgrammar (vLLM's default backend) converts: literals, escaped
punctuation, character classes, groups, alternation and bounded {m,n} / ? quantifiers; no
lookarounds, backreferences, anchors or lazy quantifiers.
"""

from __future__ import annotations

from .tasks import ModelFamily, Task

MAX_POINTS = 10
MAX_TRAJECTORY_POINTS = 10
MAX_PLAN_STEPS = 10
MAX_PLAN_STEP_CHARS = 120
MAX_GENERAL_ANSWER_CHARS = 2000
# About 768 tokens of English: the official max_new_tokens. Thinking text may not contain '<' so
# that the only way out of it is the literal '</think>'.
MAX_THINKING_CHARS = 3000

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


def _repeat_list(item: str, max_items: int) -> str:
    """A bracketed, ', '-separated list of 1..max_items items."""
    return rf'\[{item}(, {item}){{0,{max_items - 1}}}\]'


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


def answer_pattern(task: Task, model_family: ModelFamily, sent_size: tuple[int, int] | None = None) -> str:
    """Regex of the bare native answer (no tags) for this task and family.

    sent_size (width, height) of the image the model sees bounds RoboBrain 2.0's pixel coordinates to it, so
    an answer cannot point outside the image; without it any 1-4 digit number is allowed.
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
        return _bracket_pair(x, y, x, y)
    if task is Task.POINTING:
        return _repeat_list(_tuple(x, y), MAX_POINTS)
    if task is Task.TRAJECTORY:
        if family is ModelFamily.ROBOBRAIN_2_5:
            return _repeat_list(_tuple(x, y, _DEPTH), MAX_TRAJECTORY_POINTS)
        # The 2.0 prompt asks for [[x, y], ...] but the model also answers [(x, y), ...].
        tuples = _repeat_list(_tuple(x, y), MAX_TRAJECTORY_POINTS)
        pairs = _repeat_list(_bracket_pair(x, y), MAX_TRAJECTORY_POINTS)
        return f'({tuples}|{pairs})'
    raise ValueError(f'no answer pattern for task {task!r}')


def completion_pattern(task: Task, thinking: bool | None, model_family: ModelFamily,
                       sent_size: tuple[int, int] | None = None) -> str:
    """Regex of the whole completion: the answer wrapped as the thinking switch dictates."""
    answer = answer_pattern(task, model_family, sent_size)
    if thinking is None:
        return answer
    if thinking:
        return rf'[^<]{{0,{MAX_THINKING_CHARS}}}</think><answer>{answer}</answer>'
    return f'{answer}</answer>'


def structured_output_constraint(task: Task, thinking: bool | None, model_family: ModelFamily,
                                 sent_size: tuple[int, int] | None = None) -> dict | None:
    """vLLM `structured_outputs` value accepting only the native answer format, or None if none applies.

    sent_size: (width, height) of the image the model sees, which bounds RoboBrain 2.0's pixel answers.
    """
    return {'regex': completion_pattern(task, thinking, model_family, sent_size)}
