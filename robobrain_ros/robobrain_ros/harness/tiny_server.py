"""A real vLLM CPU server with the tiny random-weight model (``tiny_model``), for the demo, the benchmarks, the soak
and the tests (whose session fixture ``vllm_server`` is robobrain_ros/test/vllm_fixture.py):

    server = start_tiny_server()
    openai_base = server.base_url      # http://127.0.0.1:PORT/v1
    name = server.model                # served model name ("robobrain-tiny")
    before = server.metrics()          # {'vllm:num_requests_running{...}': 0.0, ...}
    server.stop()

The tiny model is built (``tiny_model``) into ``$ROBOBRAIN_CACHE_DIR`` (default ``<repo>/.cache`` in a source
checkout, else ``~/.cache/robobrain_ros``) with the vLLM interpreter (``$ROBOBRAIN_VLLM_PYTHON``, default
``<repo>/.venv/vllm/bin/python``); the server is ``config/serve/cpu_smoke.yaml`` through ``robobrain_ros.serve`` on a
free loopback port, in its own process group, stopped by stop(), on failure, on Ctrl-C and at interpreter exit.
Without rclpy, torch or vLLM in the calling interpreter.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

_PKG_PARENT = Path(__file__).resolve().parents[2]          # <repo>/robobrain_ros
_REPO = _PKG_PARENT.parent if (_PKG_PARENT / 'setup.py').is_file() else None
TINY_MODEL_DIRNAME = 'tiny_qwen2_5_vl'
CONFIG_NAME = 'cpu_smoke'


class ServerSetupError(RuntimeError):
    """The test server could not be built or started (message names the path / log)."""


def cache_dir() -> Path:
    env = os.environ.get('ROBOBRAIN_CACHE_DIR')
    if env:
        return Path(env).expanduser()
    if _REPO is not None:
        return _REPO / '.cache'
    return Path('~/.cache/robobrain_ros').expanduser()


def vllm_python() -> str:
    env = os.environ.get('ROBOBRAIN_VLLM_PYTHON')
    if env:
        return env
    if _REPO is not None:
        return str(_REPO / '.venv' / 'vllm' / 'bin' / 'python')
    return sys.executable


def source_env(extra: dict | None = None) -> dict:
    """Environment in which the vLLM interpreter imports this checkout's robobrain_ros."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(_PKG_PARENT), env.get('PYTHONPATH'))
                                        if p)
    env.update(extra or {})
    return env


def build_tiny_model(python: str | None = None, out: Path | None = None) -> Path:
    """Build (or reuse) the tiny model with the vLLM interpreter; returns its folder."""
    python = python or vllm_python()
    out = Path(out or cache_dir() / TINY_MODEL_DIRNAME)
    if not os.path.exists(python):
        raise ServerSetupError(f'vLLM interpreter not found: {python} (set ROBOBRAIN_VLLM_PYTHON '
                               'or create .venv/vllm with scripts/setup.sh)')
    proc = subprocess.run([python, '-m', 'robobrain_ros.harness.tiny_model', '--out', str(out)],
                          env=source_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not (out / 'config.json').is_file():
        raise ServerSetupError(f'building the tiny model in {out} with {python} failed '
                               f'(exit {proc.returncode}):\n{proc.stdout[-2000:]}'
                               f'{proc.stderr[-4000:]}')
    return out


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^([^\s{]+(?:\{.*\})?)\s+(\S+)(?:\s+\S+)?$', line)
        if not m:
            continue
        try:
            out[m.group(1)] = float(m.group(2))
        except ValueError:
            continue
    return out


@dataclasses.dataclass
class VllmServer:
    base_url: str          # http://127.0.0.1:PORT/v1 (OpenAI base URL)
    root_url: str          # http://127.0.0.1:PORT
    model: str             # served model name
    model_dir: str         # folder of the tiny model
    port: int
    pid: int               # the server process (leader of its process group)
    log_path: str          # server output
    startup_s: float       # seconds from start to healthy /health
    _supervisor: object = dataclasses.field(repr=False, default=None)

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.root_url + path, timeout=timeout) as r:
            return r.read()

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.get('/metrics').decode())

    def healthy(self) -> bool:
        try:
            self.get('/health', timeout=5)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()


def start_tiny_server(python: str | None = None, port: int | None = None, extra_env: dict | None = None,
                      extra_args: list[str] | None = None, timeout: float = 600.0,
                      model_dir: Path | None = None) -> VllmServer:
    """Build the tiny model and start cpu_smoke.yaml through the serve supervisor.

    extra_args are appended to vLLM's command line (the last of a repeated option wins). model_dir serves another
    folder under the same name (e.g. build_perturbed_model's) instead of the tiny model.
    """
    from robobrain_ros.serve.cli import Plan
    from robobrain_ros.serve.config import load, resolve_path
    from robobrain_ros.serve.supervisor import StartupError, Supervisor, free_port

    python = python or vllm_python()
    model_dir = Path(model_dir) if model_dir is not None else build_tiny_model(python)
    port = port or free_port()
    cfg = load(resolve_path(CONFIG_NAME))
    args = argparse.Namespace(serve_id=None, platform='cpu', python=python, model=str(model_dir),
                              host='127.0.0.1', port=port, dry_run=False)
    saved = {k: os.environ.pop(k) for k in ('ROBOBRAIN_PLUGIN_PROBE',) if k in os.environ}
    try:
        plan = Plan(cfg, args)
    finally:
        os.environ.update(saved)
    env = plan.env
    env.pop('ROBOBRAIN_PLUGIN_PROBE', None)
    env.update(extra_env or {})
    argv = plan.argv + list(extra_args or [])
    logs = cache_dir() / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    log_path = str(logs / f'vllm_server_{port}.log')
    with open(log_path, 'w') as f:
        f.write('$ ' + ' '.join(argv) + '\n')
    sup = Supervisor(argv, env, plan.root_url + '/health', log_path=log_path,
                     out=lambda m: print(f'vLLM test server: {m}', file=sys.stderr, flush=True), cpus=plan.cpus)
    atexit.register(sup.stop)
    t0 = time.monotonic()
    sup.start()
    try:
        sup.wait_ready(timeout)
    except StartupError as e:
        sup.stop()
        raise ServerSetupError(f'vLLM test server did not start (log: {log_path}): {e}') from None
    except BaseException:
        sup.stop()
        raise
    return VllmServer(base_url=plan.root_url + '/v1', root_url=plan.root_url,
                      model=plan.entry.served_model_name, model_dir=str(model_dir), port=port,
                      pid=sup.pid, log_path=log_path, startup_s=time.monotonic() - t0,
                      _supervisor=sup)
