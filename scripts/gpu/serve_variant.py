#!/usr/bin/env python3
"""Write a benchmark serve YAML derived from the shipped robobrain2_{7b,32b}_cuda.yaml (so they stay in sync).

A variant is `[ARCH_]NAME`: ARCH is 7b (no prefix) or 32b, NAME one of
  native (alias default)  vLLM's own CUDA kernels, CUDA graphs;
  eager                   native without CUDA graphs / torch.compile (enforce_eager);
  flaggems                USE_FLAGGEMS=true, the plugin's default exclusions for this platform, CUDA graphs;
  flaggems_none           flaggems with env ROBOBRAIN_FLAGGEMS_EXCLUDE=none: FlagGems takes every op it has;
  flaggems_eager          flaggems without CUDA graphs (FlagScale's recommendation).
--exclude LIST sets ROBOBRAIN_FLAGGEMS_EXCLUDE to LIST for any flaggems variant (e.g. what flaggems_diag.py
suggests, or `default,mm`).

Changes against the shipped file, each printed and written as a comment into the YAML:
  all        load_format: robobrain_seeded (--load-format; the plugin's seeded weights of realistic scale, the
             same in every server, so a native and a FlagGems server can be compared; `dummy` is vLLM's
             uniform +-1e-3 weights, useless for consistency); max_num_seqs: 32 (FlagScale's 8 would queue 32
             concurrent goals inside vLLM); tensor_parallel_size: 1 (one GPU);
  32b        from robobrain2_32b_cuda.yaml (the seed's entry: gpu_memory_utilization 0.9, max_model_len 32768,
             max_num_seqs 32) with tensor_parallel_size 1 and data_parallel_size 1 (one H200: 67 GB of bf16
             weights of 127 GB leave room for a KV cache of 262 KB a token, over 100k tokens);
  flaggems*  env USE_FLAGGEMS=true and flaggems_ops_file (the robobrain_flaggems vLLM plugin enables FlagGems in
             every vLLM process and writes the op list in effect, one file per process).

    python3 scripts/gpu/serve_variant.py --variant 32b_flaggems --ops-file /tmp/ops.txt --out /tmp/v.yaml
    python3 scripts/gpu/serve_variant.py --list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'robobrain_ros/config/serve'
NAMES = ('native', 'default', 'eager', 'flaggems', 'flaggems_none', 'flaggems_eager')
ARCHS = {   # arch: (shipped config, served model name)
    '7b': (CONFIGS / 'robobrain2_7b_cuda.yaml', 'RoboBrain2.0-7B'),
    '32b': (CONFIGS / 'robobrain2_32b_cuda.yaml', 'RoboBrain2.0-32B'),
}
EXCLUDE_ENV = 'ROBOBRAIN_FLAGGEMS_EXCLUDE'


def split(variant: str) -> tuple[str, str]:
    """'32b_flaggems' -> ('32b', 'flaggems'); 'flaggems' -> ('7b', 'flaggems')."""
    arch, _, rest = variant.partition('_')
    if arch in ARCHS and rest:
        name = rest
    else:
        arch, name = '7b', variant
    if name not in NAMES:
        raise ValueError(f'unknown variant {variant!r}: [7b_|32b_]{{{",".join(NAMES)}}}')
    return arch, 'native' if name == 'default' else name


def served_model_name(variant: str) -> str:
    return ARCHS[split(variant)[0]][1]


def variant(name: str, ops_file: str | None, max_num_seqs: int, load_format: str = 'robobrain_seeded',
            exclude: str | None = None) -> tuple[dict, list[str]]:
    arch, kind = split(name)
    shipped, served = ARCHS[arch]
    cfg = yaml.safe_load(shipped.read_text())
    entry = cfg['serve'][0]
    args = entry['engine_args']
    notes = []

    def put(key, value):
        old = args.get(key, '(unset)')
        args[key] = value
        notes.append(f'engine_args.{key}: {old} -> {value}')

    put('load_format', load_format)
    put('max_num_seqs', max_num_seqs)
    put('tensor_parallel_size', 1)
    if 'data_parallel_size' in args:
        put('data_parallel_size', 1)
    if args.get('served_model_name') != served:
        raise ValueError(f"{shipped.name} serves {args.get('served_model_name')!r}, expected {served!r}")
    if 'eager' in kind:
        put('enforce_eager', True)
    env = cfg.setdefault('env', {})
    if kind.startswith('flaggems'):
        env['USE_FLAGGEMS'] = True
        notes.append('env.USE_FLAGGEMS: true')
        if exclude is None and kind == 'flaggems_none':
            exclude = 'none'
        if exclude is not None:
            env[EXCLUDE_ENV] = exclude
            notes.append(f'env.{EXCLUDE_ENV}: {exclude}')
        else:
            notes.append(f"FlagGems exclusions: the plugin's platform default ({EXCLUDE_ENV} unset)")
        if ops_file:
            cfg['flaggems_ops_file'] = ops_file
            notes.append(f'flaggems_ops_file: {ops_file}')
    else:
        env['USE_FLAGGEMS'] = False
        if cfg.pop('flaggems_ops_file', None):
            notes.append('flaggems_ops_file: removed (no FlagGems)')
    return cfg, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variant', help='[7b_|32b_]' + '|'.join(NAMES))
    parser.add_argument('--ops-file')
    parser.add_argument('--max-num-seqs', type=int, default=32)
    parser.add_argument('--load-format', default='robobrain_seeded',
                        help="robobrain_seeded (the plugin's seeded weights) or dummy (vLLM's)")
    parser.add_argument('--exclude', help=f'{EXCLUDE_ENV} for flaggems variants (default: the plugin decides)')
    parser.add_argument('--out', type=Path)
    parser.add_argument('--served-name', action='store_true', help='print the served model name and exit')
    parser.add_argument('--list', action='store_true', help='print every variant name and exit')
    args = parser.parse_args(argv)
    if args.list:
        print(' '.join((f'{a}_' if a != '7b' else '') + n for a in ARCHS for n in NAMES if n != 'default'))
        return 0
    if not args.variant:
        parser.error('--variant is required')
    try:
        split(args.variant)
    except ValueError as e:
        parser.error(str(e))
    if args.served_name:
        print(served_model_name(args.variant))
        return 0
    if not args.out:
        parser.error('--out is required')
    cfg, notes = variant(args.variant, args.ops_file, args.max_num_seqs, args.load_format, args.exclude)
    args.out.write_text(f'# {args.variant}: generated from {ARCHS[split(args.variant)[0]][0].name} '
                        'by scripts/gpu/serve_variant.py\n'
                        + ''.join(f'#   {n}\n' for n in notes) + yaml.safe_dump(cfg, sort_keys=False))
    print(f'{args.out}: ' + '; '.join(notes))
    return 0


if __name__ == '__main__':
    sys.exit(main())
