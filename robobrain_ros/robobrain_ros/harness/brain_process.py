"""Run the brain node as its own process, the way `ros2 run` does, for tests, the demo and benchmarks.

    with BrainProcess({'server': {'base_urls': [url]}}, log_dir=tmp) as brain:
        ...   # talk to /robobrain with BrainClient

The parameters go through a real --params-file. The process gets its own session, so stop() reaches
everything it started, and its log is kept in a file whose path failure messages name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'server.base_urls': x} -> {'server': {'base_urls': x}} (params files are nested)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split('.')
        level = nested
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = value
    return nested


def brain_executable() -> list[str]:
    """The installed brain_node (what `ros2 run robobrain_ros brain_node` runs), else the module."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        candidate = Path(prefix) / 'lib' / 'robobrain_ros' / 'brain_node'
        if prefix and candidate.is_file():
            return [sys.executable, str(candidate)]
    return [sys.executable, '-m', 'robobrain_ros.node.brain_node']


class BrainProcess:
    def __init__(self, params: dict[str, Any], name: str = 'robobrain', namespace: str = '',
                 log_dir: str | Path | None = None, env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        """command: what to run instead of the installed brain_node (it must take the same --ros-args)."""
        self.name = name
        self.namespace = namespace
        self._params = params
        self._dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix='robobrain-node-'))
        self._dir.mkdir(parents=True, exist_ok=True)
        self.params_file = self._dir / f'{name}.params.yaml'
        self.log_path = self._dir / f'{name}.log'
        self._env = env or {}
        self._command = command
        self.process: subprocess.Popen | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}" if self.namespace else f'/{self.name}'

    def start(self) -> 'BrainProcess':
        flat = {k: v for k, v in self._params.items()}
        self.params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': nest(flat)}}))
        command = (self._command or brain_executable()) + ['--ros-args', '--params-file', str(self.params_file),
                                        '-r', f'__node:={self.name}']
        if self.namespace:
            command += ['-r', f'__ns:={self.namespace}']
        env = {**os.environ, **self._env, 'PYTHONUNBUFFERED': '1'}
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ''

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (a clean rclpy shutdown), then SIGKILL of the whole session if it does not exit."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5.0)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> 'BrainProcess':
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def wait_until(predicate, timeout: float, period: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period)
    return predicate()
