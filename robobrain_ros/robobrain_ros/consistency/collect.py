"""Asking a server: each sample answered greedily, and a given answer scored token by token (teacher forcing).

Teacher forcing sends the question again with the answer appended to the assistant turn
(`continue_final_message: true`, `add_generation_prompt: false`), `max_tokens: 1` and `prompt_logprobs: k`: the
server returns, for every prompt position, the log-probability of the token there and its own top-k. Both
servers score the REFERENCE's answer, so position i means the same thing on both. The answer's positions are the
last (teacher-forced prompt tokens - generation prompt tokens) of the prompt. vLLM 0.9 and later take these
fields on /v1/chat/completions.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from robobrain_ros.model_client import ChatClient, ServerError, choose_constraint, fetch_server_info
from robobrain_ros.protocol import (
    BuiltRequest,
    ConstraintDialect,
    ImageBudget,
    ModelSpec,
    build_request,
    prepare_image,
    resolve_model,
)

from .metrics import PositionLogprobs
from .samples import Sample


@dataclass(frozen=True)
class ServerTarget:
    """Who answers: an OpenAI base URL, the served model's name, the model spec and the constraint field."""

    base_url: str
    model: str
    spec: ModelSpec
    constraint: ConstraintDialect
    version: str | None


@dataclass(frozen=True)
class GenerationSettings:
    """What every request shares; the reference file records it so a later candidate is asked the same way."""

    thinking: bool = False
    max_tokens: int = 512
    top_k: int = 5                      # log-probabilities per position
    family: str = 'auto'
    size: str = 'auto'


@dataclass
class SampleAnswer:
    """A server's greedy answer to one sample and the numbers it gave the reference's answer tokens."""

    sample_id: str
    completion: str
    prompt_tokens: int                  # of the generation request
    request_fingerprint: str            # sha256 of the generation request's messages
    sent_size: tuple[int, int]
    original_size: tuple[int, int]
    forced: list[PositionLogprobs]      # the reference's answer tokens as this server scored them


async def discover_target(client: ChatClient, base_url: str, model: str | None,
                          settings: GenerationSettings) -> ServerTarget:
    """The model to ask (the server's first one unless given) and how to constrain it. Raises ChatClientError."""
    info = await fetch_server_info(client, base_url)
    if model is None:
        if not info.models:
            raise ServerError(f'{base_url} serves no model')
        model = info.models[0].id
    spec = resolve_model(settings.family, settings.size, model)
    return ServerTarget(base_url, model, spec, choose_constraint(info), info.version)


def _generation_request(sample: Sample, target: ServerTarget, settings: GenerationSettings) -> BuiltRequest:
    image = prepare_image(sample.load_image(), ImageBudget())
    return build_request(sample.task, sample.instruction, [image], settings.thinking, target.spec,
                         model=target.model, constraint=target.constraint, max_tokens=settings.max_tokens,
                         temperature=0.0, stream=False)


def fingerprint(body: dict[str, Any]) -> str:
    """What identifies a question whatever the server: its messages (image, prompt, prefill), not the model name
    or the constraint field, which differ between servers asked the same."""
    return hashlib.sha256(json.dumps(body['messages'], sort_keys=True).encode()).hexdigest()


def _teacher_forcing_body(built: BuiltRequest, answer: str, top_k: int) -> dict[str, Any]:
    body = copy.deepcopy(built.body)
    # The constraint is left out: the numbers compared are the model's own, not a grammar's.
    for key in ('structured_outputs', 'guided_regex', 'guided_json', 'guided_choice', 'response_format'):
        body.pop(key, None)
    messages = body['messages']
    if messages[-1]['role'] == 'assistant':
        messages[-1] = {'role': 'assistant', 'content': messages[-1]['content'] + answer}
    else:
        messages.append({'role': 'assistant', 'content': answer})
    body.update(max_tokens=1, temperature=0.0, stream=False, prompt_logprobs=top_k,
                continue_final_message=True, add_generation_prompt=False)
    body.pop('stream_options', None)
    return body


def _completion_text(response: Any, url: str) -> tuple[str, int]:
    try:
        return str(response['choices'][0]['message']['content'] or ''), int(response['usage']['prompt_tokens'])
    except (KeyError, IndexError, TypeError, ValueError):
        raise ServerError(f'{url} answered a chat completion without text or usage: {str(response)[:300]}') from None


def _positions(response: Any, answer_tokens: int, top_k: int, url: str) -> list[PositionLogprobs]:
    """The last answer_tokens prompt positions of a prompt_logprobs answer.

    vLLM lists, per position, {token_id: {logprob, rank, decoded_token}} with the prompt's own token first and
    then the top-k (the prompt token appears once when it is also in the top-k).
    """
    entries = response.get('prompt_logprobs') if isinstance(response, dict) else None
    if not isinstance(entries, list):
        raise ServerError(f'{url} gave no prompt_logprobs (a vLLM server is needed for teacher forcing)')
    if answer_tokens > len(entries) - 1:
        raise ServerError(f'{url}: {answer_tokens} answer tokens in a prompt of {len(entries)}')
    positions = []
    for entry in entries[len(entries) - answer_tokens:]:
        items = [(int(token), float(value['logprob']), int(value.get('rank') or 0)) for token, value in entry.items()]
        token, token_logprob, _ = items[0]
        # The top-k are the entries ranked 1..k; the prompt token is one of them only when its rank says so.
        top = {tid: logprob for tid, logprob, rank in items if 1 <= rank <= top_k}
        positions.append(PositionLogprobs(token, token_logprob, top))
    return positions


async def answer_sample(client: ChatClient, target: ServerTarget, sample: Sample, settings: GenerationSettings,
                        reference: SampleAnswer | None = None) -> SampleAnswer:
    """The server's greedy answer to the sample, and its log-probabilities at each token of the reference's
    answer (teacher forcing); without a reference, of its own answer (the reference's view of itself)."""
    built = _generation_request(sample, target, settings)
    url = target.base_url
    completion, prompt_tokens = _completion_text(await client.post_json(url, '/chat/completions', built.body), url)
    answer = SampleAnswer(sample.id, completion, prompt_tokens, fingerprint(built.body),
                          built.sent_sizes[0], built.original_sizes[0], [])
    forced = reference if reference is not None else answer
    if reference is not None and reference.request_fingerprint != answer.request_fingerprint:
        raise ValueError(f'sample {sample.id} is not the question the reference answered (another image, '
                         'instruction or settings): compare with the same sample set')
    body = _teacher_forcing_body(built, forced.completion, settings.top_k)
    response = await client.post_json(url, '/chat/completions', body)
    try:
        forced_prompt_tokens = int(response['usage']['prompt_tokens'])
    except (KeyError, TypeError, ValueError):
        raise ServerError(f'{url} answered teacher forcing without usage: {str(response)[:300]}') from None
    answer.forced = _positions(response, max(forced_prompt_tokens - forced.prompt_tokens, 0), settings.top_k, url)
    return answer
