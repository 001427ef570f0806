#!/usr/bin/env python3
"""Write a benchmark serve YAML derived from the shipped robobrain2_7b_cuda.yaml (so they stay in sync).

Changes for the benchmark, each printed:
  all        load_format: dummy (random weights: the model folder has no checkpoint);
             max_num_seqs: 32 (FlagScale's 8 would queue 32 concurrent goals inside vLLM);
  eager      enforce_eager: true (no CUDA graphs, no torch.compile);
  flaggems   env USE_FLAGGEMS=true and flaggems_ops_file (the robobrain_flaggems vLLM plugin enables FlagGems
             in every vLLM process and writes the op list it took over, one file per process);
  flaggems_eager = flaggems + eager (FlagScale's recommendation); flaggems_graphs = flaggems with CUDA graphs.

    python3 scripts/gpu/serve_variant.py --variant flaggems_eager --ops-file /tmp/ops.txt --out /tmp/v.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / 'robobrain_ros/config/serve/robobrain2_7b_cuda.yaml'
VARIANTS = ('default', 'eager', 'flaggems_eager', 'flaggems_graphs')


def variant(name: str, ops_file: str | None, max_num_seqs: int) -> tuple[dict, list[str]]:
    cfg = yaml.safe_load(SHIPPED.read_text())
    args = cfg['serve'][0]['engine_args']
    notes = []

    def put(key, value):
        old = args.get(key, '(unset)')
        args[key] = value
        notes.append(f'engine_args.{key}: {old} -> {value}')

    put('load_format', 'dummy')
    put('max_num_seqs', max_num_seqs)
    if 'eager' in name:
        put('enforce_eager', True)
    if name.startswith('flaggems'):
        cfg.setdefault('env', {})['USE_FLAGGEMS'] = True
        notes.append('env.USE_FLAGGEMS: true')
        if ops_file:
            cfg['flaggems_ops_file'] = ops_file
            notes.append(f'flaggems_ops_file: {ops_file}')
    else:
        cfg.setdefault('env', {})['USE_FLAGGEMS'] = False
    return cfg, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variant', choices=VARIANTS, required=True)
    parser.add_argument('--ops-file')
    parser.add_argument('--max-num-seqs', type=int, default=32)
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)
    cfg, notes = variant(args.variant, args.ops_file, args.max_num_seqs)
    args.out.write_text(f'# {args.variant}: generated from {SHIPPED.name} by scripts/gpu/serve_variant.py\n'
                        + ''.join(f'#   {n}\n' for n in notes) + yaml.safe_dump(cfg, sort_keys=False))
    print(f'{args.out}: ' + '; '.join(notes))
    return 0


if __name__ == '__main__':
    sys.exit(main())
