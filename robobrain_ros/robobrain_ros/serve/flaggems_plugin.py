"""vLLM general plugin ``robobrain_flaggems``: FlagGems in every vLLM process, no vLLM patch.

Registered in setup.py under the entry-point group ``vllm.general_plugins``; vLLM calls
``register()`` in each process it starts (API server, engine core, workers) before it builds
the model. What it does, driven by the environment the serve tool sets:

* ``USE_FLAGGEMS`` true (1/true/yes/on): ``import flag_gems; flag_gems.enable(...)``; logs how
  many / which ops FlagGems took over and, when ``ROBOBRAIN_FLAGGEMS_OPS_FILE`` is set (config
  ``flaggems_ops_file``), writes that list there (the first process writes that path, later ones
  ``<path>.<pid>``). If flag_gems cannot be imported or has no backend for this machine it raises,
  so vLLM stops with that message instead of running without FlagGems.
* ``ROBOBRAIN_FLAGGEMS_EXCLUDE`` (comma list of op names): ops FlagGems must leave to PyTorch, passed as
  ``flag_gems.enable(unused=[...])``; the way around an op whose FlagGems kernel fails on a platform (the
  H200 run in docs/BENCHMARKS.md crashed inside FlagGems during vLLM's start-up profiling).
* ``ROBOBRAIN_PLUGIN_PROBE`` set: appends one JSON line (pid, process name, argv) to that file;
  tests use it to prove the plugin ran inside vLLM's processes.

``VLLM_PLUGINS`` (comma list) filters plugins of every group: when it is set it must name
``robobrain_flaggems`` or this never runs (the serve tool appends it when USE_FLAGGEMS is true).

Imports nothing heavy at module level (vLLM imports this in every process) and never rclpy.
"""

from __future__ import annotations

import json
import logging
import os
import sys

PLUGIN_NAME = 'robobrain_flaggems'
USE_ENV = 'USE_FLAGGEMS'
OPS_FILE_ENV = 'ROBOBRAIN_FLAGGEMS_OPS_FILE'
PROBE_ENV = 'ROBOBRAIN_PLUGIN_PROBE'
EXCLUDE_ENV = 'ROBOBRAIN_FLAGGEMS_EXCLUDE'

logger = logging.getLogger('robobrain_ros.flaggems')
_done = False


class FlagGemsUnavailable(RuntimeError):
    """USE_FLAGGEMS is true but FlagGems cannot run in this process."""


def _process_name() -> str:
    try:
        with open('/proc/self/comm') as f:
            comm = f.read().strip()
    except OSError:
        comm = os.path.basename(sys.argv[0] if sys.argv else '')
    try:
        import multiprocessing
        mp = multiprocessing.current_process().name
    except Exception:  # noqa: BLE001
        mp = ''
    return f'{comm} ({mp})' if mp else comm


def _write_probe(path: str) -> None:
    rec = {'pid': os.getpid(), 'ppid': os.getppid(), 'name': _process_name(),
           'argv': list(sys.argv), 'use_flaggems': os.environ.get(USE_ENV, '')}
    with open(path, 'a') as f:  # one short write per line: appends from processes don't mix
        f.write(json.dumps(rec) + '\n')


def _truthy(v: str | None) -> bool:
    return (v or '').strip().lower() in ('1', 'true', 'yes', 'on')


def _ops_path(base: str) -> str:
    """``base`` for the first process that writes, ``base.<pid>`` for the others."""
    return base if not os.path.exists(base) else f'{base}.{os.getpid()}'


def enable_flaggems() -> list[str]:
    try:
        import flag_gems
    except BaseException as e:  # flag_gems raises RuntimeError when no device backend exists
        msg = (f'{PLUGIN_NAME}: USE_FLAGGEMS is true but FlagGems is unavailable in this process '
               f'(pid {os.getpid()}): import flag_gems failed with {type(e).__name__}: {e}. '
               'Install the flag_gems build for this platform, or set USE_FLAGGEMS=false to serve '
               'without FlagGems.')
        print(msg, file=sys.stderr, flush=True)
        raise FlagGemsUnavailable(msg) from None
    excluded = [op.strip() for op in os.environ.get(EXCLUDE_ENV, '').split(',') if op.strip()]
    try:
        if excluded:
            flag_gems.enable(unused=excluded)
            logger.warning('%s: ops left to PyTorch (%s): %s', PLUGIN_NAME, EXCLUDE_ENV, ', '.join(excluded))
        else:
            flag_gems.enable()
    except Exception as e:  # noqa: BLE001
        msg = (f'{PLUGIN_NAME}: USE_FLAGGEMS is true but flag_gems.enable() failed: '
               f'{type(e).__name__}: {e}')
        print(msg, file=sys.stderr, flush=True)
        raise FlagGemsUnavailable(msg) from None
    ops = []
    getter = getattr(flag_gems, 'all_registered_ops', None)
    if callable(getter):
        try:
            ops = sorted(str(o) for o in getter())
        except Exception:  # noqa: BLE001
            ops = []
    logger.warning('%s: FlagGems enabled in pid %d, %d ops taken over: %s', PLUGIN_NAME,
                   os.getpid(), len(ops), ', '.join(ops))
    base = os.environ.get(OPS_FILE_ENV)
    if base:
        path = _ops_path(base)
        with open(path, 'w') as f:
            f.write('\n'.join(ops) + ('\n' if ops else ''))
        logger.warning('%s: op list written to %s', PLUGIN_NAME, path)
    return ops


def register() -> None:
    """vLLM's entry point; runs once per process."""
    global _done
    if _done:
        return
    _done = True
    probe = os.environ.get(PROBE_ENV)
    if probe:
        _write_probe(probe)
    if _truthy(os.environ.get(USE_ENV)):
        enable_flaggems()
