#!/usr/bin/env python3
"""Install robobrain_ros into a --target folder without pip or setuptools (the GPU machine has no network).

vLLM finds the FlagGems plugin through the `vllm.general_plugins` entry point of an installed robobrain_ros
distribution. This copies the package and writes its .dist-info (METADATA, entry_points.txt, RECORD) from
the arguments robobrain_ros/setup.py passes to setup(), read by running setup.py with a stand-in setuptools.
Same result as `pip install --no-deps --target DIR ./robobrain_ros` for what vLLM looks at.

    python3 scripts/gpu/install_plugin.py --target /tmp/gpu/rbsite
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_kwargs(setup_py: Path) -> dict:
    captured: dict = {}
    fake = types.ModuleType('setuptools')
    fake.setup = lambda **kw: captured.update(kw)
    fake.find_packages = lambda *a, **k: []
    saved = sys.modules.get('setuptools')
    sys.modules['setuptools'] = fake
    cwd = os.getcwd()
    try:
        os.chdir(setup_py.parent)
        runpy.run_path(str(setup_py), run_name='__main__')
    finally:
        os.chdir(cwd)
        if saved is not None:
            sys.modules['setuptools'] = saved
        else:
            del sys.modules['setuptools']
    return captured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--target', type=Path, required=True)
    parser.add_argument('--source', type=Path, default=ROOT / 'robobrain_ros')
    args = parser.parse_args(argv)
    kw = setup_kwargs(args.source / 'setup.py')
    name, version = kw['name'], kw['version']
    args.target.mkdir(parents=True, exist_ok=True)
    pkg = args.target / name
    if pkg.exists():
        shutil.rmtree(pkg)
    shutil.copytree(args.source / name, pkg, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    info = args.target / f'{name}-{version}.dist-info'
    if info.exists():
        shutil.rmtree(info)
    info.mkdir()
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    lines = []
    for group, entries in kw.get('entry_points', {}).items():
        lines.append(f'[{group}]')
        lines += [e.replace(' = ', '=', 1).replace('=', ' = ', 1) for e in entries]
        lines.append('')
    (info / 'entry_points.txt').write_text('\n'.join(lines))
    (info / 'INSTALLER').write_text('scripts/gpu/install_plugin.py\n')
    files = [p.relative_to(args.target) for p in list(pkg.rglob('*')) + list(info.iterdir()) if p.is_file()]
    (info / 'RECORD').write_text(''.join(f'{f},,\n' for f in files) + f'{info.name}/RECORD,,\n')
    print(f'installed {name} {version} into {args.target} (entry point groups: '
          f"{', '.join(kw.get('entry_points', {}))})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
