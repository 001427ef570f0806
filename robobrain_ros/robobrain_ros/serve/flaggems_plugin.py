"""vLLM general plugin ``robobrain_flaggems``: FlagGems in every vLLM process, no vLLM patch.

Registered in setup.py under the entry-point group ``vllm.general_plugins``; vLLM calls
``register()`` in each process it starts (API server, engine core, workers) before it builds
the model. What it does, driven by the environment the serve tool sets:

* ``USE_FLAGGEMS`` true (1/true/yes/on): ``import flag_gems; flag_gems.enable(unused=[...])`` with the
  ops this platform must leave to PyTorch (``flaggems_exclusions``: a table per platform, overridable by
  ``ROBOBRAIN_FLAGGEMS_EXCLUDE``, which the serve tool fills from the config key ``flaggems_exclude``).
  Logs the exclusions and the ops FlagGems took over. When ``ROBOBRAIN_FLAGGEMS_OPS_FILE`` is set (config
  ``flaggems_ops_file``) it writes the registered op list there and asks FlagGems to record the ops that
  really run (``enable(record=True, once=True, path=<file>.calls)``); the first process writes those
  paths, later ones ``<path>.<pid>``. If flag_gems cannot be imported or has no backend for this machine
  it raises, so vLLM stops with that message instead of running without FlagGems.
* ``ROBOBRAIN_FLAGGEMS_PLATFORM``: the platform row of the table (cuda-hopper, cuda, ascend, other) when
  detection (vLLM's current_platform) should be overridden.
* ``ROBOBRAIN_PLUGIN_PROBE`` set: appends one JSON line (pid, process name, argv) to that file;
  tests use it to prove the plugin ran inside vLLM's processes.

``VLLM_PLUGINS`` (comma list) filters plugins of every group: when it is set it must name
``robobrain_flaggems`` or this never runs (the serve tool appends it when USE_FLAGGEMS is true).

Imports nothing heavy at module level (vLLM imports this in every process) and never rclpy.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys

from .flaggems_exclusions import cuda_platform, describe, resolve_exclusions

PLUGIN_NAME = 'robobrain_flaggems'
USE_ENV = 'USE_FLAGGEMS'
OPS_FILE_ENV = 'ROBOBRAIN_FLAGGEMS_OPS_FILE'
PROBE_ENV = 'ROBOBRAIN_PLUGIN_PROBE'
EXCLUDE_ENV = 'ROBOBRAIN_FLAGGEMS_EXCLUDE'
PLATFORM_ENV = 'ROBOBRAIN_FLAGGEMS_PLATFORM'

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


def detect_platform() -> str:
    """The exclusion table's platform row for this process (``$ROBOBRAIN_FLAGGEMS_PLATFORM`` wins)."""
    forced = os.environ.get(PLATFORM_ENV, '').strip()
    if forced:
        return forced
    try:
        from vllm.platforms import current_platform
    except Exception:  # noqa: BLE001  (outside a vLLM install: nothing known)
        return 'other'
    if getattr(current_platform, 'device_type', '') == 'npu':
        return 'ascend'
    if current_platform.is_cuda():
        # vLLM reads the capability through NVML: no CUDA context is created in the API server process.
        capability = current_platform.get_device_capability()
        return cuda_platform(capability.major if capability is not None else None)
    return 'other'


def _enable_kwargs(enable, excluded: list[str], record_path: str | None) -> dict:
    """Keyword arguments for this flag_gems version's enable(): record only where it is supported."""
    kwargs = {'unused': excluded}
    if record_path:
        accepted = inspect.signature(enable).parameters
        if 'record' in accepted and 'path' in accepted:
            kwargs.update(record=True, path=record_path)
            if 'once' in accepted:
                kwargs['once'] = True  # one line per op, not one per call
        else:
            logger.warning('%s: this flag_gems.enable() cannot record the ops that run', PLUGIN_NAME)
    return kwargs


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
    platform = detect_platform()
    try:
        excluded = resolve_exclusions(os.environ.get(EXCLUDE_ENV), platform)
    except ValueError as e:
        msg = f'{PLUGIN_NAME}: {EXCLUDE_ENV}: {e}'
        print(msg, file=sys.stderr, flush=True)
        raise FlagGemsUnavailable(msg) from None
    base = os.environ.get(OPS_FILE_ENV)
    record_path = _ops_path(f'{base}.calls') if base else None
    try:
        flag_gems.enable(**_enable_kwargs(flag_gems.enable, excluded, record_path))
    except Exception as e:  # noqa: BLE001
        msg = (f'{PLUGIN_NAME}: USE_FLAGGEMS is true but flag_gems.enable() failed: '
               f'{type(e).__name__}: {e}')
        print(msg, file=sys.stderr, flush=True)
        raise FlagGemsUnavailable(msg) from None
    logger.warning('%s: flag_gems %s on %s, %s', PLUGIN_NAME, getattr(flag_gems, '__version__', '?'),
                   platform, describe(platform, excluded))
    ops = []
    getter = getattr(flag_gems, 'all_registered_ops', None)
    if callable(getter):
        try:
            ops = sorted(str(o) for o in getter())
        except Exception:  # noqa: BLE001
            ops = []
    logger.warning('%s: FlagGems enabled in pid %d, %d ops taken over: %s', PLUGIN_NAME,
                   os.getpid(), len(ops), ', '.join(ops))
    if base:
        path = _ops_path(base)
        with open(path, 'w') as f:
            f.write('\n'.join(ops) + ('\n' if ops else ''))
        logger.warning('%s: op list written to %s%s', PLUGIN_NAME, path,
                       f'; ops that run are recorded in {record_path}' if record_path else '')
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
