"""parse_completion: from a completion string to a typed Answer in original-image pixels."""

from __future__ import annotations

import re

from .answer import Answer
from .completion_split import split_completion
from .coordinates import CoordinateFrame, find_box, find_tuples, valid_size
from .plan_steps import parse_plan
from .prompts import assistant_prefill
from .tasks import ModelFamily, ModelSpec, Task, as_model_spec

_EXCERPT_CHARS = 80
_POINT_TASKS = (Task.POINTING, Task.TRAJECTORY)
_BOX_TASKS = (Task.AFFORDANCE, Task.GROUNDING)
# '[]' (any spacing, either bracket style) is how a constrained model says "nothing found".
_EMPTY_LIST_RE = re.compile(r'[\[(]\s*[\])]')


def _excerpt(text: str) -> str:
    flat = ' '.join(text.split())
    return repr(flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + '...')


def _fill_points(answer: Answer, frame: CoordinateFrame, model_family: ModelFamily) -> None:
    tuples = find_tuples(answer.answer)
    if not tuples:
        if _EMPTY_LIST_RE.search(answer.answer):
            answer.not_found = True
            return
        answer.error = f'no (x, y) points found in the answer {_excerpt(answer.answer)}'
        return
    answer.points = [frame.point(x, y) for x, y, _ in tuples]
    if answer.task is Task.TRAJECTORY and model_family is ModelFamily.ROBOBRAIN_2_5:
        answer.depths = [float('nan') if depth is None else depth for _, _, depth in tuples]


def _fill_box(answer: Answer, frame: CoordinateFrame) -> None:
    box = find_box(answer.answer)
    if box is None:
        if _EMPTY_LIST_RE.search(answer.answer):
            answer.not_found = True
            return
        answer.error = f'no [x1, y1, x2, y2] box found in the answer {_excerpt(answer.answer)}'
        return
    answer.box = frame.box(*box)


def _fill_steps(answer: Answer) -> None:
    plan = parse_plan(answer.answer)
    if plan is None:
        answer.error = 'the answer is empty: no plan steps'
        return
    answer.steps = plan.steps
    answer.reasoning = plan.reasoning


def parse_completion(
    task: Task,
    completion: str,
    thinking: bool | None,
    sent_size: tuple[int, int],
    original_size: tuple[int, int],
    spec: ModelSpec | ModelFamily,
) -> Answer:
    """Read a completion as the answer to task. Never raises: problems go to Answer.error.

    spec is the one given to build_request: with a model that gets no thinking prefill (2.0 3B, 2.5) the
    completion is read as a bare answer whatever thinking says. Coordinates are mapped to original-image pixels
    (2.0: pixels of sent_size; 2.5: 0..1000) and points outside the image are clipped onto its border with
    clipped=True, never dropped. An empty list answer gives not_found=True and no error.
    """
    try:
        task = Task(task)
    except ValueError:
        return Answer(task=Task.GENERAL, raw=str(completion), error=f'unknown task {task!r}')
    if not isinstance(completion, str):
        return Answer(task=task, raw=repr(completion),
                      error=f'the completion is not text ({type(completion).__name__})')
    try:
        spec = as_model_spec(spec)
    except ValueError:
        return Answer(task=task, raw=completion, error=f'unknown model family {spec!r}')
    model_family = spec.family
    answer = Answer(task=task, raw=completion)
    # Without a prefill the model was not told to think: its completion is an answer, tags or not.
    split = split_completion(completion, thinking if assistant_prefill(thinking, spec) is not None else None)
    answer.thinking, answer.answer = split.thinking, split.answer
    if split.error is not None:
        answer.error = split.error
        return answer

    if task is Task.GENERAL:
        if not answer.answer:
            answer.error = 'the answer is empty'
        return answer
    if task is Task.PLANNING:
        _fill_steps(answer)
        return answer

    if not (valid_size(original_size) and (model_family is ModelFamily.ROBOBRAIN_2_5 or valid_size(sent_size))):
        answer.error = f'cannot map coordinates with sent_size={sent_size!r}, original_size={original_size!r}'
        return answer
    frame = CoordinateFrame.for_family(model_family, sent_size, original_size)
    if task in _POINT_TASKS:
        _fill_points(answer, frame, model_family)
    elif task in _BOX_TASKS:
        _fill_box(answer, frame)
    return answer
