"""``ros2 run robobrain_ros serve`` / ``python -m robobrain_ros.serve``: start the vLLM server.

Exit codes: 0 stopped on request (SIGINT/SIGTERM) or dry-run done; 1 the server failed to
start or died; 2 the config or the command line is wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time

from . import command as cmdmod
from .api_key import VLLM_API_KEY_ENV, redact, take_api_key
from .config import ConfigError, ServeConfig, connect_url, load, resolve_path, truthy
from .flaggems_exclusions import ExclusionSpecError, cuda_platform, describe, resolve_exclusions
from .flaggems_plugin import EXCLUDE_ENV, OPS_FILE_ENV, PLATFORM_ENV
from .platform import PLUGIN_NAME, choose_python, probe, resolve_platform
from .supervisor import StartupError, Supervisor, allowed_cpus, cpu_list, port_in_use, server_cpus

PROG = 'robobrain_ros.serve'


# Secrets (the API key) replaced by *** in everything this tool prints; filled once the config is read.
_SECRETS: set[str] = set()


def _say(msg: str) -> None:
    print(redact(f'{PROG}: {msg}', _SECRETS), file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='serve', description='Start the vLLM server for robobrain_ros from a serve YAML '
        '(FlagScale format + platform/env).')
    p.add_argument('--config', required=True,
                   help='serve YAML: a path or a shipped name (cpu_smoke, robobrain2_7b_cuda, ...)')
    p.add_argument('--serve-id', help='entry to start when the config has several')
    p.add_argument('--platform', choices=('auto', 'ascend', 'cuda', 'cpu'),
                   help='override the config platform')
    p.add_argument('--python', help='interpreter of the vLLM install (overrides config python '
                   'and $ROBOBRAIN_VLLM_PYTHON)')
    p.add_argument('--model', help='override engine_args.model')
    p.add_argument('--host', help='override engine_args.host (default 127.0.0.1)')
    p.add_argument('--port', type=int, help='override engine_args.port')
    p.add_argument('--timeout', type=float, help='seconds to wait for /health '
                   '(default: config startup_timeout, 900)')
    p.add_argument('--log-file', help='write the server output here instead of this terminal')
    p.add_argument('--ready-file', help='write {"base_url", "pid", ...} as JSON here once healthy')
    p.add_argument('--dry-run', action='store_true',
                   help='print the exact command and environment, start nothing')
    return p


def _strip_ros_args(argv: list[str]) -> list[str]:
    if '--ros-args' in argv:  # ros2 run / launch append these
        i = argv.index('--ros-args')
        rest = argv[i + 1:]
        end = rest.index('--') + 1 if '--' in rest else len(rest)
        argv = argv[:i] + rest[end:]
    return argv


class Plan:
    """Everything decided before starting: the argv, the environment and what to check."""

    def __init__(self, cfg: ServeConfig, args: argparse.Namespace):
        self.cfg = cfg
        self.warnings = list(cfg.warnings)
        entry = cfg.entry(args.serve_id)
        # The key leaves engine_args here: it reaches vLLM as VLLM_API_KEY, never as --api-key (see api_key.py).
        self.api_key, engine_args = take_api_key(cfg.api_key, entry.engine_args, os.environ)
        entry = dataclasses.replace(entry, engine_args=engine_args)
        self.entry = cmdmod.with_defaults(entry, host=args.host, port=args.port, model=args.model)
        self.python, self.python_origin = choose_python(args.python, cfg.python)
        requested = args.platform or cfg.platform
        self.env_added = dict(cfg.env)
        use_flaggems = truthy(self.env_added.get('USE_FLAGGEMS', os.environ.get('USE_FLAGGEMS')))
        self.use_flaggems = use_flaggems
        self.flaggems_excluded: list[str] = []
        self.flaggems_summary = ''
        self.probe = probe(self.python, flaggems=use_flaggems and not args.dry_run) \
            if os.path.exists(self.python) else None
        if self.probe is None:
            self.warnings.append(f'server interpreter {self.python} ({self.python_origin}) '
                                 'does not exist on this machine')
        elif not self.probe.ok:
            self.warnings.append(self.probe.error)
        if requested == 'auto' and args.dry_run and not (self.probe and self.probe.ok):
            self.warnings.append('platform auto cannot be detected here; showing the cpu form')
            self.platform, self.platform_origin = 'cpu', 'guess'
        else:
            self.platform = resolve_platform(requested, self.probe)
            self.platform_origin = 'detected' if requested == 'auto' else 'config/--platform'
        has_vllm = bool(self.probe and self.probe.ok and self.probe.info.get('vllm'))
        self.table = cmdmod.vllm_options(self.python) if has_vllm else None
        if self.table is None:
            self.table = cmdmod.builtin_table()
        self.warnings += cmdmod.validate(self.entry, self.table)
        self._env()
        self.argv = cmdmod.build_command(self.entry, self.platform, self.python, self.table)
        self.cpus, problem = server_cpus(cfg.reserved_cpus, allowed_cpus())
        if problem:
            self.warnings.append(problem)

    def _env(self) -> None:
        add = self.env_added
        if self.use_flaggems:
            plugins = add.get('VLLM_PLUGINS', os.environ.get('VLLM_PLUGINS'))
            if plugins is not None:
                names = [n.strip() for n in plugins.split(',') if n.strip()]
                if PLUGIN_NAME not in names:
                    add['VLLM_PLUGINS'] = ','.join(names + [PLUGIN_NAME])
                    self.warnings.append(
                        f'USE_FLAGGEMS is true and VLLM_PLUGINS={plugins!r} would skip the '
                        f'{PLUGIN_NAME} plugin: using VLLM_PLUGINS={add["VLLM_PLUGINS"]!r}')
            self._flaggems_exclusions()
        if self.cfg.flaggems_ops_file:
            add[OPS_FILE_ENV] = self.cfg.flaggems_ops_file
        if self.api_key:
            add[VLLM_API_KEY_ENV] = self.api_key  # vLLM's --api-key, kept out of the process table

    def _flaggems_exclusions(self) -> None:
        """Hand the config's flaggems_exclude to the plugin and say what it resolves to on this machine.

        $ROBOBRAIN_FLAGGEMS_EXCLUDE of the calling environment wins over the config: a per-run override
        of a shipped config. The plugin resolves the same spec with the same table inside vLLM."""
        add = self.env_added
        spec = os.environ.get(EXCLUDE_ENV)
        if spec is not None:
            if self.cfg.flaggems_exclude is not None or EXCLUDE_ENV in add:
                self.warnings.append(f'{EXCLUDE_ENV}={spec!r} from the environment overrides the config')
            add[EXCLUDE_ENV] = spec
        elif EXCLUDE_ENV not in add and self.cfg.flaggems_exclude is not None:
            add[EXCLUDE_ENV] = self.cfg.flaggems_exclude
        spec = add.get(EXCLUDE_ENV)
        platform = add.get(PLATFORM_ENV) or os.environ.get(PLATFORM_ENV) or self._flaggems_platform()
        try:
            self.flaggems_excluded = resolve_exclusions(spec, platform)
        except ExclusionSpecError as e:
            raise ConfigError(f'flaggems_exclude / {EXCLUDE_ENV}: {e}') from None
        self.flaggems_summary = f'FlagGems on {platform}: {describe(platform, self.flaggems_excluded)}'

    def _flaggems_platform(self) -> str:
        if self.platform == 'ascend':
            return 'ascend'
        if self.platform == 'cuda':
            return cuda_platform(self.probe.cuda_capability_major if self.probe and self.probe.ok else None)
        return 'other'

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env_added)
        return env

    @property
    def root_url(self) -> str:
        return connect_url(self.entry.host, self.entry.port)

    def model_path_problem(self) -> str | None:
        m = self.entry.model
        if '${' in m:
            return f'engine_args.model {m!r} uses an unset environment variable'
        looks_local = m.startswith(('/', './', '../', '~')) or os.path.isabs(m)
        if looks_local and not os.path.exists(os.path.expanduser(m)):
            return f'model path {m} does not exist on this machine'
        return None

    def dry_run_text(self) -> str:
        lines = [f'# serve_id: {self.entry.serve_id}',
                 f'# platform: {self.platform} ({self.platform_origin})',
                 f'# python: {self.python} ({self.python_origin})',
                 f'# engine_args checked against: {self.table.source}',
                 f'# health: {self.root_url}/health',
                 f'# CPUs: {cpu_list(self.cpus) if self.cpus else "all"} '
                 f'(reserved_cpus: {self.cfg.reserved_cpus})',
                 '# environment (added to the current one):']
        for k, v in self.env_added.items():
            lines.append(f'{k}={cmdmod.shlex.quote(v)}')
        if self.flaggems_summary:
            lines.append(f'# {self.flaggems_summary}')
        lines.append('# command:')
        lines.append(cmdmod.shell_line(self.argv))
        return redact('\n'.join(lines), [self.api_key])   # never print the key


def main(argv: list[str] | None = None) -> int:
    argv = _strip_ros_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        cfg = load(resolve_path(args.config))
        plan = Plan(cfg, args)
    except ConfigError as e:
        _say(f'error: {e}')
        return 2
    if plan.api_key:
        _SECRETS.add(plan.api_key)
    problem = plan.model_path_problem()
    if args.dry_run:
        for w in plan.warnings + ([problem] if problem else []):
            _say(f'warning: {w}')
        print(plan.dry_run_text(), flush=True)
        return 0
    for w in plan.warnings:
        _say(f'warning: {w}')
    if problem:
        _say(f'error: {problem}')
        return 2
    if not (plan.probe and plan.probe.ok):
        _say(f'error: cannot run the server interpreter {plan.python} ({plan.python_origin}); '
             f'set --python, config python or ${"ROBOBRAIN_VLLM_PYTHON"}')
        return 2
    if not plan.probe.info.get('vllm'):
        _say(f'error: vllm is not importable with {plan.python} ({plan.python_origin})')
        return 2
    if plan.use_flaggems:
        info = plan.probe.info
        if PLUGIN_NAME not in info.get('general_plugins', []):
            _say(f'error: USE_FLAGGEMS is true but the {PLUGIN_NAME} vLLM plugin is not '
                 f'installed for {plan.python}; run: {plan.python} -m pip install --no-deps '
                 './robobrain_ros')
            return 2
        if 'flag_gems_error' in info:
            _say('error: USE_FLAGGEMS is true but FlagGems cannot run here: import flag_gems '
                 f'failed with {info["flag_gems_error"]} (python {plan.python}); install the '
                 'flag_gems build for this platform or set USE_FLAGGEMS=false')
            return 1
    if port_in_use(plan.entry.host, plan.entry.port):
        _say(f'error: port {plan.entry.port} on {plan.entry.host} is already in use; '
             'stop what listens there or choose another port (--port)')
        return 1

    timeout = args.timeout or cfg.startup_timeout
    headers = {'Authorization': f'Bearer {plan.api_key}'} if plan.api_key else {}
    sup = Supervisor(plan.argv, plan.env, plan.root_url + '/health', log_path=args.log_file,
                     headers=headers, out=_say, cpus=plan.cpus)
    stop = {'sig': None}

    def on_signal(signum, _frame):
        stop['sig'] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    if plan.flaggems_summary:
        _say(plan.flaggems_summary)
    _say(f'starting {plan.platform} server: {cmdmod.shell_line(plan.argv)}')
    t0 = time.monotonic()
    # Only a ready file this run wrote is removed at the end: one already there (another run's, or a path given
    # by mistake) is not ours to delete.
    wrote_ready_file = False
    sup.start()
    try:
        try:
            sup.wait_ready(timeout, should_stop=lambda: stop['sig'] is not None)
        except StartupError as e:
            if stop['sig'] is None:
                _say(f'error: {e}')
                return 1
        if stop['sig'] is None:
            ready = {'base_url': plan.root_url + '/v1', 'root_url': plan.root_url,
                     'model': plan.entry.served_model_name, 'pid': sup.pid,
                     'startup_s': round(time.monotonic() - t0, 1)}
            if args.ready_file:
                with open(args.ready_file, 'w') as f:
                    wrote_ready_file = True   # ours from here on, even if writing it fails half way
                    json.dump(ready, f)
            _say(f'READY {plan.root_url}/v1 model={ready["model"]} pid={sup.pid} '
                 f'after {ready["startup_s"]} s')
        while stop['sig'] is None:
            rc = sup.poll()
            if rc is not None:
                _say(f'error: the server exited with code {rc}')
                return 1
            time.sleep(0.5)
        _say(f'got {signal.Signals(stop["sig"]).name}; stopping the server')
        return 0
    finally:
        sup.stop(first_signal=stop['sig'] or signal.SIGTERM)
        if wrote_ready_file:
            try:
                os.unlink(args.ready_file)
            except OSError:
                pass
        for s, h in old.items():
            signal.signal(s, h)


if __name__ == '__main__':
    sys.exit(main())
