"""Serve config -> vLLM command line (FlagScale's rules), without starting anything."""

import json

import pytest
import yaml

from robobrain_ros.serve import command as cmd
from robobrain_ros.serve.config import ConfigError, ServeEntry, parse
from robobrain_ros.serve.supervisor import cpu_list, server_cpus

# The seed's FlagScale file (examples/robobrain2/conf/serve/32b.yaml), verbatim.
SEED_32B_YAML = """\
- serve_id: vllm_model
  engine: vllm
  engine_args:
    model: /data/weights/RoboBrain2.0-32B/ # path of weight of deepseek r1
    served_model_name: RoboBrain2.0-32B-ascend-flagos
    tensor_parallel_size: 8
    gpu_memory_utilization: 0.8
    host: 10.1.15.113
    port: 9010
    block_size: 128
    enforce_eager: true
    no_enable_prefix_caching: true
    no_enable_chunked_prefill: true

"""

SEED_ARGS = ['/data/weights/RoboBrain2.0-32B/',
             '--served-model-name', 'RoboBrain2.0-32B-ascend-flagos',
             '--tensor-parallel-size', '8', '--gpu-memory-utilization', '0.8',
             '--host', '10.1.15.113', '--port', '9010', '--block-size', '128',
             '--enforce-eager', '--no-enable-prefix-caching', '--no-enable-chunked-prefill']

BUILTIN = cmd.builtin_table()


def entry_of(text):
    cfg = parse(yaml.safe_load(text), 'test.yaml')
    return cfg, cfg.entry()


def test_seed_yaml_accepted_as_is_and_gives_flagscale_command():
    cfg, entry = entry_of(SEED_32B_YAML)
    assert cfg.platform == 'auto' and cfg.env == {} and entry.serve_id == 'vllm_model'
    assert cmd.validate(entry, BUILTIN) == []
    argv = cmd.build_command(cmd.with_defaults(entry), 'ascend', 'python3', BUILTIN)
    assert argv == ['python3', '-m', 'vllm.entrypoints.cli.main', 'serve'] + SEED_ARGS
    assert cmd.build_command(cmd.with_defaults(entry), 'cuda', 'py', BUILTIN)[4:] == SEED_ARGS


def test_cpu_uses_api_server_module_with_model_option():
    _, entry = entry_of(SEED_32B_YAML)
    argv = cmd.build_command(entry, 'cpu', '/v/bin/python', BUILTIN)
    assert argv[:5] == ['/v/bin/python', '-m', 'vllm.entrypoints.openai.api_server', '--model',
                        '/data/weights/RoboBrain2.0-32B/']
    assert argv[5:] == SEED_ARGS[1:]


def test_flagscale_7b_example_rules():
    # FlagScale's 7B example keys: string forms pass through, true flags bare, false omitted.
    args = {'model': '/m', 'max_model_len': 32768, 'max_num_seqs': 8,
            'limit_mm_per_prompt': 'image=18', 'trust_remote_code': True,
            'enable_chunked_prefill': True, 'enforce_eager': False, 'port': 9010}
    assert cmd.engine_args_to_argv(args, BUILTIN) == [
        '--max-model-len', '32768', '--max-num-seqs', '8', '--limit-mm-per-prompt', 'image=18',
        '--trust-remote-code', '--enable-chunked-prefill', '--port', '9010']


def test_lists_repeat_dicts_become_json():
    args = {'model': 'm', 'middleware': ['a.B', 'c.D'], 'served_model_name': ['x', 'y'],
            'limit_mm_per_prompt': {'image': 1, 'video': 0}, 'hf_overrides': {'a': [1, 2]}}
    assert cmd.engine_args_to_argv(args, BUILTIN) == [
        '--middleware', 'a.B', '--middleware', 'c.D',      # FlagScale: the flag per item
        '--served-model-name', 'x', 'y',                     # vLLM nargs='+': one flag, all values
        '--limit-mm-per-prompt', '{"image":1,"video":0}',
        '--hf-overrides', json.dumps({'a': [1, 2]}, separators=(',', ':'))]


def test_default_host_is_loopback_and_overrides():
    e = ServeEntry('s', {'model': 'm'})
    assert cmd.with_defaults(e).engine_args['host'] == '127.0.0.1'
    e2 = cmd.with_defaults(ServeEntry('s', {'model': 'm', 'host': '0.0.0.0'}), port=1234)
    assert e2.engine_args == {'model': 'm', 'host': '0.0.0.0', 'port': 1234}


def test_env_expansion(monkeypatch):
    monkeypatch.setenv('RB_TEST_MODEL', '/tmp/x')
    monkeypatch.delenv('RB_UNSET', raising=False)
    cfg = parse({'serve': [{'serve_id': 'a', 'engine': 'vllm', 'engine_args': {
        'model': '${RB_TEST_MODEL}', 'tokenizer': '${RB_UNSET:-/tok}', 'chat_template':
        '${RB_UNSET}'}}], 'env': {'A': True, 'B': 1}})
    assert cfg.entries[0].engine_args['model'] == '/tmp/x'
    assert cfg.entries[0].engine_args['tokenizer'] == '/tok'
    assert cfg.env == {'A': 'true', 'B': '1'}
    assert any('RB_UNSET' in w for w in cfg.warnings)


@pytest.mark.parametrize('data, words', [
    ({'serve': [{'engine_args': {'model': 'm'}}], 'platfrom': 'cpu'}, ["'platfrom'", "'platform'"]),
    ({'serve': [{'engine_args': {'model': 'm'}, 'engine_arg': {}}]},
     ["'engine_arg'", 'engine_args']),
    ({'serve': [{'engine_args': {'model': 'm'}}], 'platform': 'gpu'}, ['platform', 'cuda']),
    ({'serve': [{'engine': 'sglang', 'engine_args': {'model': 'm'}}]}, ['sglang']),
    ({'serve': [{'engine_args': {'port': 1}}]}, ['engine_args.model']),
    ({'serve': [{'engine_args': {'model': 'm'}}], 'env': {'X': [1]}}, ['env.X']),
    ({'serve': [{'engine_args': {'model': 'm'}}], 'startup_timeout': 'soon'}, ['startup_timeout']),
    ({'serve': [{'engine_args': {'model': 'm'}}], 'reserved_cpus': -1}, ['reserved_cpus', '-1']),
    ({'serve': [{'engine_args': {'model': 'm'}}], 'reserved_cpus': 'one'}, ['reserved_cpus', "'one'"]),
    ('just text', ['expected a list']),
])
def test_structure_errors(data, words):
    with pytest.raises(ConfigError) as e:
        parse(data, 'bad.yaml')
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize('args, words', [
    ({'tensor_paralel_size': 8}, ["'tensor_paralel_size'", 'tensor_parallel_size']),
    ({'enforce_eagre': True}, ['enforce_eager']),
    ({'enforce_eager': 'yes'}, ['enforce_eager', 'true or false']),
    ({'tensor_parallel_size': 'eight'}, ['tensor_parallel_size', 'integer']),
    ({'gpu_memory_utilization': 'most'}, ['gpu_memory_utilization', 'number']),
    ({'port': True}, ['port', 'not a boolean']),
    ({'dtype': 'float64'}, ['dtype', 'bfloat16']),
])
def test_engine_arg_errors_builtin(args, words):
    with pytest.raises(ConfigError) as e:
        cmd.validate(ServeEntry('s', {'model': 'm', **args}), BUILTIN)
    for w in words:
        assert w in str(e.value)


def test_unknown_but_not_close_key_passes_with_builtin_list_only():
    warnings = cmd.validate(ServeEntry('s', {'model': 'm', 'zzz_custom_thing': 1}), BUILTIN)
    assert warnings and 'zzz_custom_thing' in warnings[0]
    strict = cmd.OptionTable(dict(cmd.BUILTIN_OPTIONS), "vLLM x's argument parser")
    with pytest.raises(ConfigError):
        cmd.validate(ServeEntry('s', {'model': 'm', 'zzz_custom_thing': 1}), strict)


def test_ros_args_are_ignored():
    from robobrain_ros.serve.cli import _strip_ros_args
    assert _strip_ros_args(['--config', 'x', '--ros-args', '-r', '__node:=serve']) == [
        '--config', 'x']
    assert _strip_ros_args(['--ros-args', '-p', 'a:=1', '--', '--dry-run']) == ['--dry-run']


def test_metrics_parser_and_fixture_errors_name_paths(tmp_path):
    from robobrain_ros.harness import tiny_server as vf
    text = ('# HELP x\nvllm:num_requests_running{engine="0",model_name="a b"} 0.0\n'
            'vllm:prompt_tokens_total{engine="0"} 12\nplain 3.5 1700000000\n')
    assert vf.parse_metrics(text) == {
        'vllm:num_requests_running{engine="0",model_name="a b"}': 0.0,
        'vllm:prompt_tokens_total{engine="0"}': 12.0, 'plain': 3.5}
    missing = str(tmp_path / 'no' / 'python')
    with pytest.raises(vf.ServerSetupError, match=missing):
        vf.start_tiny_server(python=missing)


def test_reserved_cpus_pin_the_server_to_the_others():
    assert parse({'serve': [{'engine_args': {'model': 'm'}}]}).reserved_cpus == 0
    assert parse({'serve': [{'engine_args': {'model': 'm'}}], 'reserved_cpus': 2}).reserved_cpus == 2
    assert server_cpus(0, {0, 1, 2, 3}) == (None, None)
    assert server_cpus(1, {0, 1, 2, 3}) == (frozenset({1, 2, 3}), None)
    assert server_cpus(2, [7, 3, 5, 4]) == (frozenset({5, 7}), None)     # the lowest-numbered are kept
    cpus, why = server_cpus(2, {0, 1})
    assert cpus is None and 'reserved_cpus is 2' in why and 'only 2 CPUs' in why
    cpus, why = server_cpus(1, None)   # no CPU affinity on this OS
    assert cpus is None and 'Linux' in why
    assert server_cpus(0, None) == (None, None)
    assert cpu_list({0, 1, 2, 3, 6, 8, 9}) == '0-3,6,8-9'
    assert cpu_list({5}) == '5'
