"""build_request, the prompt table, thinking prefills per model and model detection."""

import re
from pathlib import Path

import numpy as np
import pytest

from robobrain_ros.protocol import (
    PROMPT_TEMPLATES,
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    ModelSize,
    ModelSpec,
    Task,
    assistant_prefill,
    build_request,
    constraint_fields,
    detect_model,
    prepare_image,
    render_prompt,
    resolve_model,
)

ROBOBRAIN_MD = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'ROBOBRAIN.md'
R20, R25 = ModelFamily.ROBOBRAIN_2_0, ModelFamily.ROBOBRAIN_2_5
SPEC_2_0_3B = ModelSpec(R20, ModelSize.B3, 'name')
SPEC_2_0_7B = ModelSpec(R20, ModelSize.B7, 'name')
SPEC_2_0_32B = ModelSpec(R20, ModelSize.B32, 'name')
SPEC_2_5_8B = ModelSpec(R25, ModelSize.B8, 'name')


@pytest.fixture(scope='module')
def frame():
    rgb = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return prepare_image(rgb, ImageBudget())


def _documented_prompts() -> dict[str, str]:
    if not ROBOBRAIN_MD.is_file():
        pytest.fail(f'the model contract is missing: expected {ROBOBRAIN_MD.resolve()} '
                    '(shared/ROBOBRAIN.md next to the repo)')
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
        'Please predict 3D end-effector-centric waypoints to complete the task successfully. '
        'The task is "reach for the banana".'
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
    assert body['structured_outputs'] == constraint_fields(Task.POINTING, False, R20, (644, 476))['structured_outputs']
    assert built.sent_sizes == [(644, 476)] and built.original_sizes == [(640, 480)]
    assert built.task is Task.POINTING and built.thinking is False and built.model_family is R20
    assert built.constraint is ConstraintDialect.STRUCTURED_OUTPUTS and built.prefill == '<think></think><answer>'


@pytest.mark.parametrize('dialect', list(ConstraintDialect))
def test_thinking_on_sends_no_constraint_in_any_dialect(frame, dialect):
    # Finding (issue 11): the node asked for structured outputs with thinking on, and the regex bounded the
    # thinking text. No argument of build_request can put a constraint on a thinking completion.
    built = build_request(Task.TRAJECTORY, 'reach', [frame], True, R20, model='rb', constraint=dialect)
    assert built.body['messages'][-1] == {'role': 'assistant', 'content': '<think>'}
    assert not {'structured_outputs', 'guided_regex', 'guided_json'} & set(built.body)
    assert built.constraint is ConstraintDialect.NONE and built.prefill == '<think>'


def test_constraint_dialects_put_the_same_regex_in_their_own_field(frame):
    structured = build_request(Task.POINTING, 'x', [frame], False, R20, model='rb')
    guided = build_request(Task.POINTING, 'x', [frame], False, R20, model='rb',
                           constraint=ConstraintDialect.GUIDED_REGEX)
    none = build_request(Task.POINTING, 'x', [frame], False, R20, model='rb', constraint=ConstraintDialect.NONE)
    assert guided.body['guided_regex'] == structured.body['structured_outputs']['regex']
    assert 'structured_outputs' not in guided.body and guided.constraint is ConstraintDialect.GUIDED_REGEX
    assert not {'structured_outputs', 'guided_regex'} & set(none.body) and none.constraint is ConstraintDialect.NONE


def test_body_without_thinking_switch(frame):
    body = build_request(Task.GROUNDING, 'the cup', [frame], None, R20, model='rb', stream=False).body
    assert [m['role'] for m in body['messages']] == ['user']
    assert 'continue_final_message' not in body and 'add_generation_prompt' not in body
    assert 'stream_options' not in body and body['stream'] is False
    assert body['structured_outputs'] == constraint_fields(Task.GROUNDING, None, R20, (644, 476))['structured_outputs']


def test_constraint_off_and_extra_merged_last(frame):
    body = build_request(
        Task.POINTING, 'x', [frame], False, R20, model='rb', constraint=ConstraintDialect.NONE,
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


@pytest.mark.parametrize(('name', 'family', 'size'), [
    ('BAAI/RoboBrain2.0-7B', R20, ModelSize.B7),
    ('RoboBrain2.0-32B', R20, ModelSize.B32),
    ('/models/BAAI/RoboBrain2.0-3B/', R20, ModelSize.B3),
    ('RoboBrain2.0-32B-ascend-flagos', R20, ModelSize.B32),
    ('robobrain2.5-8b', R25, ModelSize.B8),
    ('BAAI/RoboBrain2.5-8B-NV', R25, ModelSize.B8),
    ('BAAI/RoboBrain2.5-4B', R25, ModelSize.B4),
    ('RoboBrain2.0-5B', R20, ModelSize.UNKNOWN),
])
def test_robobrain_names_are_detected(name, family, size):
    assert detect_model(name) == ModelSpec(family, size, 'name')


@pytest.mark.parametrize('name', ['Qwen2.5-VL-7B-Instruct', 'Qwen/Qwen2.5-VL-3B-Instruct', 'robobrain-tiny',
                                  'robobrain2.5', 'RoboBrain2.0', 'my-robobrain2.5-8b', 'RoboBrain2.5-8B/extra', ''])
def test_other_names_are_not_detected(name):
    assert detect_model(name) is None


def test_a_qwen_2_5_name_is_not_read_as_robobrain_2_5():
    # Finding (issue 11): any name containing '2.5' gave RoboBrain 2.5's 0..1000 convention; a server serving
    # Qwen2.5-VL (pixels, like RoboBrain 2.0) had every point moved.
    assert resolve_model('auto', 'auto', 'Qwen2.5-VL-7B-Instruct') == ModelSpec(R20, ModelSize.UNKNOWN, 'default')
    assert resolve_model('auto', 'auto', 'Qwen/Qwen2.5-VL-32B-Instruct').family is R20


def test_resolve_model_parameters_override_the_name():
    assert resolve_model('auto', 'auto', 'BAAI/RoboBrain2.0-7B') == SPEC_2_0_7B
    assert resolve_model('auto', 'auto', 'BAAI/RoboBrain2.5-8B-NV') == SPEC_2_5_8B
    assert resolve_model('robobrain2.0', 'auto', 'BAAI/RoboBrain2.5-8B-NV') == ModelSpec(R20, ModelSize.B8, 'parameter')
    assert resolve_model('robobrain2.5', '32b', 'BAAI/RoboBrain2.0-7B') == ModelSpec(R25, ModelSize.B32, 'parameter')
    assert resolve_model('auto', '3b', 'robobrain-tiny') == ModelSpec(R20, ModelSize.B3, 'parameter')
    assert resolve_model('auto', 'auto', 'robobrain-tiny') == ModelSpec(R20, ModelSize.UNKNOWN, 'default')
    with pytest.raises(ValueError, match='must be one of'):
        resolve_model('robobrain3', 'auto', 'x')
    with pytest.raises(ValueError, match='must be one of'):
        resolve_model('auto', 'unknown', 'x')
    with pytest.raises(ValueError, match='must be one of'):
        resolve_model('auto', '13b', 'x')


@pytest.mark.parametrize(('spec', 'off', 'on'), [
    (SPEC_2_0_7B, '<think></think><answer>', '<think>'),
    (SPEC_2_0_32B, '<think></think><answer>', '<think>'),
    (ModelSpec(R20, ModelSize.UNKNOWN, 'default'), '<think></think><answer>', '<think>'),
    (SPEC_2_0_3B, None, None),
    (SPEC_2_5_8B, None, None),
    (ModelSpec(R25, ModelSize.UNKNOWN, 'parameter'), None, None),
])
def test_thinking_prefill_per_model_as_the_official_scripts(spec, off, on):
    assert assistant_prefill(False, spec) == off
    assert assistant_prefill(True, spec) == on
    assert assistant_prefill(None, spec) is None


@pytest.mark.parametrize('thinking', [False, True])
@pytest.mark.parametrize('spec', [SPEC_2_5_8B, SPEC_2_0_3B, R25], ids=['2.5-8b', '2.0-3b', '2.5-family'])
def test_robobrain_2_5_and_3b_get_nothing_after_the_assistant_header(frame, spec, thinking):
    # Finding (issue 11): RoboBrain 2.5 and 3B models were sent 2.0's '<think></think><answer>'.
    built = build_request(Task.POINTING, 'the mug', [frame], thinking, spec, model='rb')
    assert [m['role'] for m in built.body['messages']] == ['user']
    assert 'continue_final_message' not in built.body and built.prefill is None
