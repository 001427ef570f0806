#!/usr/bin/env python3
"""Pack everything the GPU machine lacks into one xz tarball split in pieces that fit one device call.

Inputs (built here, once):
  .whl/gpu/*.whl          scripts/gpu/fetch_wheels.py: vLLM 0.25.1, its missing dependencies, FlagGems
  .venv/ros312            scripts/gpu/build_ros312.sh: ROS 2 Kilted cp312 wheels
  .gpu/ros/install        scripts/gpu/build_ros312.sh: robobrain_interfaces built for Python 3.12

Output: .gpu/xfer/bundle.tar.xz.NN (pieces of --piece-mib) and .gpu/xfer/bundle.json (sha256, sizes).
One device call carries the working tree (tracked + untracked files git does not ignore) plus its carried
paths, 64 MiB in all: the default piece size is what fits beside the tree as it is now with 8 MiB to spare
(at most 48 MiB), and the script stops when a piece would not fit.
The tarball unpacks to gpubundle/{site,fg,ros,ros_ws}:
  site    the wheels installed (pip --target) for cp312, vLLM stripped of what an H100/H200 never loads
  fg/V    flag_gems V alone (from .whl/gpu/flaggems/), one folder per version: PYTHONPATH=fg/V:site picks it
  ros     the ROS 2 runtime: the files of every ros-* distribution (Python packages, shared libraries,
          the ament index) and nothing else (no numpy/yaml/typing_extensions copies to shadow the image's)
  ros_ws  the colcon install prefix of robobrain_interfaces

    python3 scripts/gpu/make_bundle.py            # then: scripts/gpu/README.md says how the pieces travel
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Parts of the vLLM wheel that a Hopper GPU serving a bf16 Qwen2.5-VL never loads (all imported lazily or
# optional): the Rust frontend (VLLM_USE_RUST_FRONTEND), Blackwell FMHA, DeepGEMM (FP8), and FlashAttention 2
# (on SM90 vLLM picks FA3 for the decoder and the vision encoder: fa_utils.get_flash_attn_version).
VLLM_STRIP = ['vllm/vllm-rs', 'vllm/third_party/fmha_sm100', 'vllm/third_party/deep_gemm',
              'vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so']


def sh(*cmd: str, **kw) -> None:
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return h.hexdigest()


CARRY_LIMIT_MIB = 64
SPARE_MIB = 8


def working_tree_bytes() -> int:
    """What a device call sends besides its carried paths: tracked and untracked-not-ignored files."""
    names = subprocess.run(['git', '-C', str(ROOT), 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                           capture_output=True, check=True).stdout.split(b'\0')
    total = 0
    for n in names:
        p = ROOT / n.decode()
        if n and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def stage_flaggems(wheels: Path, dest: Path, python: Path) -> dict[str, str]:
    """Each flag_gems wheel into dest/<version> (no dependencies: FlagGems pins numpy 1.26 and a torch)."""
    out = {}
    for w in sorted(wheels.glob('flag_gems-*.whl')):
        version = w.name.split('-')[1]
        sh(str(python), '-m', 'pip', 'install', '-q', '--no-deps', '--no-compile', '--no-index',
           '--disable-pip-version-check', '--target', str(dest / version), str(w))
        out[version] = w.name
    if not out:
        sys.exit(f'no flag_gems wheel in {wheels}: run scripts/gpu/fetch_wheels.py first')
    return out


def stage_site(wheels: Path, dest: Path, python: Path) -> None:
    files = sorted(str(w) for w in wheels.glob('*.whl') if not w.name.startswith('flag_gems-'))
    if not any('vllm-' in Path(f).name for f in files):
        sys.exit(f'no vllm wheel in {wheels}: run scripts/gpu/fetch_wheels.py first')
    sh(str(python), '-m', 'pip', 'install', '-q', '--no-deps', '--no-compile', '--no-index',
       '--disable-pip-version-check', '--target', str(dest), *files)
    for rel in VLLM_STRIP:
        p = dest / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        else:
            print(f'note: {rel} not in the vLLM wheel')


def stage_ros(venv: Path, dest: Path) -> int:
    """Copy the files of every ros-* distribution of the venv (by their RECORD) into dest (a prefix)."""
    site = next((venv / 'lib').glob('python3.*/site-packages'))
    rel_site = site.relative_to(venv)
    count = 0
    for info in sorted(site.glob('ros_*.dist-info')):
        record = info / 'RECORD'
        for line in record.read_text().splitlines():
            path = line.rsplit(',', 2)[0]
            if not path or path.endswith('.pyc') or '/cmake/' in path or path.startswith('../../../bin'):
                continue
            src = (site / path).resolve()
            try:
                rel = src.relative_to(venv.resolve())
            except ValueError:
                continue
            # Build-only parts: headers, CMake config, static libraries.
            if rel.parts[0] == 'include' or rel.suffix in ('.a', '.h', '.hpp') or 'cmake' in rel.parts:
                continue
            if not src.is_file():
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out, follow_symlinks=True)
            count += 1
    # Keep the site-packages path the same name the image's Python expects.
    assert (dest / rel_site).is_dir(), rel_site
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--wheels', type=Path, default=ROOT / '.whl/gpu')
    parser.add_argument('--ros-venv', type=Path, default=ROOT / '.venv/ros312')
    parser.add_argument('--ros-install', type=Path, default=ROOT / '.gpu/ros/install')
    parser.add_argument('--out', type=Path, default=ROOT / '.gpu/xfer')
    parser.add_argument('--piece-mib', type=int, default=0,
                        help='piece size (default: what fits beside the working tree with '
                             f'{SPARE_MIB} MiB to spare, at most 48); one device call carries at most '
                             f'{CARRY_LIMIT_MIB} MiB with the working tree')
    parser.add_argument('--xz-level', default='6')
    args = parser.parse_args(argv)

    tree_mib = working_tree_bytes() / 2**20
    fits = int(CARRY_LIMIT_MIB - tree_mib - SPARE_MIB)
    piece_mib = args.piece_mib or min(48, fits)
    print(f'working tree {tree_mib:.1f} MiB; pieces of {piece_mib} MiB '
          f'(+ tree = {piece_mib + tree_mib:.1f} of {CARRY_LIMIT_MIB} MiB a call)')
    if piece_mib <= 0 or piece_mib + tree_mib > CARRY_LIMIT_MIB - 1:
        sys.exit(f'a {piece_mib} MiB piece and the {tree_mib:.1f} MiB working tree do not fit one device call')

    python = args.ros_venv / 'bin/python'   # a Python 3.12 pip: installs cp312 wheels
    stage = ROOT / '.gpu/stage'
    if stage.exists():
        shutil.rmtree(stage)
    bundle = stage / 'gpubundle'
    stage_site(args.wheels, bundle / 'site', python)
    flaggems = stage_flaggems(args.wheels / 'flaggems', bundle / 'fg', python)
    print('flag_gems versions:', ', '.join(flaggems))
    n = stage_ros(args.ros_venv, bundle / 'ros')
    print(f'ros runtime: {n} files')
    shutil.copytree(args.ros_install / 'robobrain_interfaces', bundle / 'ros_ws' / 'robobrain_interfaces',
                    symlinks=False)
    shutil.rmtree(bundle / 'ros_ws' / 'robobrain_interfaces' / 'include', ignore_errors=True)
    for p in bundle.rglob('__pycache__'):
        shutil.rmtree(p, ignore_errors=True)
    (bundle / 'MANIFEST.json').write_text(json.dumps(
        {'wheels': sorted(w.name for w in args.wheels.glob('*.whl')), 'flaggems': flaggems,
         'vllm_stripped': VLLM_STRIP}, indent=1))
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) for p in bundle.iterdir()
             if p.is_dir()}
    print('staged MiB:', {k: round(v / 2**20, 1) for k, v in sizes.items()})

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    tarball = args.out / 'bundle.tar.xz'
    with open(tarball, 'wb') as f:
        tar = subprocess.Popen(['tar', '-C', str(stage), '-cf', '-', 'gpubundle'], stdout=subprocess.PIPE)
        subprocess.run(['xz', '-T0', f'-{args.xz_level}', '-c'], stdin=tar.stdout, stdout=f, check=True)
        if tar.wait() != 0:
            sys.exit('tar failed')
    whole = sha256(tarball)
    sh('split', '-b', f'{piece_mib}M', '-d', '-a', '2', str(tarball), str(tarball) + '.')
    tarball.unlink()
    pieces = sorted(args.out.glob('bundle.tar.xz.*'))
    meta = {'sha256': whole, 'pieces': {p.name: p.stat().st_size for p in pieces}, 'piece_mib': piece_mib,
            'working_tree_mib': round(tree_mib, 2), 'flaggems': sorted(flaggems)}
    (args.out / 'bundle.json').write_text(json.dumps(meta, indent=1))
    total = sum(meta['pieces'].values())
    print(f'{len(pieces)} pieces, {total / 2**20:.1f} MiB, sha256 {whole}')
    for p in pieces:
        print(f'  {p.name}: {p.stat().st_size / 2**20:.1f} MiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
