"""The prompt table: the one place where task prompts and the thinking switch are written down.

The 2.0 strings are RoboBrain 2.0's training format (official inference script) and the 2.5
strings are RoboBrain 2.5's (its official inference script); they are sent verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping

from .tasks import ModelFamily, ModelSize, ModelSpec, Task, as_model_spec

# Planning is not an official task: it is a general question whose prompt asks for ordered steps.
# A numbered list is asked for (not RoboOS's JSON) because it is the format a general chat model
# produces most reliably, it survives a truncated completion (every finished line is a step), and
# a short bounded regex can constrain it. The parser also accepts RoboOS-style JSON.
_PLANNING = (
    '{text}. Break this task down into the ordered steps a robot should carry out. '
    'Your answer should be formatted as a numbered list, i.e. 1. first step\n2. second step\n..., '
    'with one short imperative step per line and nothing else.'
)

PROMPT_TEMPLATES: Mapping[tuple[ModelFamily, Task], str] = {
    (ModelFamily.ROBOBRAIN_2_0, Task.GENERAL): '{text}',
    (ModelFamily.ROBOBRAIN_2_0, Task.POINTING): (
        '{text}. Your answer should be formatted as a list of tuples, i.e. [(x1, y1), (x2, y2), ...], '
        'where each tuple contains the x and y coordinates of a point satisfying the conditions above. '
        'The coordinates should indicate the normalized pixel locations of the points in the image.'
    ),
    (ModelFamily.ROBOBRAIN_2_0, Task.AFFORDANCE): (
        'You are a robot using the joint control. The task is "{text}". '
        'Please predict a possible affordance area of the end effector.'
    ),
    (ModelFamily.ROBOBRAIN_2_0, Task.TRAJECTORY): (
        'You are a robot using the joint control. The task is "{text}". '
        'Please predict up to 10 key trajectory points to complete the task. '
        'Your answer should be formatted as a list of tuples, i.e. [[x1, y1], [x2, y2], ...], '
        'where each tuple contains the x and y coordinates of a point.'
    ),
    (ModelFamily.ROBOBRAIN_2_0, Task.GROUNDING): (
        'Please provide the bounding box coordinate of the region this sentence describes: {text}.'
    ),
    (ModelFamily.ROBOBRAIN_2_0, Task.PLANNING): _PLANNING,
    (ModelFamily.ROBOBRAIN_2_5, Task.GENERAL): '{text}',
    (ModelFamily.ROBOBRAIN_2_5, Task.POINTING): (
        '{text}. Please provide its 2D coordinates. Your answer should be formatted as a tuple, '
        'i.e. [(x, y)], where the tuple contains the x and y coordinates of a point satisfying '
        'the conditions above.'
    ),
    (ModelFamily.ROBOBRAIN_2_5, Task.TRAJECTORY): (
        'Please predict 3D end-effector-centric waypoints to complete the task successfully. '
        'The task is "{text}". Your answer should be formatted as a list of tuples, i.e., '
        '[(x1, y1, d1), (x2, y2, d2), ...], where each tuple contains the x and y coordinates '
        'and the depth of the point.'
    ),
    (ModelFamily.ROBOBRAIN_2_5, Task.GROUNDING): (
        'Please provide the bounding box coordinate of the region this sentence describes: {text}.'
    ),
    (ModelFamily.ROBOBRAIN_2_5, Task.PLANNING): _PLANNING,
    # RoboBrain 2.5 has no affordance task: its absence here is what makes requests for it fail.
}

# Text placed after the assistant header to switch thinking, as RoboBrain 2.0's official script does for 7B and
# 32B. With thinking on the model continues with THINKING</think><answer>ANSWER</answer>; with thinking off with
# ANSWER</answer>. RoboBrain 2.0 3B and RoboBrain 2.5 get nothing appended (their official scripts append nothing,
# whatever the switch): the completion is the bare answer.
THINKING_ON_PREFILL = '<think>'
THINKING_OFF_PREFILL = '<think></think><answer>'


def supported_tasks(model_family: ModelFamily) -> frozenset[Task]:
    """Tasks that have a prompt for this model family."""
    return frozenset(task for family, task in PROMPT_TEMPLATES if family is model_family)


def render_prompt(task: Task, model_family: ModelFamily, instruction: str) -> str:
    """The text part of the user turn for this task, exactly in the model's training format.

    Raises ValueError for an empty instruction or a task the family does not know.
    """
    text = instruction.strip()
    if not text:
        raise ValueError('the instruction is empty')
    template = PROMPT_TEMPLATES.get((ModelFamily(model_family), Task(task)))
    if template is None:
        known = ', '.join(sorted(t.value for t in supported_tasks(ModelFamily(model_family))))
        raise ValueError(f'{model_family.value} has no {task.value} task; it knows: {known}')
    if '{text}.' in template:
        # The template adds its own full stop; "pick the cup." would otherwise end in "..".
        text = text.rstrip('.').rstrip() or text
    return template.replace('{text}', text)


def has_thinking_switch(spec: ModelSpec | ModelFamily) -> bool:
    """Whether a prefill switches the model's thinking: RoboBrain 2.0 but 3B (UNKNOWN size counts as 7B/32B)."""
    spec = as_model_spec(spec)
    return spec.family is ModelFamily.ROBOBRAIN_2_0 and spec.size is not ModelSize.B3


def assistant_prefill(thinking: bool | None, spec: ModelSpec | ModelFamily) -> str | None:
    """The assistant text that switches thinking on (True) or off (False) for this model; None appends nothing.

    thinking None appends nothing for any model; so do RoboBrain 2.0 3B and RoboBrain 2.5 for any switch.
    """
    if thinking is None or not has_thinking_switch(spec):
        return None
    return THINKING_ON_PREFILL if thinking else THINKING_OFF_PREFILL
