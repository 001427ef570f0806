"""pytest plugin for the extra CI legs (scripts/test_leg.sh): which tests a leg runs.

Loaded with ``-p leg_selection`` (scripts/legs on PYTHONPATH).

--leg-unit-only
    Deselect the tests that need a vLLM server or a brain node process: those that use the ``vllm_server``,
    ``start_brain`` or ``ros_client`` fixtures, and those whose body, or the body of any fixture they use,
    starts one itself (calls the global ``vllm_python``, ``start_tiny_server``, ``BrainProcess`` or
    ``run_brain_replay``, which runs brain_replay and the node process it starts). The Kilted leg runs them all; a
    leg that would only repeat them pays the server start and the node processes for nothing new.
--leg-keep FILE
    A test file kept whole by --leg-unit-only (repeatable): the node tests a leg does run.

What was left out is printed at the end of the run.
"""

from __future__ import annotations

import dis
import types

import pytest

SERVER_FIXTURES = frozenset({'vllm_server', 'start_brain', 'ros_client'})
SERVER_STARTERS = frozenset({'vllm_python', 'start_tiny_server', 'BrainProcess', 'run_brain_replay'})

_left_out: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('robobrain legs')
    group.addoption('--leg-unit-only', action='store_true',
                    help='deselect tests that need a vLLM server or a brain node process')
    group.addoption('--leg-keep', action='append', default=[],
                    help='a test file name kept whole by --leg-unit-only (repeatable)')


def global_names(code: types.CodeType) -> set[str]:
    """Global names a function (and the functions nested in it) reads: what it calls by name."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname == 'LOAD_GLOBAL'}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def starts_a_server(func: object) -> bool:
    code = getattr(func, '__code__', None)
    return code is not None and bool(SERVER_STARTERS & global_names(code))


def needs_server(item: pytest.Item) -> bool:
    fixture_names = set(getattr(item, 'fixturenames', ()))  # the whole closure, fixtures of fixtures too
    if SERVER_FIXTURES & fixture_names:
        return True
    if starts_a_server(getattr(item, 'function', None)):
        return True
    fixture_defs = getattr(getattr(item, '_fixtureinfo', None), 'name2fixturedefs', {})
    return any(starts_a_server(fixture_def.func)
               for name in fixture_names for fixture_def in fixture_defs.get(name, ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption('leg_unit_only'):
        return
    keep = set(config.getoption('leg_keep'))
    selected, deselected = [], []
    for item in items:
        (deselected if item.path.name not in keep and needs_server(item) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
        _left_out.extend(sorted({item.path.name for item in deselected}))


def pytest_terminal_summary(terminalreporter) -> None:
    if _left_out:
        terminalreporter.section('left out of this leg')
        terminalreporter.write_line('need a vLLM server or a node process (the Kilted leg runs them): '
                                    + ', '.join(_left_out))
