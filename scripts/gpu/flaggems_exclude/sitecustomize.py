"""Benchmark-only shim: make flag_gems.enable() skip the ops named in ROBOBRAIN_BENCH_FLAGGEMS_EXCLUDE.

The robobrain_flaggems vLLM plugin calls `flag_gems.enable()` with no exclusions. On the GPU machine of issue 8
some FlagGems kernels crash vLLM (illegal memory access; scripts/gpu/flaggems_diag.py finds which). To still
measure FlagGems through the project's own plugin, device_run.sh puts this folder on the server's PYTHONPATH
with ROBOBRAIN_BENCH_FLAGGEMS_EXCLUDE=mm,addmm,... : when flag_gems is imported, its enable() is wrapped to
pass those names as `unused` (FlagGems' own exclude argument). Nothing happens when the variable is unset.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_EXCLUDE = [n for n in os.environ.get('ROBOBRAIN_BENCH_FLAGGEMS_EXCLUDE', '').replace(' ', '').split(',') if n]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != 'flag_gems':
            return None
        sys.meta_path.remove(self)   # find the real module once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            enable = module.enable

            def enable_excluding(*args, **kwargs):
                if not args and 'unused' not in kwargs:
                    kwargs['unused'] = list(_EXCLUDE)
                print(f'[bench shim] flag_gems.enable(unused={kwargs.get("unused")}) in pid {os.getpid()}',
                      file=sys.stderr, flush=True)
                return enable(*args, **kwargs)

            module.enable = enable_excluding

        spec.loader.exec_module = exec_module
        return spec


if _EXCLUDE:
    sys.meta_path.insert(0, _Finder())
