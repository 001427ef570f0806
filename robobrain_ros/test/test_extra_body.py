"""model.extra_body may add sampling fields, never replace what the node itself puts in a request.

Before: the JSON object was merged last into every body, so a live `ros2 param set` could swap the messages, the
model, stream, max_tokens beyond the node's limit, the answer constraint or the prefill switches.
"""

from __future__ import annotations

import itertools
import json

import pytest

from robobrain_ros.node.parameters import PARAMETERS, check_settings, parse_extra_body
from robobrain_ros.protocol import ConstraintDialect, ImageBudget, ModelFamily, ModelSize, ModelSpec, Task
from robobrain_ros.protocol.image_encoding import PreparedImage
from robobrain_ros.protocol.request import build_request

IMAGE = PreparedImage(data_url='data:image/jpeg;base64,', original_size=(280, 280), sent_size=(280, 280),
                      resize_ms=0.0, encode_ms=0.0)
SPECS = [ModelSpec(family, size, 'parameter') for family, size in (
    (ModelFamily.ROBOBRAIN_2_0, ModelSize.B3), (ModelFamily.ROBOBRAIN_2_0, ModelSize.B7),
    (ModelFamily.ROBOBRAIN_2_0, ModelSize.UNKNOWN), (ModelFamily.ROBOBRAIN_2_5, ModelSize.B8))]


def keys_build_request_writes() -> set[str]:
    """Every top-level key of every body build_request makes, over all its options that change the keys."""
    keys: set[str] = set()
    for task, thinking, spec, dialect, stream, processor_kwargs, allow_empty in itertools.product(
            Task, (True, False, None), SPECS, ConstraintDialect, (True, False), (True, False), (True, False)):
        if spec.family is ModelFamily.ROBOBRAIN_2_5 and task is Task.AFFORDANCE:
            continue   # 2.5 has no affordance task
        built = build_request(task, 'the cup', [IMAGE], thinking, spec, model='m', budget=ImageBudget(),
                              constraint=dialect, stream=stream, processor_kwargs=processor_kwargs,
                              allow_empty=allow_empty)
        keys.update(built.body)
    return keys


def test_every_key_build_request_writes_is_refused():
    written = keys_build_request_writes()
    # The sweep really reaches the optional keys (prefill switches, both constraint dialects, processor kwargs).
    assert {'continue_final_message', 'structured_outputs', 'guided_regex', 'mm_processor_kwargs',
            'stream_options'} <= written
    for key in sorted(written):
        with pytest.raises(ValueError, match=f'{key}.*the node sets') as error:
            parse_extra_body(json.dumps({key: 1}))
        assert 'model.extra_body' in str(error.value)


@pytest.mark.parametrize('key', ['guided_json', 'guided_choice', 'guided_grammar', 'response_format',
                                 'guided_decoding_backend', 'structural_tag'])
def test_other_answer_constraints_are_refused(key):
    # Not written by the node, but each would fight (or, with no constraint sent, replace) the node's constraint.
    with pytest.raises(ValueError, match=key):
        parse_extra_body(json.dumps({key: {}}))


def test_the_reason_names_every_owned_key_and_no_allowed_one():
    with pytest.raises(ValueError) as error:
        parse_extra_body(json.dumps({'top_p': 0.9, 'max_tokens': 100000, 'messages': [], 'seed': 1}))
    reason = str(error.value)
    assert 'max_tokens' in reason and 'messages' in reason
    assert 'top_p' not in reason and 'seed' not in reason


def test_sampling_fields_stay_allowed():
    allowed = {'top_p': 0.95, 'top_k': 20, 'min_p': 0.05, 'min_tokens': 8, 'repetition_penalty': 1.05,
               'presence_penalty': 0.1, 'frequency_penalty': 0.1, 'seed': 7, 'stop': ['\n\n']}
    assert parse_extra_body(json.dumps(allowed)) == allowed


def settings_with(extra_body: str) -> dict:
    values = {name: spec.default for name, spec in PARAMETERS.items()}
    values['model.extra_body'] = extra_body
    return values


def test_check_settings_refuses_an_owned_key():
    # The node's on-set parameter callback and its configure both decide with check_settings.
    assert check_settings(settings_with('{"min_tokens": 8}')) == ''
    reason = check_settings(settings_with('{"stream": false}'))
    assert 'model.extra_body' in reason and 'stream' in reason and 'the node sets' in reason


def test_without_the_nodes_constraint_the_answer_constraint_is_the_users():
    # model.structured_outputs false: the node sends no constraint, so one in extra_body replaces nothing of the
    # node's (the benchmarks force a fixed answer length this way); its limits and messages stay the node's.
    regex = {'structured_outputs': {'regex': r'\[\(\d, \d\)\]'}, 'min_tokens': 8}
    assert parse_extra_body(json.dumps(regex), constrains_answers=False) == regex
    with pytest.raises(ValueError, match='structured_outputs'):
        parse_extra_body(json.dumps(regex), constrains_answers=True)
    with pytest.raises(ValueError, match='max_tokens'):
        parse_extra_body(json.dumps({'max_tokens': 10}), constrains_answers=False)
    values = settings_with(json.dumps(regex))
    assert 'structured_outputs' in check_settings(values)
    values['model.structured_outputs'] = False
    assert check_settings(values) == ''
