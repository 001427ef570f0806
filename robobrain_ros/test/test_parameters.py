"""config/brain.yaml and the node's parameter table agree, key by key, so the documented file is the truth."""

from pathlib import Path

import pytest
import yaml

from robobrain_ros.node.parameters import PARAMETERS, parse_extra_body, pipeline_settings

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'brain.yaml'


def flatten(tree: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def test_brain_yaml_documents_every_parameter_with_its_default():
    params = flatten(yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters'])
    assert set(params) == set(PARAMETERS)
    for name, spec in PARAMETERS.items():
        assert params[name] == spec.default, name
        assert type(params[name]) is type(spec.default), name


def test_every_parameter_has_a_description_and_numbers_a_range():
    for name, spec in PARAMETERS.items():
        assert len(spec.description) > 10, name
        if isinstance(spec.default, float):
            assert spec.float_range is not None, name
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            assert spec.int_range is not None, name


def test_defaults_make_valid_pipeline_settings():
    settings = pipeline_settings({name: spec.default for name, spec in PARAMETERS.items()})
    assert settings.thinking is False and settings.budget.max_pixels == 1003520 and settings.extra_body == {}


@pytest.mark.parametrize('text, error', [('[1]', 'JSON object'), ('{nope', 'not valid JSON')])
def test_extra_body_must_be_a_json_object(text, error):
    with pytest.raises(ValueError, match=error):
        parse_extra_body(text)
    assert parse_extra_body('{"top_p": 0.9}') == {'top_p': 0.9}


def test_a_budget_whose_minimum_exceeds_its_maximum_is_refused_as_a_whole():
    from robobrain_ros.node.parameters import check_settings
    values = {name: spec.default for name, spec in PARAMETERS.items()}
    values['model.max_pixels'] = 200704
    assert check_settings(values) == ''
    values['model.min_pixels'] = 300000        # each value inside its own range, the pair impossible
    assert 'min_pixels' in check_settings(values)


def test_a_choice_outside_its_list_is_refused():
    from robobrain_ros.node.parameters import check_settings
    values = {name: spec.default for name, spec in PARAMETERS.items()}
    values['model.size'] = '13b'
    assert 'model.size must be one of' in check_settings(values)
