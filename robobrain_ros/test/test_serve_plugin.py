"""The vllm.general_plugins entry point robobrain_flaggems."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robobrain_ros.testing import vllm_fixture

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


def test_plugin_module_imports_nothing_heavy():
    code = ('import sys, robobrain_ros.serve.flaggems_plugin as p; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("torch", "vllm", "rclpy", "flag_gems", "numpy", "transformers")))')
    out = subprocess.run([vllm_python(), '-c', code], env=env_with(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_entry_point_registered_in_server_venv():
    code = ('from importlib.metadata import entry_points; '
            'print({e.name: e.value for e in entry_points(group="vllm.general_plugins")}'
            '.get("robobrain_flaggems"))')
    out = subprocess.run([vllm_python(), '-c', code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == 'robobrain_ros.serve.flaggems_plugin:register', (
        'run: .venv/vllm/bin/pip install --no-deps ./robobrain_ros')


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
    t0 = time.monotonic()
    out = subprocess.run(
        [py, '-m', 'vllm.entrypoints.openai.api_server', '--model', str(model_dir),
         '--host', '127.0.0.1', '--port', str(port), '--dtype', 'float32',
         '--max-model-len', '1024'],
        env=env_with(USE_FLAGGEMS='true', VLLM_CPU_KVCACHE_SPACE='1'),
        capture_output=True, text=True, timeout=300, start_new_session=True)
    assert out.returncode != 0
    assert 'USE_FLAGGEMS is true but FlagGems is unavailable' in out.stderr + out.stdout
    assert time.monotonic() - t0 < 120


def test_enable_passes_excluded_ops_and_records_the_op_list(tmp_path):
    """The plugin's side of the FlagGems call (a stand-in flag_gems module: the real one needs a GPU backend,
    see docs/BENCHMARKS.md for the run on an H200): excluded ops reach enable(unused=...), the op list is written."""
    fake = tmp_path / 'stand_in' / 'flag_gems'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        'import json, os\n'
        'def enable(unused=()):\n'
        '    open(os.environ["CALLS"], "w").write(json.dumps(list(unused)))\n'
        'def all_registered_ops():\n'
        '    return ["mm", "add", "softmax"]\n')
    calls, ops = tmp_path / 'calls.json', tmp_path / 'ops.txt'
    code = 'from robobrain_ros.serve.flaggems_plugin import register; register()'
    env = env_with(USE_FLAGGEMS='true', ROBOBRAIN_FLAGGEMS_EXCLUDE='copy_, fill_ ,', CALLS=calls,
                   ROBOBRAIN_FLAGGEMS_OPS_FILE=ops)
    env['PYTHONPATH'] = os.pathsep.join([str(fake.parent), env.get('PYTHONPATH', '')])
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(calls.read_text()) == ['copy_', 'fill_']
    assert ops.read_text().split() == ['add', 'mm', 'softmax']
    assert '3 ops taken over' in out.stderr
