"""Plan step numbers from the model fit the uint32 PlanStep.order field, whatever the model wrote."""

from __future__ import annotations

import json

from robobrain_interfaces.msg import PlanStep as PlanStepMsg
from robobrain_ros.protocol.plan_steps import MAX_STEP_ORDER, parse_plan


def roboos(*orders) -> str:
    return json.dumps({'reasoning_explanation': 'r', 'subtask_list': [
        {'robot_name': 'arm', 'subtask': f'step {i}', 'subtask_order': order} for i, order in enumerate(orders, 1)]})


def test_negative_zero_or_huge_orders_fall_back_to_the_position_in_the_list():
    plan = parse_plan(roboos(-3, 0, 2**40, 2))
    assert [step.order for step in plan.steps] == [1, 2, 2, 3]
    for step in plan.steps:
        PlanStepMsg(order=step.order, description=step.description)   # a uint32 field: raises when out of range


def test_valid_orders_are_kept():
    assert [s.order for s in parse_plan(roboos(2, 1, MAX_STEP_ORDER)).steps] == [1, 2, MAX_STEP_ORDER]
