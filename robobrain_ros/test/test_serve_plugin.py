"""The vllm.general_plugins entry point robobrain_flaggems."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robobrain_ros.harness import tiny_server as vllm_fixture

PKG_PARENT = Path(vllm_fixture.__file__).resolve().parents[2]


def env_with(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(PKG_PARENT), env.get('PYTHONPATH')) if p)
    for k in ('USE_FLAGGEMS', 'VLLM_PLUGINS', 'ROBOBRAIN_PLUGIN_PROBE'):
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def vllm_python():
    py = vllm_fixture.vllm_python()
    if not os.path.exists(py):
        pytest.fail(f'vLLM interpreter not found: {py} (set ROBOBRAIN_VLLM_PYTHON)', pytrace=False)
    return py


@pytest.mark.parametrize('module', ['flaggems_plugin', 'seeded_weights'])
def test_plugin_module_imports_nothing_heavy(module):
    code = (f'import sys, robobrain_ros.serve.{module} as p; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("torch", "vllm", "rclpy", "flag_gems", "numpy", "transformers")))')
    out = subprocess.run([vllm_python(), '-c', code], env=env_with(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


@pytest.mark.parametrize('name, value', [
    ('robobrain_flaggems', 'robobrain_ros.serve.flaggems_plugin:register'),
    ('robobrain_seeded_weights', 'robobrain_ros.serve.seeded_weights:register')])
def test_entry_point_registered_in_server_venv(name, value):
    code = ('from importlib.metadata import entry_points; '
            'print({e.name: e.value for e in entry_points(group="vllm.general_plugins")}'
            f'.get("{name}"))')
    out = subprocess.run([vllm_python(), '-c', code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == value, 'run: .venv/vllm/bin/pip install --no-deps ./robobrain_ros'



def test_register_probe_and_noop_without_use_flaggems(tmp_path):
    probe = tmp_path / 'p.jsonl'
    code = 'from robobrain_ros.serve.flaggems_plugin import register; register(); register()'
    out = subprocess.run([sys.executable, '-c', code], env=env_with(ROBOBRAIN_PLUGIN_PROBE=probe),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in probe.read_text().splitlines()]
    assert len(recs) == 1 and recs[0]['pid'] > 0 and recs[0]['name']


def test_register_fails_fast_when_flag_gems_unavailable():
    code = 'from robobrain_ros.serve.flaggems_plugin import register; register()'
    out = subprocess.run([vllm_python(), '-c', code], env=env_with(USE_FLAGGEMS='true'),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert 'USE_FLAGGEMS is true but FlagGems is unavailable' in out.stderr
    assert 'FlagGemsUnavailable' in out.stderr


def test_vllm_itself_refuses_to_start_with_use_flaggems(tmp_path):
    """Bypass the serve tool's preflight: vLLM loads the plugin and stops with its message."""
    py = vllm_python()
    model_dir = vllm_fixture.build_tiny_model(py)
    from robobrain_ros.serve.supervisor import free_port
    port = free_port()
    out = subprocess.run(
        [py, '-m', 'vllm.entrypoints.openai.api_server', '--model', str(model_dir),
         '--host', '127.0.0.1', '--port', str(port), '--dtype', 'float32',
         '--max-model-len', '1024'],
        env=env_with(USE_FLAGGEMS='true', VLLM_CPU_KVCACHE_SPACE='1'),
        capture_output=True, text=True, timeout=300, start_new_session=True)
    # It stopped on its own (subprocess.run raises TimeoutExpired otherwise) with the plugin's message, before it
    # served anything: no HTTP server was started.
    log = out.stderr + out.stdout
    assert out.returncode != 0
    assert 'USE_FLAGGEMS is true but FlagGems is unavailable' in log
    assert 'Uvicorn running' not in log and 'Application startup complete' not in log, log[-3000:]


def stand_in_flag_gems(tmp_path, enable_params: str) -> Path:
    """A stand-in flag_gems package that writes the keyword arguments enable() got to $CALLS (the real one
    needs a GPU backend; the H200 runs are in docs/BENCHMARKS.md)."""
    fake = tmp_path / 'stand_in' / 'flag_gems'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        'import json, os\n'
        '__version__ = "0.0-stand-in"\n'
        f'def enable({enable_params}):\n'
        '    args = {k: v for k, v in locals().items()}\n'
        '    open(os.environ["CALLS"], "w").write(json.dumps(args))\n'
        'def all_registered_ops():\n'
        '    return ["mm", "add", "softmax"]\n')
    return fake.parent


def run_register(tmp_path, stand_in: Path, **env_extra):
    env = env_with(USE_FLAGGEMS='true', CALLS=tmp_path / 'calls.json', **env_extra)
    env['PYTHONPATH'] = os.pathsep.join([str(stand_in), env.get('PYTHONPATH', '')])
    code = 'from robobrain_ros.serve.flaggems_plugin import register; register()'
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60)
    calls = tmp_path / 'calls.json'
    return out, (json.loads(calls.read_text()) if calls.exists() else None)


def test_enable_passes_excluded_ops_and_records_the_op_list(tmp_path):
    """Explicit exclusions reach enable(unused=...); the registered op list is written and FlagGems is asked to
    record the ops that run, once each, next to it."""
    stand_in = stand_in_flag_gems(tmp_path, 'unused=None, record=False, once=False, path=None')
    ops = tmp_path / 'ops.txt'
    out, call = run_register(tmp_path, stand_in, ROBOBRAIN_FLAGGEMS_EXCLUDE='copy_, fill_ ,',
                             ROBOBRAIN_FLAGGEMS_OPS_FILE=ops, ROBOBRAIN_FLAGGEMS_PLATFORM='cuda')
    assert out.returncode == 0, out.stderr
    assert call == {'unused': ['copy_', 'fill_'], 'record': True, 'once': True, 'path': f'{ops}.calls'}
    assert ops.read_text().split() == ['add', 'mm', 'softmax']
    assert '3 ops taken over' in out.stderr
    assert 'ops that run are recorded in' in out.stderr


def test_hopper_gets_its_default_exclusions_and_says_so(tmp_path):
    """No spec on a Hopper GPU: the ops measured broken there (and the slow GEMMs) stay with PyTorch."""
    from robobrain_ros.serve.flaggems_exclusions import default_exclusions
    stand_in = stand_in_flag_gems(tmp_path, 'unused=None')
    out, call = run_register(tmp_path, stand_in, ROBOBRAIN_FLAGGEMS_PLATFORM='cuda-hopper')
    assert out.returncode == 0, out.stderr
    assert call == {'unused': default_exclusions('cuda-hopper')}
    assert {'mul', 'fill_scalar_', 'sqrt', 'mm'} <= set(call['unused'])
    assert 'flag_gems 0.0-stand-in on cuda-hopper' in out.stderr
    assert 'ops left to PyTorch (the cuda-hopper default)' in out.stderr


def test_an_old_flag_gems_without_record_still_serves(tmp_path):
    stand_in = stand_in_flag_gems(tmp_path, 'unused=None')
    out, call = run_register(tmp_path, stand_in, ROBOBRAIN_FLAGGEMS_EXCLUDE='none',
                             ROBOBRAIN_FLAGGEMS_OPS_FILE=tmp_path / 'ops.txt', ROBOBRAIN_FLAGGEMS_PLATFORM='cuda')
    assert out.returncode == 0, out.stderr
    assert call == {'unused': []}
    assert 'cannot record the ops that run' in out.stderr


def test_a_bad_exclusion_spec_stops_the_server(tmp_path):
    stand_in = stand_in_flag_gems(tmp_path, 'unused=None')
    out, call = run_register(tmp_path, stand_in, ROBOBRAIN_FLAGGEMS_EXCLUDE='default,-')
    assert out.returncode != 0 and call is None
    assert 'ROBOBRAIN_FLAGGEMS_EXCLUDE' in out.stderr and 'lone "-"' in out.stderr
