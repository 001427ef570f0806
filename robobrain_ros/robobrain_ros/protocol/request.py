"""Building the OpenAI chat-completions body for one RoboBrain question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .image_encoding import PreparedImage
from .prompts import assistant_prefill, render_prompt
from .resize import ImageBudget, model_input_size
from .structured_outputs import ConstraintDialect, constraint_fields
from .tasks import SINGLE_IMAGE_TASKS, ModelFamily, ModelSize, ModelSpec, Task, as_model_spec


@dataclass(frozen=True)
class BuiltRequest:
    """The request body plus what parse_completion needs to map the answer back."""

    body: dict
    task: Task
    thinking: bool | None
    model_family: ModelFamily
    sent_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]
    spec: ModelSpec
    constraint: ConstraintDialect       # the constraint actually in the body (NONE with thinking on)
    prefill: str | None                 # the assistant text sent after the header, if any


def _check_budget(image: PreparedImage, budget: ImageBudget, index: int) -> None:
    # If the image was prepared for another budget the server resizes it again and every
    # coordinate of the answer would refer to a size we do not know.
    expected = model_input_size(image.sent_size, budget)
    if expected != image.sent_size:
        raise ValueError(
            f'image {index} was prepared at {image.sent_size[0]}x{image.sent_size[1]}, which the server '
            f'would resize to {expected[0]}x{expected[1]} under this budget; prepare it with the same ImageBudget'
        )


def build_request(
    task: Task,
    instruction: str,
    images: Sequence[PreparedImage],
    thinking: bool | None,
    spec: ModelSpec | ModelFamily,
    *,
    model: str,
    budget: ImageBudget = ImageBudget(),
    constraint: ConstraintDialect = ConstraintDialect.STRUCTURED_OUTPUTS,
    max_tokens: int = 768,
    temperature: float = 0.7,
    stream: bool = True,
    processor_kwargs: bool = False,
    extra: Mapping[str, Any] | None = None,
    allow_empty: bool = True,
) -> BuiltRequest:
    """The chat-completions body for one question (user turn, thinking prefill, constraints).

    spec decides the prompt and the prefill (a bare ModelFamily stands for its UNKNOWN size). The answer
    constraint goes out in the given dialect, except with thinking on: thinking text is free prose and the
    constraint's bound on it would be the only thing shaping it, so nothing is sent and BuiltRequest.constraint
    says NONE. processor_kwargs=True also sends the budget as mm_processor_kwargs (servers started with
    --trust-request-mm-kwargs only). allow_empty=False takes "nothing found" (`[]`) out of the constraint.
    Raises ValueError for an empty instruction, a task the family lacks, or a wrong image count.
    """
    task = Task(task)
    spec = as_model_spec(spec)
    model_family = spec.family
    if not isinstance(instruction, str):
        raise ValueError(f'the instruction must be a string, got {type(instruction).__name__}')
    prompt = render_prompt(task, model_family, instruction)
    if task in SINGLE_IMAGE_TASKS and len(images) != 1:
        raise ValueError(f'the {task.value} task takes exactly one image, got {len(images)}')
    if max_tokens < 1:
        raise ValueError(f'max_tokens must be at least 1, got {max_tokens}')
    if temperature < 0:
        raise ValueError(f'temperature must not be negative, got {temperature}')
    for index, image in enumerate(images):
        _check_budget(image, budget, index)

    content: list[dict[str, Any]] = [{'type': 'image_url', 'image_url': {'url': image.data_url}} for image in images]
    content.append({'type': 'text', 'text': prompt})
    messages: list[dict[str, Any]] = [{'role': 'user', 'content': content}]
    body: dict[str, Any] = {
        'model': model,
        'messages': messages,
        'max_tokens': max_tokens,
        'temperature': temperature,
        'stream': stream,
    }
    if stream:
        body['stream_options'] = {'include_usage': True}
    prefill = assistant_prefill(thinking, spec)
    if prefill is not None:
        messages.append({'role': 'assistant', 'content': prefill})
        body['continue_final_message'] = True
        body['add_generation_prompt'] = False
    if processor_kwargs:
        # Off by default: vLLM refuses per-request processor settings unless started with
        # --trust-request-mm-kwargs. Without them, the image is already sized to the budget (a multiple
        # of 28 per side inside the server's own limits), so the server's processor leaves it unchanged.
        body['mm_processor_kwargs'] = {'max_pixels': budget.max_pixels, 'min_pixels': budget.min_pixels}
    # One image (every task with coordinates takes exactly one): answers are bounded to its sent size.
    sent_size = images[0].sent_size if len(images) == 1 else None
    fields = constraint_fields(task, thinking, spec, sent_size, constraint, allow_empty)
    body.update(fields)
    if extra:
        body.update(extra)
    return BuiltRequest(
        body=body,
        task=task,
        thinking=thinking,
        model_family=model_family,
        sent_sizes=[image.sent_size for image in images],
        original_sizes=[image.original_size for image in images],
        spec=spec,
        constraint=ConstraintDialect(constraint) if fields else ConstraintDialect.NONE,
        prefill=prefill,
    )


# Other ways vLLM (old and new) takes an answer constraint. build_request never writes them, but any of them in a
# body would fight the node's constraint, or replace it where the node sends none.
OTHER_CONSTRAINT_FIELDS = frozenset({
    'guided_json', 'guided_choice', 'guided_grammar', 'guided_decoding_backend', 'guided_whitespace_pattern',
    'response_format', 'structural_tag'})


def _keys_written(dialect: ConstraintDialect) -> frozenset[str]:
    # Every option that adds a key is on: a stream, a prefill (2.0 7B, thinking off), the processor kwargs
    # and a constraint in this dialect.
    spec = ModelSpec(ModelFamily.ROBOBRAIN_2_0, ModelSize.B7, 'default')
    built = build_request(Task.GENERAL, 'x', [], False, spec, model='m', constraint=dialect, stream=True,
                          processor_kwargs=True)
    return frozenset(built.body)


# The top-level body keys the node owns: what build_request writes in any dialect, and the other constraints.
# A user's extra fields (model.extra_body) must not replace them.
NODE_OWNED_KEYS: frozenset[str] = frozenset().union(*map(_keys_written, ConstraintDialect)) | OTHER_CONSTRAINT_FIELDS
# The answer-constraint keys among them: the node's only while it constrains answers (model.structured_outputs).
CONSTRAINT_KEYS: frozenset[str] = (NODE_OWNED_KEYS - _keys_written(ConstraintDialect.NONE)) | OTHER_CONSTRAINT_FIELDS


def owned_keys(constrains_answers: bool) -> frozenset[str]:
    """The body keys a user's extra fields may not set: all of NODE_OWNED_KEYS while the node constrains answers;
    without its constraint, the answer constraint is the user's to choose (a benchmark forcing a fixed length)."""
    return NODE_OWNED_KEYS if constrains_answers else NODE_OWNED_KEYS - CONSTRAINT_KEYS
