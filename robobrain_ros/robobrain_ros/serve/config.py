"""Serve config: FlagScale's serve YAML plus ``platform``, ``env`` and a few options.

Two shapes are accepted:

* FlagScale's own (the seed's ``32b.yaml``): a list of entries
  ``{serve_id, engine: vllm, engine_args: {...}}``;
* a mapping with that list under ``serve`` and the extra top-level keys of ``TOP_KEYS``.

Strings may use ``${VAR}`` / ``${VAR:-default}`` (environment expansion) and a leading ``~``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any

PLATFORMS = ('auto', 'ascend', 'cuda', 'cpu')
DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8000
DEFAULT_STARTUP_TIMEOUT = 900.0
TRUE_STRINGS = ('1', 'true', 'yes', 'on')

# Top-level keys of the mapping form, with what they mean (used in error messages).
TOP_KEYS = {
    'serve': 'list of FlagScale serve entries (exactly one is started)',
    'platform': 'auto | ascend | cuda | cpu',
    'python': 'interpreter of the vLLM install (else $ROBOBRAIN_VLLM_PYTHON, else this one)',
    'env': 'environment variables for the server (mapping)',
    'api_key': 'API key the server requires (given to vLLM as VLLM_API_KEY; clients send it too)',
    'startup_timeout': 'seconds to wait for /health',
    'reserved_cpus': "CPUs kept for the robot's own processes: the server is pinned to the others (0 = all)",
    'flaggems_ops_file': 'where the FlagGems plugin records the ops it took over (and <file>.calls: the ops that ran)',
    'flaggems_exclude': 'FlagGems ops left to PyTorch: default | none | list of ops (-op drops one from the default)',
}
ENTRY_KEYS = {
    'serve_id': 'name of the entry',
    'engine': 'must be vllm',
    'engine_args': 'vLLM options, FlagScale style (model, port, enforce_eager, ...)',
    'resources': 'FlagScale resources (ignored: one local server)',
}


class ConfigError(ValueError):
    """A config that cannot be used; the message says what to change."""


@dataclasses.dataclass
class ServeEntry:
    serve_id: str
    engine_args: dict[str, Any]
    engine: str = 'vllm'

    @property
    def model(self) -> str:
        return str(self.engine_args['model'])

    @property
    def host(self) -> str:
        return str(self.engine_args.get('host') or DEFAULT_HOST)

    @property
    def port(self) -> int:
        return int(self.engine_args.get('port') or DEFAULT_PORT)

    @property
    def served_model_name(self) -> str:
        name = self.engine_args.get('served_model_name')
        if isinstance(name, (list, tuple)):
            name = name[0] if name else None
        return str(name) if name else self.model


@dataclasses.dataclass
class ServeConfig:
    entries: list[ServeEntry]
    platform: str = 'auto'
    python: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    api_key: str | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    reserved_cpus: int = 0
    flaggems_ops_file: str | None = None
    flaggems_exclude: str | None = None   # a comma list, as flaggems_exclusions reads it; None = default
    source: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def entry(self, serve_id: str | None = None) -> ServeEntry:
        if serve_id is None:
            if len(self.entries) != 1:
                ids = ', '.join(e.serve_id for e in self.entries)
                raise ConfigError(f'the config has {len(self.entries)} serve entries ({ids}); '
                                  'pick one with --serve-id')
            return self.entries[0]
        for e in self.entries:
            if e.serve_id == serve_id:
                return e
        raise ConfigError(f'no serve entry with serve_id {serve_id!r}; have: '
                          + ', '.join(e.serve_id for e in self.entries))


def connect_url(host: str, port: int) -> str:
    """http://host:port of a server listening on host:port, as a client on this machine reaches it."""
    h = {'0.0.0.0': '127.0.0.1', '::': '::1', '': '127.0.0.1'}.get(host, host)   # "all interfaces": loopback
    return f'http://{"[" + h + "]" if ":" in h else h}:{port}'


def closest(key: str, valid, n: int = 3) -> list[str]:
    return difflib.get_close_matches(key, list(valid), n=n, cutoff=0.6)


def unknown_key_message(where: str, key: str, valid) -> str:
    hint = closest(key, valid)
    msg = f'unknown key {key!r} in {where}'
    if hint:
        msg += '; did you mean ' + ' or '.join(repr(h) for h in hint) + '?'
    return msg


_VAR = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}')


def expand(value: str, missing: list[str]) -> str:
    """Expand ${VAR} and ${VAR:-default}; unset names without a default go to ``missing``."""
    def sub(m):
        name, default = m.group(1), m.group(2)
        if name in os.environ and os.environ[name] != '':
            return os.environ[name]
        if default is not None:
            return default
        missing.append(name)
        return m.group(0)
    out = _VAR.sub(sub, value)
    return os.path.expanduser(out) if out.startswith('~') else out


def _expand_tree(obj, missing):
    if isinstance(obj, str):
        return expand(obj, missing)
    if isinstance(obj, list):
        return [_expand_tree(v, missing) for v in obj]
    if isinstance(obj, dict):
        return {k: _expand_tree(v, missing) for k, v in obj.items()}
    return obj


def env_value(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ConfigError(f'env.{name} must be a string, number or boolean, got '
                      f'{type(value).__name__}')


def parse(data: Any, source: str | None = None) -> ServeConfig:
    """Check the structure of loaded YAML data and build a ServeConfig (engine_args unchecked)."""
    where = source or 'config'
    if isinstance(data, list):
        top: dict[str, Any] = {'serve': data}
    elif isinstance(data, dict):
        top = dict(data)
    else:
        raise ConfigError(f'{where}: expected a list of serve entries or a mapping, got '
                          f'{type(data).__name__}')
    for key in top:
        if key not in TOP_KEYS:
            raise ConfigError(f'{where}: ' + unknown_key_message('the config', str(key), TOP_KEYS))
    missing: list[str] = []
    top = _expand_tree(top, missing)
    serve = top.get('serve')
    if not isinstance(serve, list) or not serve:
        raise ConfigError(f"{where}: 'serve' must be a non-empty list of entries with serve_id, "
                          'engine and engine_args')
    entries = []
    for i, raw in enumerate(serve):
        if not isinstance(raw, dict):
            raise ConfigError(f'{where}: serve entry {i} must be a mapping, '
                              f'got {type(raw).__name__}')
        for key in raw:
            if key not in ENTRY_KEYS:
                raise ConfigError(f'{where}: ' + unknown_key_message(f'serve entry {i}', str(key),
                                                                     ENTRY_KEYS))
        engine = raw.get('engine', 'vllm')
        if engine != 'vllm':
            raise ConfigError(f'{where}: serve entry {i}: engine {engine!r} is not supported '
                              "(only 'vllm')")
        args = raw.get('engine_args')
        if not isinstance(args, dict):
            raise ConfigError(f'{where}: serve entry {i}: engine_args must be a mapping')
        if not args.get('model') or not isinstance(args.get('model'), str):
            raise ConfigError(f'{where}: serve entry {i}: engine_args.model (path or hub id of '
                              'the weights) is required and must be a string')
        for k in args:
            if not isinstance(k, str):
                raise ConfigError(f'{where}: engine_args key {k!r} must be a string')
        sid = raw.get('serve_id', f'serve_{i}')
        entries.append(ServeEntry(serve_id=str(sid), engine_args=dict(args), engine='vllm'))

    platform = top.get('platform', 'auto')
    if platform not in PLATFORMS:
        raise ConfigError(f'{where}: platform must be one of {", ".join(PLATFORMS)}, '
                          f'got {platform!r}')
    env = top.get('env') or {}
    if not isinstance(env, dict):
        raise ConfigError(f'{where}: env must be a mapping of NAME: value')
    env = {str(k): env_value(v, str(k)) for k, v in env.items()}
    python = top.get('python')
    if python is not None and not isinstance(python, str):
        raise ConfigError(f'{where}: python must be a path string')
    api_key = top.get('api_key')
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f'{where}: api_key must be a string')
    timeout = top.get('startup_timeout', DEFAULT_STARTUP_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f'{where}: startup_timeout must be a positive number of seconds, '
                          f'got {timeout!r}')
    reserved = top.get('reserved_cpus', 0)
    if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
        raise ConfigError(f'{where}: reserved_cpus must be a whole number of CPUs (0 or more), got {reserved!r}')
    ops = top.get('flaggems_ops_file')
    if ops is not None and not isinstance(ops, str):
        raise ConfigError(f'{where}: flaggems_ops_file must be a path string')
    exclude = top.get('flaggems_exclude')
    if isinstance(exclude, list) and all(isinstance(op, str) for op in exclude):
        exclude = ','.join(exclude)
    if exclude is not None and not isinstance(exclude, str):
        raise ConfigError(f'{where}: flaggems_exclude must be default, none, or a list of op names')
    cfg = ServeConfig(entries=entries, platform=platform, python=python, env=env,
                      api_key=api_key or None, startup_timeout=float(timeout), reserved_cpus=reserved,
                      flaggems_ops_file=ops, flaggems_exclude=exclude, source=source)
    for name in dict.fromkeys(missing):
        cfg.warnings.append(f'${{{name}}} is used in {where} but {name} is not set')
    return cfg


def load(path: str | os.PathLike) -> ServeConfig:
    import yaml
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f'cannot read config {p}: {e.strerror or e}') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f'{p}: not valid YAML: {e}') from None
    return parse(data, str(p))


def resolve_path(name: str) -> Path:
    """A path, or a name of a shipped config (``cpu_smoke`` / ``cpu_smoke.yaml``)."""
    p = Path(name).expanduser()
    if p.exists() or os.sep in name:
        return p
    candidates = []
    fname = name if name.endswith(('.yaml', '.yml')) else name + '.yaml'
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('robobrain_ros')) / 'config' / 'serve')
    except Exception:  # noqa: BLE001 - no ament index (plain pip / source tree)
        pass
    candidates.append(Path(__file__).resolve().parents[2] / 'config' / 'serve')
    for d in candidates:
        if (d / fname).is_file():
            return d / fname
    return p


def truthy(value: str | None) -> bool:
    return (value or '').strip().lower() in TRUE_STRINGS
