"""build_request, the prompt table and model-family resolution."""

import re
from pathlib import Path

import numpy as np
import pytest

from robobrain_ros.protocol import (
    PROMPT_TEMPLATES,
    ImageBudget,
    ModelFamily,
    Task,
    build_request,
    prepare_image,
    render_prompt,
    resolve_model_family,
    structured_output_constraint,
)

ROBOBRAIN_MD = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'ROBOBRAIN.md'
R20, R25 = ModelFamily.ROBOBRAIN_2_0, ModelFamily.ROBOBRAIN_2_5


@pytest.fixture(scope='module')
def frame():
    rgb = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return prepare_image(rgb, ImageBudget())


def _documented_prompts() -> dict[str, str]:
    if not ROBOBRAIN_MD.is_file():
        pytest.fail(f'the model contract is missing: expected {ROBOBRAIN_MD.resolve()} (shared/ROBOBRAIN.md next to the repo)')
    text = ROBOBRAIN_MD.read_text()
    section = text[text.index('## Tasks and their prompts'):]
    section = section[:section.index('\n## ', 3)]
    prompts = {}
    for match in re.finditer(r'^- (general|pointing|affordance|trajectory|grounding): `([^`]*)`', section, re.M):
        prompts[match.group(1)] = match.group(2)
    assert len(prompts) == 5, prompts
    return prompts


@pytest.mark.parametrize('task', ['general', 'pointing', 'affordance', 'trajectory', 'grounding'])
def test_robobrain_2_0_prompts_are_exactly_the_documented_ones(task):
    documented = _documented_prompts()[task]
    assert PROMPT_TEMPLATES[(R20, Task(task))] == documented
    assert render_prompt(Task(task), R20, 'pick the apple') == documented.replace('{text}', 'pick the apple')


def test_robobrain_2_5_prompts():
    assert render_prompt(Task.POINTING, R25, 'the red mug') == (
        'the red mug. Please provide its 2D coordinates. Your answer should be formatted as a tuple, '
        'i.e. [(x, y)], where the tuple contains the x and y coordinates of a point satisfying the conditions above.'
    )
    assert render_prompt(Task.TRAJECTORY, R25, 'reach for the banana').startswith(
        'Please predict 3D end-effector-centric waypoints to complete the task successfully. The task is "reach for the banana".'
    )
    assert (R25, Task.AFFORDANCE) not in PROMPT_TEMPLATES


def test_instruction_full_stop_is_not_doubled():
    assert render_prompt(Task.GROUNDING, R20, ' the red cup. ').endswith('describes: the red cup.')
    assert render_prompt(Task.POINTING, R20, 'the mug.').startswith('the mug. Your answer')
    assert render_prompt(Task.GENERAL, R20, 'What is this?') == 'What is this?'


def test_planning_prompt_asks_for_a_numbered_list():
    prompt = render_prompt(Task.PLANNING, R20, 'tidy the table')
    assert prompt.startswith('tidy the table. ')
    assert 'numbered list' in prompt


def test_body_with_thinking_off(frame):
    built = build_request(Task.POINTING, 'the mug', [frame], False, R20, model='rb')
    body = built.body
    assert body['model'] == 'rb'
    user, assistant = body['messages']
    assert user['role'] == 'user'
    assert [part['type'] for part in user['content']] == ['image_url', 'text']
    assert user['content'][0]['image_url']['url'] == frame.data_url
    assert user['content'][1]['text'] == render_prompt(Task.POINTING, R20, 'the mug')
    assert assistant == {'role': 'assistant', 'content': '<think></think><answer>'}
    assert body['continue_final_message'] is True and body['add_generation_prompt'] is False
    assert body['max_tokens'] == 768 and body['temperature'] == 0.7
    assert body['stream'] is True and body['stream_options'] == {'include_usage': True}
    assert 'mm_processor_kwargs' not in body   # vLLM rejects them unless --trust-request-mm-kwargs
    # RoboBrain 2.0 answers in pixels of the sent image: the constraint is bounded to its 644 x 476.
    assert body['structured_outputs'] == structured_output_constraint(Task.POINTING, False, R20, (644, 476))
    assert built.sent_sizes == [(644, 476)] and built.original_sizes == [(640, 480)]
    assert built.task is Task.POINTING and built.thinking is False and built.model_family is R20


def test_body_with_thinking_on_has_no_constraint_by_default(frame):
    body = build_request(Task.TRAJECTORY, 'reach', [frame], True, R20, model='rb').body
    assert body['messages'][-1] == {'role': 'assistant', 'content': '<think>'}
    assert 'structured_outputs' not in body
    forced = build_request(Task.TRAJECTORY, 'reach', [frame], True, R20, model='rb', structured=True).body
    assert forced['structured_outputs']['regex'].endswith('</answer>')
    assert forced['structured_outputs']['regex'].startswith('[^<]')


def test_body_without_thinking_switch(frame):
    body = build_request(Task.GROUNDING, 'the cup', [frame], None, R20, model='rb', stream=False).body
    assert [m['role'] for m in body['messages']] == ['user']
    assert 'continue_final_message' not in body and 'add_generation_prompt' not in body
    assert 'stream_options' not in body and body['stream'] is False
    assert body['structured_outputs'] == structured_output_constraint(Task.GROUNDING, None, R20, (644, 476))


def test_structured_off_and_extra_merged_last(frame):
    body = build_request(
        Task.POINTING, 'x', [frame], False, R20, model='rb', structured=False,
        max_tokens=64, temperature=0.0, extra={'min_tokens': 3, 'temperature': 0.1},
    ).body
    assert 'structured_outputs' not in body
    assert body['min_tokens'] == 3 and body['temperature'] == 0.1 and body['max_tokens'] == 64


def test_budget_goes_to_the_server_when_asked(frame):
    budget = ImageBudget(max_pixels=401408)
    small = prepare_image(np.zeros((720, 1280, 3), np.uint8), budget)
    body = build_request(Task.POINTING, 'x', [small], False, R20, model='rb', budget=budget,
                         processor_kwargs=True).body
    assert body['mm_processor_kwargs'] == {'max_pixels': 401408, 'min_pixels': 3136}


def test_image_prepared_for_another_budget_is_rejected():
    big = prepare_image(np.zeros((720, 1280, 3), np.uint8), ImageBudget())
    with pytest.raises(ValueError, match='same ImageBudget'):
        build_request(Task.POINTING, 'x', [big], False, R20, model='rb', budget=ImageBudget(max_pixels=200704))


def test_general_and_planning_take_any_number_of_images(frame):
    assert len(build_request(Task.GENERAL, 'hi', [], None, R20, model='rb').body['messages'][0]['content']) == 1
    parts = build_request(Task.PLANNING, 'tidy', [frame, frame], False, R20, model='rb').body['messages'][0]['content']
    assert [part['type'] for part in parts] == ['image_url', 'image_url', 'text']


@pytest.mark.parametrize('task', [Task.POINTING, Task.AFFORDANCE, Task.TRAJECTORY, Task.GROUNDING])
def test_single_image_tasks_need_exactly_one_image(task, frame):
    for images in ([], [frame, frame]):
        with pytest.raises(ValueError, match='exactly one image'):
            build_request(task, 'x', images, False, R20, model='rb')


@pytest.mark.parametrize('instruction', ['', '   \n'])
def test_empty_instruction_is_rejected(instruction, frame):
    with pytest.raises(ValueError, match='empty'):
        build_request(Task.POINTING, instruction, [frame], False, R20, model='rb')


def test_robobrain_2_5_has_no_affordance(frame):
    with pytest.raises(ValueError, match='no affordance task'):
        build_request(Task.AFFORDANCE, 'hold the cup', [frame], False, R25, model='rb')


def test_bad_sampling_settings_are_rejected(frame):
    with pytest.raises(ValueError, match='max_tokens'):
        build_request(Task.GENERAL, 'x', [], None, R20, model='rb', max_tokens=0)
    with pytest.raises(ValueError, match='temperature'):
        build_request(Task.GENERAL, 'x', [], None, R20, model='rb', temperature=-1)


def test_resolve_model_family():
    assert resolve_model_family('robobrain2.0', 'BAAI/RoboBrain2.5-8B-NV') is R20
    assert resolve_model_family('robobrain2.5', 'BAAI/RoboBrain2.0-7B') is R25
    assert resolve_model_family('auto', 'BAAI/RoboBrain2.5-8B-NV') is R25
    assert resolve_model_family('auto', 'BAAI/RoboBrain2.0-7B') is R20
    with pytest.raises(ValueError, match='must be one of'):
        resolve_model_family('robobrain3', 'x')
