"""The robobrain_seeded load format: realistic-scale random weights, identical in every server."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robobrain_ros.harness import tiny_server as vllm_fixture
from robobrain_ros.serve.seeded_weights import CHUNK, is_norm_weight, seeded_values

PKG_PARENT = Path(vllm_fixture.__file__).resolve().parents[2]


def vllm_python() -> str:
    python = vllm_fixture.vllm_python()
    if not os.path.exists(python):
        pytest.fail(f'vLLM interpreter not found: {python}', pytrace=False)
    return python


def source_env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(PKG_PARENT), os.environ.get('PYTHONPATH')) if p))


def test_values_depend_on_seed_and_name_only():
    a = seeded_values('model.layers.0.mlp.down_proj.weight', 1000, seed=0, std=0.02)
    assert np.array_equal(a, seeded_values('model.layers.0.mlp.down_proj.weight', 1000, seed=0, std=0.02,
                                           workers=1))
    assert not np.array_equal(a, seeded_values('model.layers.1.mlp.down_proj.weight', 1000, seed=0, std=0.02))
    assert not np.array_equal(a, seeded_values('model.layers.0.mlp.down_proj.weight', 1000, seed=1, std=0.02))
    assert abs(float(a.std()) - 0.02) < 0.002 and abs(float(a.mean())) < 0.002


def test_large_parameters_are_drawn_in_chunks_the_same_way_every_time():
    n = CHUNK + 12345
    a = seeded_values('lm_head.weight', n, seed=0, std=1.0, workers=4)
    b = seeded_values('lm_head.weight', n, seed=0, std=1.0, workers=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:12345], a[CHUNK:CHUNK + 12345])  # chunks are independent streams


@pytest.mark.parametrize('name, ndim, norm', [
    ('model.layers.0.input_layernorm.weight', 1, True),
    ('model.norm.weight', 1, True),
    ('visual.blocks.3.norm2.weight', 1, True),
    ('visual.merger.ln_q.weight', 1, True),
    ('visual.merger.ln_q.bias', 1, False),
    ('model.layers.0.self_attn.qkv_proj.bias', 1, False),
    ('model.layers.0.mlp.gate_up_proj.weight', 2, False),
])
def test_norm_gains_start_near_one(name, ndim, norm):
    assert is_norm_weight(name, ndim) is norm


def test_vllm_loads_the_format_through_the_plugin_entry_point():
    """In the server's interpreter: the plugin registers the format with vLLM's loader registry, and the
    loader fills a module with the seeded numbers (norm gains near 1, the rest N(0, std)); a parameter of
    more than one chunk holds exactly the float32 numbers rounded to bf16."""
    code = r'''
import json, torch
from vllm.config.load import LoadConfig
from vllm.model_executor.model_loader import get_model_loader
from vllm.plugins import load_general_plugins
from robobrain_ros.serve.seeded_weights import CHUNK, seeded_values
load_general_plugins()
loader = get_model_loader(LoadConfig(load_format="robobrain_seeded",
                                     model_loader_extra_config={"seed": 7, "std": 0.05}))
model = torch.nn.Module()
model.proj = torch.nn.Linear(256, 512, dtype=torch.bfloat16)
model.norm = torch.nn.LayerNorm(512)
model.big = torch.nn.Parameter(torch.empty(CHUNK + 1000, dtype=torch.bfloat16))  # two chunks
loader.load_weights(model, None)
first = model.proj.weight.float().clone()
loader.load_weights(model, None)
# the chunked conversion gives exactly the float32 numbers rounded once to bf16
expected = torch.from_numpy(seeded_values("big", CHUNK + 1000, seed=7, std=0.05)).to(torch.bfloat16)
print(json.dumps({"loader": type(loader).__name__, "std": model.proj.weight.float().std().item(),
                  "gain": model.norm.weight.mean().item(),
                  "same": bool(torch.equal(first, model.proj.weight.float())),
                  "exact": bool(torch.equal(model.big.data, expected))}))
'''
    out = subprocess.run([vllm_python(), '-c', code], env=source_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['loader'] == 'SeededModelLoader'
    assert abs(result['std'] - 0.05) < 0.005
    assert abs(result['gain'] - 1.0) < 0.01
    assert result['same']
    assert result['exact']


def test_unknown_extra_config_is_refused():
    code = ('from vllm.config.load import LoadConfig\n'
            'from vllm.model_executor.model_loader import get_model_loader\n'
            'from vllm.plugins import load_general_plugins\n'
            'load_general_plugins()\n'
            'get_model_loader(LoadConfig(load_format="robobrain_seeded", model_loader_extra_config={"sd": 1}))\n')
    out = subprocess.run([vllm_python(), '-c', code], env=source_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "unknown model_loader_extra_config keys ['sd']" in out.stderr
