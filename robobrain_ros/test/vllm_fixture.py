"""pytest fixture ``vllm_server``: a real vLLM CPU server with the tiny model (robobrain_ros.harness.tiny_server), one
per session; and ``build_perturbed_model`` for the consistency tests. Loaded by conftest.py (pytest_plugins)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robobrain_ros.harness.tiny_server import (
    TINY_MODEL_DIRNAME,
    ServerSetupError,
    build_tiny_model,
    cache_dir,
    source_env,
    start_tiny_server,
    vllm_python,
)

PERTURBED_MODEL_SCRIPT = Path(__file__).with_name('perturbed_model.py')


def build_perturbed_model(scale: float, python: str | None = None) -> Path:
    """A copy of the tiny model with Gaussian noise of scale x RMS on every weight (``perturbed_model``)."""
    python = python or vllm_python()
    source = build_tiny_model(python)
    out = cache_dir() / f'{TINY_MODEL_DIRNAME}_perturbed_{scale:g}'
    proc = subprocess.run([python, str(PERTURBED_MODEL_SCRIPT), '--source', str(source),
                           '--out', str(out), '--scale', repr(scale)],
                          env=source_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (out / 'config.json').is_file():
        raise ServerSetupError(f'perturbing the tiny model into {out} failed (exit {proc.returncode}):\n'
                               f'{proc.stdout[-2000:]}{proc.stderr[-4000:]}')
    return out



@pytest.fixture(scope='session')
def vllm_server(request):
    """A running vLLM CPU server with the tiny model, shared by the whole session."""
    try:
        server = start_tiny_server()
    except ServerSetupError as e:
        pytest.fail(str(e), pytrace=False)
    request.addfinalizer(server.stop)
    print(f'\nvLLM test server {server.base_url} pid {server.pid} ready in '
          f'{server.startup_s:.1f} s (log {server.log_path})', file=sys.stderr)
    yield server
