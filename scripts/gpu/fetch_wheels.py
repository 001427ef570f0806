#!/usr/bin/env python3
"""Download the wheels the GPU machine lacks (it has no network): vLLM, its missing dependencies, FlagGems.

The GPU machine's image ('cuda': Python 3.12, torch 2.11.0+cu130, transformers 5.x, triton, aiohttp,
opencv, ...) already holds most of what vLLM needs. This script resolves vLLM's dependency closure for
cp312 manylinux x86_64 one package at a time (`pip download --no-deps`), leaving out what the image
provides (DEVICE_HAS) and the optional heavy kernels vLLM does not need for Qwen2.5-VL (SKIP), and pins
the versions known to work there (PINS). Output: WHEEL_DIR/*.whl plus WHEEL_DIR/manifest.json.

    python3 scripts/gpu/fetch_wheels.py --out .whl/gpu

Then scripts/gpu/make_bundle.py packs them (with the node's ROS 2 runtime) into pieces below 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PLATFORM_ARGS = ['--only-binary=:all:', '--python-version', '3.12', '--implementation', 'cp', '--abi', 'cp312',
                 '--abi', 'abi3', '--abi', 'none']
for _n in (5, 12, 17, 24, 27, 28, 31, 34, 35):
    PLATFORM_ARGS += ['--platform', f'manylinux_2_{_n}_x86_64']
PLATFORM_ARGS += ['--platform', 'manylinux2014_x86_64', '--platform', 'manylinux1_x86_64',
                  '--platform', 'linux_x86_64', '--platform', 'any']

# What the GPU machine's image already has (KINDS.md's package list, 2026-11-17).
DEVICE_HAS = {canonicalize_name(n) for n in (
    'absl-py', 'accelerate', 'aiofiles', 'aiohappyeyeballs', 'aiohttp', 'aiosignal', 'annotated-doc', 'anyio',
    'attrs', 'build', 'certifi', 'charset-normalizer', 'click', 'cloudpickle', 'cmake', 'colorama',
    'cuda-bindings', 'cuda-core', 'cuda-pathfinder', 'cuda-toolkit', 'cupy-cuda13x', 'cython', 'einops',
    'filelock', 'flatbuffers', 'frozenlist', 'fsspec', 'grpcio', 'h11', 'h5py', 'hf-xet', 'httpcore', 'httpx',
    'huggingface-hub', 'idna', 'imageio', 'iniconfig', 'jinja2', 'joblib', 'lxml', 'markdown', 'markdown-it-py',
    'markupsafe', 'mdurl', 'ml-dtypes', 'mpmath', 'msgpack', 'multidict', 'networkx', 'ninja', 'numba', 'numpy',
    'onnx', 'opencv-python-headless', 'packaging', 'pandas', 'pillow', 'pip', 'pluggy', 'prometheus-client',
    'propcache', 'protobuf', 'psutil', 'py-cpuinfo', 'pygments', 'pyparsing', 'python-dateutil', 'pyyaml',
    'regex', 'requests', 'rich', 'safetensors', 'scipy', 'sentencepiece', 'setuptools', 'shellingham', 'six',
    'sympy', 'tabulate', 'tiktoken', 'tokenizers', 'torch', 'torchaudio', 'torchvision', 'tqdm', 'transformers',
    'triton', 'typer', 'typing-extensions', 'urllib3', 'uvloop', 'wheel', 'wrapt', 'xxhash', 'yarl', 'zipp',
    'llvmlite'
)}

# Optional heavy pieces vLLM lists but does not need to serve Qwen2.5-VL in bf16 on Hopper.
SKIP = {canonicalize_name(n) for n in (
    'tilelang', 'quack-kernels', 'humming-kernels', 'tokenspeed-mla', 'nvidia-cutlass-dsl', 'pynvvideocodec',
    'torchcodec', 'fastsafetensors', 'flashinfer-cubin'
)}
# flashinfer-python is needed: vLLM's sampler imports its FlashInfer backend module at start (a missing package
# is a ModuleNotFoundError). Without flashinfer-cubin it JIT-compiles on first use of a FlashInfer kernel;
# device_run.sh sets VLLM_USE_FLASHINFER_SAMPLER=0 and vLLM picks FlashAttention 3 on Hopper.
SKIP_PREFIXES = ('nvidia-',)   # CUDA libraries come with the image's torch
KEEP_NVIDIA = {'nvidia-cudnn-frontend'}   # flashinfer-python imports it

# Versions that are known to work on the GPU machine (docs/BENCHMARKS.md, /shared/ENVIRONMENT.md).
PINS = {
    'vllm': '==0.25.1',                    # the release built for torch 2.11 + CUDA 13
    'xgrammar': '==0.2.8',                 # the version that ran on the GPU machine with this tvm-ffi
    'apache-tvm-ffi': '==0.1.15.post2',    # xgrammar 0.2.8 needs it (vLLM's own 0.1.9 pin fails)
    'sqlalchemy': '==2.0.48',              # FlagGems 5.0.2's pin
}
# Not in vLLM's metadata but needed by its API server / processor at run time.
EXTRA_ROOTS = ['pycountry', 'email-validator', 'python-dotenv', 'httptools', 'websockets',
               'sqlalchemy']   # FlagGems' tuning cache (its own dependency; FlagGems goes with --no-deps)
# Installed with --no-deps on the GPU machine: FlagGems pins numpy 1.26 and a torch per backend.
NO_DEPS = {'flag-gems'}
# FlagGems versions, each its own wheel in WHEEL_DIR/flaggems/ (make_bundle.py installs each into its own
# folder, gpubundle/fg/<version>, and device_run.sh picks one per phase with FLAGGEMS_VERSION): 5.0.2 is the
# newest (its Hopper mul/fill_/sqrt break, ../shared/FLAGGEMS.md), 5.0.0's Hopper code replaces only mm.
FLAGGEMS_VERSIONS = ('5.0.2', '5.0.0')


def marker_env(extra: str = '') -> dict:
    env = default_environment()
    env.update(python_version='3.12', python_full_version='3.12.3', implementation_name='cpython',
               platform_python_implementation='CPython', sys_platform='linux', platform_system='Linux',
               platform_machine='x86_64', os_name='posix', extra=extra)
    return env


def wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate(marker_env(e)) for e in (extras or {''}) | {''})


def skipped(name: str) -> bool:
    if name in DEVICE_HAS or name in SKIP:
        return True
    return name.startswith(SKIP_PREFIXES) and name not in KEEP_NVIDIA


def metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
        return [line for line in z.read(meta).decode().splitlines() if line.startswith('Requires-Dist:')]


def download(spec: str, out: Path) -> Path:
    before = set(out.glob('*.whl'))
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', *PLATFORM_ARGS, '-d', str(out), spec]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f'pip download {spec} failed:\n{run.stderr[-2000:]}')
    new = set(out.glob('*.whl')) - before
    if new:
        return new.pop()
    # Already there: find it by name.
    req = Requirement(spec)
    name = canonicalize_name(req.name).replace('-', '_')
    for w in sorted(out.glob('*.whl'), key=wheel_version, reverse=True):
        if canonicalize_name(w.name.split('-')[0]).replace('-', '_') == name \
                and req.specifier.contains(wheel_version(w), prereleases=True):
            return w
    raise RuntimeError(f'no wheel for {spec} in {out}')


def wheel_version(wheel: Path) -> Version:
    return Version(wheel.name.split('-')[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('.whl/gpu'))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    todo: list[tuple[Requirement, str]] = [(Requirement('vllm'), 'root')]
    todo += [(Requirement(n), 'root') for n in EXTRA_ROOTS]
    got: dict[str, Path] = {}
    extras_done: dict[str, set[str]] = {}
    conflicts = []
    while todo:
        req, parent = todo.pop(0)
        name = canonicalize_name(req.name)
        if skipped(name):
            continue
        if name in got:
            version = wheel_version(got[name])
            if req.specifier and not req.specifier.contains(version, prereleases=True) and name not in PINS:
                conflicts.append(f'{name} {version} does not satisfy {req.specifier} (from {parent})')
            new_extras = set(req.extras) - extras_done[name]
            if not new_extras:
                continue
        else:
            spec = name + (PINS.get(name) or str(req.specifier))
            wheel = download(spec, args.out)
            got[name] = wheel
            extras_done[name] = set()
            new_extras = set(req.extras) | {''}
            print(f'{wheel.name:70s} <- {parent}', flush=True)
        extras_done[name] |= new_extras
        if name in NO_DEPS:
            continue
        for line in metadata(got[name]):
            dep = Requirement(line.split(':', 1)[1].strip())
            marker = str(dep.marker) if dep.marker else ''
            # A dependency that only an extra pulls in: take it when that extra was asked for.
            m = re.findall(r'extra\s*==\s*"([^"]+)"', marker)
            if m and not (set(m) & new_extras):
                continue
            if wanted(dep, new_extras - {''}):
                todo.append((dep, name))

    fg_dir = args.out / 'flaggems'
    fg_dir.mkdir(exist_ok=True)
    flaggems = {}
    for version in FLAGGEMS_VERSIONS:
        wheel = download(f'flag-gems=={version}', fg_dir)
        flaggems[version] = wheel.name
        print(f'{wheel.name:70s} <- flaggems/ (FLAGGEMS_VERSION={version})', flush=True)
        for line in metadata(wheel):   # installed with --no-deps: say what it would have asked for
            print(f'    {line}')
    for w in set(fg_dir.glob('*.whl')) - {fg_dir / n for n in flaggems.values()}:
        print(f'removing stray {w.name}')
        w.unlink()

    manifest = {n: w.name for n, w in sorted(got.items())}
    (args.out / 'manifest.json').write_text(json.dumps({'wheels': manifest, 'flaggems': flaggems,
                                                        'conflicts': conflicts}, indent=1))
    stray = set(args.out.glob('*.whl')) - set(got.values())
    for w in stray:
        print(f'removing stray {w.name}')
        w.unlink()
    total = sum(w.stat().st_size for w in got.values())
    print(f'{len(got)} wheels, {total / 2**20:.1f} MiB in {args.out}')
    for c in conflicts:
        print('version conflict (check on the device):', c)
    return 0


if __name__ == '__main__':
    sys.exit(main())
