"""A copy of the tiny model with noise on every weight: a candidate that must fail the consistency gate.

Run with the vLLM venv's Python (it has torch and safetensors)::

    python robobrain_ros/test/perturbed_model.py --source DIR --out DIR --scale 0.1

Each floating-point tensor w becomes w + scale * rms(w) * N(0, 1) from a fixed seed, so the noise is the same
fraction of every tensor whatever its initialisation (RMSNorm weights of ones included) and the same scale writes
the same files. Everything but model.safetensors is copied unchanged: tokenizer, template and processor stay
identical, so both servers tokenize the same prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

SEED = 4242
WEIGHTS = 'model.safetensors'
MARKER = 'robobrain_perturbed_model.json'


def perturb(source: Path, out: Path, scale: float) -> Path:
    """Write the perturbed copy to out (left alone when it already holds this source and scale)."""
    import torch
    from safetensors.torch import load_file, save_file

    # The source's weights are part of the key: a rebuilt tiny model must not leave a stale copy in use.
    source_sha256 = hashlib.sha256((source / WEIGHTS).read_bytes()).hexdigest()
    marker = {'source_sha256': source_sha256, 'scale': scale, 'seed': SEED}
    try:
        if json.loads((out / MARKER).read_text()) == marker:
            return out
    except (OSError, ValueError):
        pass
    tmp = out.with_name(out.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(WEIGHTS, '*.lock'))
    generator = torch.Generator().manual_seed(SEED)
    tensors = load_file(str(source / WEIGHTS))
    for name in sorted(tensors):
        weight = tensors[name]
        if weight.is_floating_point():
            rms = weight.float().pow(2).mean().sqrt()
            noise = torch.randn(weight.shape, generator=generator) * (scale * rms)
            tensors[name] = (weight.float() + noise).to(weight.dtype)
    save_file(tensors, str(tmp / WEIGHTS), metadata={'format': 'pt'})
    (tmp / MARKER).write_text(json.dumps(marker) + '\n')
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='perturbed_model.py',
                                     description='Copy a model folder with Gaussian noise on its weights.')
    parser.add_argument('--source', required=True, type=Path, help='model folder to copy')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--scale', required=True, type=float, help='noise standard deviation / weight RMS')
    args = parser.parse_args(argv)
    print(perturb(args.source, args.out, args.scale))
    return 0


if __name__ == '__main__':
    sys.exit(main())
