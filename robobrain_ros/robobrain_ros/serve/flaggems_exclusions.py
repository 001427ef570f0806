"""Which FlagGems ops the robobrain_flaggems plugin leaves to PyTorch, per platform.

FlagGems replaces hundreds of aten kernels at once. Some are wrong on some chips (wrong numbers, or a
crashed GPU), some are slower than the vendor's. A server that crashes is noticed; one that answers
with wrong numbers is not, so the defaults here keep users off every op known to be broken on their
platform. The names are FlagGems' Python function names, the ones ``flag_gems.enable(unused=[...])``
matches (``mul`` is aten ``mul.Tensor``, ``fill_scalar_`` is ``fill_.Scalar``).

Platforms: ``cuda-hopper`` (compute capability 9.x), ``cuda`` (any other NVIDIA GPU), ``ascend``
(vllm-ascend on an NPU), ``other`` (nothing known: nothing left out beyond FlagScale's own choice).

A spec (serve config ``flaggems_exclude`` or ``$ROBOBRAIN_FLAGGEMS_EXCLUDE``, a comma list or a list)
says what to leave out: empty or ``default`` gives the platform's list; ``none`` leaves nothing out;
an op name adds that op; ``-op`` takes one out of the list (``default,-mm`` gives FlagGems the GEMMs
back, ``mul,sqrt`` replaces the defaults with exactly those two).

Pure: no torch, no vLLM (both the serve tool and the plugin inside vLLM use it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

PLATFORMS = ('cuda-hopper', 'cuda', 'ascend', 'other')


@dataclasses.dataclass(frozen=True)
class ExclusionGroup:
    """Ops left to PyTorch for one reason, and where that reason was established."""

    ops: tuple[str, ...]
    why: str
    source: str


# FlagScale's own vLLM backend calls flag_gems.enable(unused=["exponential_", "softmax"]): sampling's
# exponential_ and the softmax stay with the framework on every chip.
FLAGSCALE = ExclusionGroup(
    ops=('exponential_', 'softmax'),
    why="FlagScale's serve default: sampling's exponential_ and softmax stay with the framework",
    source="FlagScale's vLLM backend (flag_gems.enable(unused=...))")

# vllm-plugin-FL (flagos-ai) keeps these on the vendor path on every NVIDIA GPU.
FLAGOS_NVIDIA = ExclusionGroup(
    ops=('copy_', 'to_copy', 'pow_scalar', 'clamp', 'clamp_', 'index_put', 'index_put_', '_index_put_impl_',
         'nonzero', 'index'),
    why="FlagOS's NVIDIA blacklist: layout, indexing and clamp ops kept on the CUDA path",
    source='flagos-ai/vllm-plugin-FL vllm_fl/dispatch/config/nvidia.yaml')

# Measured on an H200 with flag-gems 5.0.2 (docs/BENCHMARKS.md, ../shared/FLAGGEMS.md): these Hopper
# kernels read tensors as flat buffers with 32-bit offsets.
HOPPER_FLAT_BUFFER_KERNELS = ExclusionGroup(
    ops=('mul', 'mul_', 'fill_scalar', 'fill_scalar_', 'fill_tensor', 'fill_tensor_', 'fill_scalar_out',
         'fill_tensor_out', 'sqrt', 'sqrt_'),
    why='flag-gems 5.0.2 Hopper kernels: mul with a broadcast crashes the GPU (the first-request crash in '
        'vLLM); mul, fill_ and sqrt on sliced, transposed or strided inputs return wrong numbers; fill_ past '
        '2^31 elements faults (5.0.0: mul and sqrt right, fill_ on a non-contiguous view raises)',
    source='measured: H200, vLLM 0.25.1, torch 2.11, flag-gems 5.0.2 and 5.0.0 (scripts/gpu/flaggems_diag.py)')

HOPPER_GEMMS = ExclusionGroup(
    ops=('mm', 'mm_out', 'addmm', 'addmm_out', 'bmm', 'bmm_out'),
    why="FlagGems' Hopper GEMMs (host TMA, autotuned) are slower than cuBLAS in vLLM (+44% single-goal "
        'latency with them, +7% without) and assert on an unaligned base pointer; 5.0.0\'s fail on Triton 3.6 '
        '(no triton.tools.tensor_descriptor)',
    source='measured: H200, flag-gems 5.0.2 and 5.0.0; FlagOS vllm-plugin-FL nvidia_hopper.yaml leaves mm / mm_out '
           'too')

# vllm-plugin-FL's Ascend list (not measured here: no NPU in this project's CI). The index kernel corrupted
# gathers in a vision tower: coarse features survive, fine detail decodes as garbage.
FLAGOS_ASCEND = ExclusionGroup(
    ops=('index', 'exp', 'log', 'masked_scatter_', 'masked_scatter', 'scatter_add_', 'ones', 'ones_like',
         'isclose', 'allclose', 'mean_dim', 'rsqrt', 'index_select', 'true_divide', 'silu', 'silu_and_mul',
         'to_copy', '_to_copy', 'zeros', 'acos', 'copy_', 'fill_scalar_', 'sum_dim', 'exponential_', 'mm',
         'resolve_neg', 'resolve_conj', 'eq_scalar', 'floor_divide', 'cumsum', 'cumsum_out', 'mul', 'reciprocal',
         'repeat', 'randn', 'add', 'ge_scalar', 'sub', 'bitwise_and', 'bitwise_not', 'slice_scatter',
         'fill_tensor_', 'conv1d', 'conv2d', 'uniform_', 'prod', 'max', 'amax', 'cat', 'stack', 'rand',
         'rand_like', 'gather', '_log_softmax', '_flash_attention_forward', 'scatter', 'scatter_', 'index_put',
         'index_put_', '_index_put_impl_', 'argmax', 'addmm'),
    why="FlagOS's Ascend blacklist: the index gather corrupts a vision tower's rotary positions; exp/log are "
        'imprecise and slow; the rest are slower than the NPU vendor ops or fail on some shapes',
    source='flagos-ai/vllm-plugin-FL vllm_fl/dispatch/config/ascend.yaml (not measured here)')

EXCLUSION_TABLE: dict[str, tuple[ExclusionGroup, ...]] = {
    'cuda-hopper': (FLAGSCALE, FLAGOS_NVIDIA, HOPPER_FLAT_BUFFER_KERNELS, HOPPER_GEMMS),
    'cuda': (FLAGSCALE, FLAGOS_NVIDIA),
    'ascend': (FLAGSCALE, FLAGOS_ASCEND),
    'other': (FLAGSCALE,),
}


class ExclusionSpecError(ValueError):
    """A spec that cannot be read (an empty name after '-', an unknown platform)."""


def cuda_platform(capability_major: int | None) -> str:
    """``cuda-hopper`` for compute capability 9.x, else ``cuda``."""
    return 'cuda-hopper' if capability_major == 9 else 'cuda'


def default_exclusions(platform: str) -> list[str]:
    """The platform's default list, in table order, each op once."""
    if platform not in EXCLUSION_TABLE:
        raise ExclusionSpecError(f'unknown FlagGems platform {platform!r}; one of {", ".join(PLATFORMS)}')
    return list(dict.fromkeys(op for group in EXCLUSION_TABLE[platform] for op in group.ops))


def spec_items(spec: str | Iterable[str] | None) -> list[str]:
    """The spec as a list of stripped, non-empty items (a string is split at commas)."""
    if spec is None:
        return []
    parts = spec.split(',') if isinstance(spec, str) else [str(s) for s in spec]
    return [p.strip() for p in parts if p.strip()]


def resolve_exclusions(spec: str | Sequence[str] | None, platform: str) -> list[str]:
    """The ops to leave to PyTorch for ``spec`` on ``platform`` (see the module docstring)."""
    items = spec_items(spec)
    if not items or items == ['default']:
        return default_exclusions(platform)
    if items == ['none']:
        return []
    # Only '-op' items (no plain names and no 'default') still start from the defaults.
    starts_from_default = 'default' in items or all(item.startswith('-') for item in items)
    ops = default_exclusions(platform) if starts_from_default else []
    for item in items:
        if item in ('default', 'none'):
            continue
        if item.startswith('-'):
            name = item[1:].strip()
            if not name:
                raise ExclusionSpecError(f'a lone "-" in the FlagGems exclusion spec {spec!r}')
            ops = [op for op in ops if op != name]
        elif item not in ops:
            ops.append(item)
    return ops


def describe(platform: str, ops: Sequence[str]) -> str:
    """One line for logs: how many ops, which, and how they differ from the platform's default."""
    if not ops:
        return 'no ops left to PyTorch: FlagGems takes every op it has'
    default = default_exclusions(platform)
    added = [op for op in ops if op not in default]
    dropped = [op for op in default if op not in ops]
    origin = f'the {platform} default' + (f' + {",".join(added)}' if added else '') \
        + (f' - {",".join(dropped)}' if dropped else '')
    return f'{len(ops)} ops left to PyTorch ({origin}): {", ".join(ops)}'
