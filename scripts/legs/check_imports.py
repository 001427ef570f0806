"""Does the robobrain_ros package import on this interpreter? (the extra CI legs, Python 3.10 and 3.12)

    python scripts/legs/check_imports.py

Every module of the package (as the source tree has them) is byte-compiled (the syntax of this Python version)
and imported (the stdlib names it uses at import time). The ROS-free layers (protocol, client, serve) are
imported first and must not pull in rclpy or a ROS message package. A folder of modules without __init__.py
fails the check: setup.py's find_packages leaves it out of a plain (not --symlink-install) colcon build, which
is what robots run. Exit status 0 when all is well.
"""

from __future__ import annotations

import importlib
import os
import py_compile
import sys
import traceback
from pathlib import Path

ROS_FREE_PACKAGES = ('robobrain_ros.protocol', 'robobrain_ros.model_client', 'robobrain_ros.serve')
SOURCE_PACKAGE = Path(__file__).resolve().parents[2] / 'robobrain_ros' / 'robobrain_ros'


def is_ros_module(name: str) -> bool:
    root = name.split('.')[0]
    return root in ('rclpy', 'rcl_interfaces', 'robobrain_interfaces') or root.endswith(('_msgs', '_srvs'))


def module_names(package_dir: Path) -> list[str]:
    """Every module under the package folder, by file (a folder without __init__.py included)."""
    names = []
    for source in sorted(package_dir.rglob('*.py')):
        parts = source.relative_to(package_dir.parent).with_suffix('').parts
        if parts[-1] == '__main__':     # importing a __main__ runs its command line
            continue
        names.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
    return names


def folders_without_init(package_dir: Path) -> list[Path]:
    """Folders of modules that setuptools.find_packages (setup.py) leaves out of a non-symlink install."""
    return sorted(folder for folder in {source.parent for source in package_dir.rglob('*.py')}
                  if not (folder / '__init__.py').is_file())


def import_all(names: list[str], failures: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:   # noqa: BLE001 - any import-time error is what this check reports
            where = [frame for frame in traceback.extract_tb(e.__traceback__) if not frame.filename.startswith('<')][-1]
            failures.append(f'{name} does not import: {e!r} ({where.filename}:{where.lineno})')


def main() -> int:
    # The source tree says which modules exist; the imports go to the installed package (a plain colcon build).
    package_dir = SOURCE_PACKAGE
    failures = [f'{folder}: no __init__.py, so setup.py (find_packages) does not install its modules'
                for folder in folders_without_init(package_dir)]
    for source in sorted(package_dir.rglob('*.py')):
        try:
            py_compile.compile(str(source), doraise=True)
        except py_compile.PyCompileError as e:
            failures.append(f'{source} does not compile: {e.msg}')
    names = module_names(package_dir)
    ros_free = [name for name in names if name.startswith(ROS_FREE_PACKAGES)]
    import_all(ros_free, failures)
    pulled = sorted(name for name in sys.modules if is_ros_module(name))
    if pulled:
        failures.append(f'{", ".join(ROS_FREE_PACKAGES)} must import no ROS, and pulled in: {", ".join(pulled)}')
    import_all([name for name in names if name not in ros_free], failures)
    for failure in failures:
        print(f'IMPORT CHECK FAILED: {failure}', file=sys.stderr)
    installed = Path(sys.modules['robobrain_ros'].__file__).parent if 'robobrain_ros' in sys.modules else None
    print(f'Python {sys.version.split()[0]}: {len(names)} robobrain_ros modules compiled and imported from '
          f'{installed}, {len(failures)} failures')
    return 1 if failures else 0


if __name__ == '__main__':
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The check is the imports above. With every module loaded into one interpreter, Python 3.12 + Jazzy's rclpy
    # wheels crashed at interpreter exit (a segfault in finalization, after all imports had passed; the node
    # itself exits cleanly in the tests): leave without finalization so that only an import failure fails.
    os._exit(code)
