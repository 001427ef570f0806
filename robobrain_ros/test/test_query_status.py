"""The status a planner branches on: an empty result never reads as success, and every pipeline code has one."""

from __future__ import annotations

from robobrain_interfaces.msg import PointsAnswer, QueryStatus
from robobrain_ros.node.answer_messages import STATUS_CODES
from robobrain_ros.node.query_pipeline import QueryCode


def test_a_default_constructed_status_never_reads_as_success():
    # rclpy returns an empty Result when an execute callback raises: its status must not say OK.
    assert QueryStatus().code == QueryStatus.UNKNOWN != QueryStatus.OK
    assert PointsAnswer().info.status.code != QueryStatus.OK


def test_every_pipeline_code_maps_to_its_own_status_constant():
    assert set(STATUS_CODES) == set(QueryCode)
    assert len(set(STATUS_CODES.values())) == len(QueryCode) and QueryStatus.UNKNOWN not in STATUS_CODES.values()
