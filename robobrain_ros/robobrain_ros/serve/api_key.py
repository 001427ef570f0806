"""The server's API key: where it comes from, how vLLM gets it, and keeping it out of what is printed.

vLLM reads its key from ``--api-key`` or from the environment variable ``VLLM_API_KEY``. A command line is
visible to every user of the machine (``ps``, /proc/<pid>/cmdline) and is what this tool prints, so the key
always travels in the environment, whichever way the config names it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .config import ConfigError

API_KEY_ENV = 'ROBOBRAIN_API_KEY'     # read by the serve tool and, by default, by the brain node
VLLM_API_KEY_ENV = 'VLLM_API_KEY'     # what vLLM reads (same effect as --api-key)
REDACTED = '***'


def take_api_key(config_key: str | None, engine_args: Mapping[str, Any],
                 environ: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """(the key or None, engine_args without ``api_key``).

    Sources, first found wins: the config's top-level ``api_key``, ``engine_args.api_key`` (FlagScale style; it
    never becomes ``--api-key``), ``$ROBOBRAIN_API_KEY``. Both config forms may use ``${VAR}``. Two different keys
    in the config, or several keys in ``engine_args.api_key`` (VLLM_API_KEY holds one), are errors.
    """
    rest = dict(engine_args)
    from_args = rest.pop('api_key', None)
    if isinstance(from_args, list):
        if len(from_args) > 1:
            raise ConfigError(f'engine_args.api_key lists {len(from_args)} keys; the server gets its key through '
                              f'{VLLM_API_KEY_ENV}, which holds one')
        from_args = from_args[0] if from_args else None
    if from_args is not None and not isinstance(from_args, str):
        raise ConfigError(f'engine_args.api_key must be a string, got {type(from_args).__name__}')
    if config_key and from_args and config_key != from_args:
        raise ConfigError('the config names two different API keys (api_key and engine_args.api_key); keep one')
    key = config_key or from_args or environ.get(API_KEY_ENV) or None
    return key, rest


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """text with every occurrence of each secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
