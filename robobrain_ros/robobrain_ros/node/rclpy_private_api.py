"""Which of the node's two rclpy workarounds may run on the rclpy at hand, decided once at start.

SubmitOnceExecutor overrides MultiThreadedExecutor._spin_once_impl and DrainingActionServer calls ActionServer's
_execute_*_request methods: private API, read and checked against rclpy 3.3 (Humble), 7.1 (Jazzy), 9.1 (Kilted)
and Rolling of 2026-12. Each is used only where rclpy's version is in the checked range and the private methods
it needs are there with the signatures it was written against; otherwise the node falls back to rclpy's own
class and says why. From rclpy 10.0.4 on the executor bug SubmitOnceExecutor works around is fixed upstream
(ros2/rclpy#1547), so the stock executor is the right choice there anyway.
"""

from __future__ import annotations

import inspect
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor

# [first, end): rclpy versions whose private API the workarounds were checked against.
SUBMIT_ONCE_RANGE = ((3, 3, 0), (10, 0, 4))     # the resubmission bug is fixed in 10.0.4 (ros2/rclpy#1547)
DRAINING_RANGE = ((3, 3, 0), (11, 0, 0))
_SPIN_ONCE_PARAMETERS = ('self', 'timeout_sec', 'wait_condition')
_ACTION_SERVER_METHODS = ('_execute_goal_request', '_execute_cancel_request', '_execute_get_result_request',
                          '_execute_expire_goals', 'take_data', 'execute')


@dataclass(frozen=True)
class Choice:
    use_workaround: bool
    reason: str          # why the stock class is used ('' when the workaround is)


def rclpy_version() -> tuple[int, ...] | None:
    """rclpy's version from its package.xml in the ament index (ROS installs and the PyPI wheels both have it)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        root = ElementTree.parse(f"{get_package_share_directory('rclpy')}/package.xml").getroot()
        text = root.findtext('version') or ''
    except Exception:   # no ament index, no rclpy in it, unreadable XML: unknown
        return None
    match = re.fullmatch(r'(\d+)\.(\d+)\.(\d+)', text.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def choose(version: tuple[int, ...] | None, checked: tuple[tuple[int, ...], tuple[int, ...]], missing: str,
           what: str) -> Choice:
    """The workaround when version is in [checked) and nothing it needs is missing, else the stock class."""
    shown = '.'.join(map(str, version)) if version else 'unknown'
    if version is None or not (checked[0] <= version < checked[1]):
        first, end = ('.'.join(map(str, v)) for v in checked)
        return Choice(False, f"{what}: rclpy {shown} is outside the checked range {first} <= rclpy < {end}")
    if missing:
        return Choice(False, f'{what}: rclpy {shown} lacks {missing}')
    return Choice(True, '')


def submit_once_executor(version: tuple[int, ...] | None) -> Choice:
    try:
        parameters = tuple(inspect.signature(MultiThreadedExecutor._spin_once_impl).parameters)
    except (AttributeError, TypeError, ValueError):
        parameters = ()
    missing = '' if parameters == _SPIN_ONCE_PARAMETERS else \
        f'MultiThreadedExecutor._spin_once_impl{_SPIN_ONCE_PARAMETERS[1:]} (found {parameters[1:]})'
    return choose(version, SUBMIT_ONCE_RANGE, missing, 'SubmitOnceExecutor')


def draining_action_server(version: tuple[int, ...] | None) -> Choice:
    absent = [name for name in _ACTION_SERVER_METHODS if not callable(getattr(ActionServer, name, None))]
    return choose(version, DRAINING_RANGE, ', '.join(f'ActionServer.{name}' for name in absent), 'DrainingActionServer')
