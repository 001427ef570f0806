"""The node uses its two rclpy workarounds (private API) only on the rclpy versions they were checked against,
with the private methods they need; anywhere else it falls back to rclpy's own classes and says why."""

import pytest

from robobrain_ros.node import rclpy_private_api
from robobrain_ros.node.rclpy_private_api import choose, draining_action_server, rclpy_version, submit_once_executor


def test_the_installed_rclpy_is_read_from_the_ament_index_and_is_in_range():
    version = rclpy_version()
    assert version is not None and version[0] in (3, 7, 9), version    # Humble's, Jazzy's or Kilted's wheels
    assert submit_once_executor(version).use_workaround and draining_action_server(version).use_workaround


@pytest.mark.parametrize('version, words', [
    ((10, 0, 4), 'outside the checked range 3.3.0 <= rclpy < 10.0.4'),   # fixed upstream (ros2/rclpy#1547)
    ((2, 0, 0), 'outside the checked range'),
    (None, 'rclpy unknown is outside the checked range'),
])
def test_submit_once_executor_outside_its_range_falls_back(version, words):
    choice = submit_once_executor(version)
    assert not choice.use_workaround and words in choice.reason


def test_a_missing_private_method_falls_back_naming_it(monkeypatch):
    from rclpy.action import ActionServer
    from rclpy.executors import MultiThreadedExecutor
    monkeypatch.delattr(ActionServer, '_execute_expire_goals')
    choice = draining_action_server((9, 1, 2))
    assert not choice.use_workaround and choice.reason.endswith('lacks ActionServer._execute_expire_goals')

    def renamed(self, timeout_sec=None, condition=None):
        pass
    monkeypatch.setattr(MultiThreadedExecutor, '_spin_once_impl', renamed)
    assert 'lacks MultiThreadedExecutor._spin_once_impl' in submit_once_executor((9, 1, 2)).reason


def test_in_range_and_complete_uses_the_workaround():
    assert choose((7, 1, 6), rclpy_private_api.DRAINING_RANGE, '', 'x') == rclpy_private_api.Choice(True, '')
