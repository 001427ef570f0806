"""The protocol layer against the real vLLM server: every task, thinking on and off.

The request built by build_request must be accepted as is (prefill + continue_final_message, structured
outputs) and the constrained completion must parse. The tiny model's weights are random, so what is checked
is the format, not the content; with thinking on nothing constrains the random text, so only acceptance and
a parse that does not raise are checked.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.model_client import ChatClient, ClientConfig
from robobrain_ros.protocol import (
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    ModelSize,
    ModelSpec,
    Task,
    build_request,
    parse_completion,
    prepare_image,
)

R20 = ModelFamily.ROBOBRAIN_2_0
SPEC_2_0_3B = ModelSpec(R20, ModelSize.B3, 'parameter')   # no prefill: the bare-answer constraint


@pytest.fixture(scope='module')
def frame():
    return prepare_image(test_image(640, 480, seed=11), ImageBudget())


async def complete(base_url: str, body: dict) -> tuple[str, str | None]:
    client = ChatClient(ClientConfig(base_urls=(base_url,)))
    try:
        text, finish = '', None
        async for chunk in client.stream_chat(body):
            text += chunk.text
            finish = chunk.finish_reason or finish
        return text, finish
    finally:
        await client.close()


@pytest.mark.parametrize('spec', [R20, SPEC_2_0_3B], ids=['2.0-prefill', '2.0-3b-bare'])
@pytest.mark.parametrize('task', list(Task), ids=lambda t: t.value)
def test_every_task_round_trips_through_vllm(vllm_server, frame, task, spec):
    built = build_request(task, 'the red cup on the table', [frame], False, spec, model=vllm_server.model,
                          max_tokens=600, temperature=0.0)
    assert built.constraint is ConstraintDialect.STRUCTURED_OUTPUTS and built.body['structured_outputs']
    text, finish = asyncio.run(complete(vllm_server.base_url, built.body))
    assert finish == 'stop', f'generation did not finish inside the constraint ({finish}): {text[-200:]!r}'
    answer = parse_completion(task, text, False, built.sent_sizes[0], built.original_sizes[0], spec)
    assert answer.error is None, (answer.error, text)
    if built.prefill is not None:
        assert text.endswith('</answer>') and '<think>' not in text
    if task in (Task.POINTING, Task.TRAJECTORY):
        assert answer.not_found or (answer.points and all(0 <= p.x <= 640 and 0 <= p.y <= 480
                                                          for p in answer.points))
    elif task in (Task.AFFORDANCE, Task.GROUNDING):
        assert answer.not_found or (answer.box is not None and answer.box.x_min <= answer.box.x_max)
    elif task is Task.PLANNING:
        assert answer.steps
    else:
        assert answer.answer


@pytest.mark.parametrize('task', [Task.POINTING, Task.GENERAL], ids=lambda t: t.value)
def test_thinking_on_is_sent_without_a_constraint_and_accepted(vllm_server, frame, task):
    built = build_request(task, 'the red cup', [frame], True, R20, model=vllm_server.model, max_tokens=32,
                          temperature=0.0)
    assert built.constraint is ConstraintDialect.NONE and 'structured_outputs' not in built.body
    text, finish = asyncio.run(complete(vllm_server.base_url, built.body))
    assert finish in ('stop', 'length')
    answer = parse_completion(task, text, True, built.sent_sizes[0], built.original_sizes[0], R20)
    assert answer.raw == text


def test_prompt_tokens_show_the_server_kept_the_image_size(vllm_server, frame):
    """The server's processor must not resize what the client sized to its budget (see _resize_warning)."""
    import json
    import urllib.request
    body = build_request(Task.POINTING, 'x', [frame], False, R20, model=vllm_server.model, stream=False,
                         max_tokens=16, temperature=0.0).body
    request = urllib.request.Request(vllm_server.base_url + '/chat/completions', data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=60) as response:
        usage = json.loads(response.read())['usage']
    width, height = frame.sent_size
    assert usage['prompt_tokens'] > (width // 28) * (height // 28)
    assert np.isclose(usage['prompt_tokens'], (width // 28) * (height // 28), atol=200)
