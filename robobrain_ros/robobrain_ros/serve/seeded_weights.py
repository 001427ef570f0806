"""vLLM load format ``robobrain_seeded``: random weights of a realistic scale, the same in every server.

Comparing two backends (native CUDA vs FlagGems) needs both to run the same weights. vLLM's
``--load-format dummy`` draws them uniform in +-1e-3: every next-token distribution is then almost
uniform (all log-probabilities within 3e-5 of -ln(vocab)), so a broken kernel and a harmless rounding
difference look alike (../shared/FLAGGEMS.md). Real checkpoints of the 7B and 32B architectures are 16
and 64 GB, too large to ship to a GPU machine for a check. This loader draws each parameter from
N(0, std) (std 0.02, a trained transformer's scale; 1-D weights of norm layers from N(1, std)), seeded
from the parameter's name, so any two servers of the same architecture and tensor-parallel layout load
identical weights and the logits spread over several nats.

The numbers are drawn on the CPU with numpy, scaled and converted to the parameter's dtype in
parallel chunks, then copied to the device: a GPU generator would run through whatever kernels
replace aten's (FlagGems has its own ``normal_``) and the two servers would no longer share their
weights.

Registered by the ``vllm.general_plugins`` entry point ``robobrain_seeded_weights`` (setup.py); use
``--load-format robobrain_seeded`` and optionally ``--model-loader-extra-config '{"seed": 0, "std": 0.02}'``.
Nothing heavy is imported until vLLM asks for the loader.
"""

from __future__ import annotations

import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

LOAD_FORMAT = 'robobrain_seeded'
DEFAULT_STD = 0.02
CHUNK = 1 << 24   # numbers per numpy generator: chunks are drawn in parallel (numpy releases the GIL)


def parameter_seed(seed: int, name: str, chunk: int) -> list[int]:
    """The numpy seed sequence of one chunk of one parameter: independent of load order and process."""
    return [seed, zlib.crc32(name.encode()), chunk]


def is_norm_weight(name: str, ndim: int) -> bool:
    """1-D weights of normalisation layers start near 1 (a gain near 0 would silence the layer)."""
    parts = name.split('.')
    module = parts[-2] if len(parts) > 1 else ''
    return ndim == 1 and parts[-1] == 'weight' and ('norm' in module or module.startswith('ln'))


def default_workers() -> int:
    """One drawing thread per CPU this process may run on (numpy and torch release the GIL while filling)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1))


def draw_chunk(part, name: str, chunk: int, seed: int, std: float, mean: float) -> None:
    """Fill ``part`` (float32, chunk ``chunk`` of parameter ``name``) with N(mean, std) numbers.

    Scaling chunk by chunk gives the same float32 numbers as scaling the whole parameter at once
    (elementwise), and runs in the drawing threads instead of one pass on one core.
    """
    import numpy as np

    np.random.default_rng(parameter_seed(seed, name, chunk)).standard_normal(
        part.shape[0], dtype=np.float32, out=part)
    part *= np.float32(std)
    part += np.float32(mean)


def chunk_count(numel: int) -> int:
    return (numel + CHUNK - 1) // CHUNK


def seeded_values(name: str, numel: int, seed: int, std: float, mean: float = 0.0,
                  workers: int | None = None):
    """``numel`` float32 numbers from N(mean, std), the same for the same (seed, name) everywhere."""
    import numpy as np

    out = np.empty(numel, dtype=np.float32)

    def fill(chunk: int) -> None:
        draw_chunk(out[chunk * CHUNK:(chunk + 1) * CHUNK], name, chunk, seed, std, mean)

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        list(pool.map(fill, range(chunk_count(numel))))
    return out


def seeded_tensor(name: str, numel: int, dtype, seed: int, std: float, mean: float, pool: ThreadPoolExecutor):
    """The numbers of ``seeded_values`` as a flat CPU tensor of ``dtype``, converted chunk by chunk in ``pool``.

    A 32B model is 33e9 numbers: drawing, scaling and converting them in one thread per step took
    most of a server's start (63 s of loading for the 7B architecture); every step now runs per chunk
    on all CPUs, and no float32 copy of a whole parameter is made.
    """
    import numpy as np
    import torch

    flat = torch.empty(numel, dtype=dtype)

    def fill(chunk: int) -> None:
        start = chunk * CHUNK
        part = np.empty(min(CHUNK, numel - start), dtype=np.float32)
        draw_chunk(part, name, chunk, seed, std, mean)
        flat[start:start + part.shape[0]].copy_(torch.from_numpy(part))

    list(pool.map(fill, range(chunk_count(numel))))
    return flat


def seed_weights(model, seed: int = 0, std: float = DEFAULT_STD, workers: int | None = None) -> int:
    """Fill every parameter of ``model`` (a torch module) in place; returns how many numbers were drawn."""
    import torch

    drawn = 0
    with torch.no_grad(), ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for name, param in model.named_parameters():
            mean = 1.0 if is_norm_weight(name, param.dim()) else 0.0
            values = seeded_tensor(name, param.numel(), param.dtype, seed, std, mean, pool)
            param.data.copy_(values.view(param.shape))
            drawn += param.numel()
    return drawn


def register() -> None:
    """vLLM's entry point: add the load format (a vLLM without register_model_loader gets a warning)."""
    try:
        from vllm.model_executor.model_loader import register_model_loader
        from vllm.model_executor.model_loader.base_loader import BaseModelLoader
    except ImportError as e:
        logging.getLogger('robobrain_ros.seeded_weights').warning(
            'load format %s unavailable: this vLLM has no register_model_loader (%s)', LOAD_FORMAT, e)
        return

    @register_model_loader(LOAD_FORMAT)
    class SeededModelLoader(BaseModelLoader):
        """Weights from ``seed_weights``; ``--model-loader-extra-config`` may give ``seed`` and ``std``."""

        def __init__(self, load_config) -> None:
            super().__init__(load_config)
            extra = dict(load_config.model_loader_extra_config or {})
            unknown = set(extra) - {'seed', 'std'}
            if unknown:
                raise ValueError(f'{LOAD_FORMAT}: unknown model_loader_extra_config keys {sorted(unknown)}; '
                                 'it takes seed and std')
            self.seed = int(extra.get('seed', 0))
            self.std = float(extra.get('std', DEFAULT_STD))

        def download_model(self, model_config) -> None:
            pass  # nothing to download: only config.json and the tokenizer are read

        def load_weights(self, model, model_config) -> None:
            seed_weights(model, self.seed, self.std)
