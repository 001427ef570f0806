"""The brain's action servers take every waiting goal request in one executor turn.

rclpy's ActionServer takes one goal request a turn: the last of 32 goals sent at once was accepted 150-330 ms after
it was sent on the H200 host. Real rclpy in this process: an action server node and a client node, no brain.
"""

from __future__ import annotations

import time

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from robobrain_interfaces.action import Point
from robobrain_ros.node.draining_action_server import DrainingActionServer

GOALS = 8


def test_goals_waiting_together_are_accepted_in_one_turn_and_all_answered(ros_context):
    server_node = Node('draining_server', context=ros_context)
    client_node = Node('draining_client', context=ros_context)
    accepted = []

    def on_accepted(goal_handle) -> None:
        accepted.append(goal_handle)
        goal_handle.execute()

    def execute(goal_handle):
        goal_handle.succeed()
        result = Point.Result()
        result.answer.info.status.message = goal_handle.request.instruction
        return result

    server = DrainingActionServer(server_node, Point, 'draining_point', execute_callback=execute,
                                  handle_accepted_callback=on_accepted)
    client = ActionClient(client_node, Point, 'draining_point')
    server_executor = SingleThreadedExecutor(context=ros_context)
    server_executor.add_node(server_node)
    client_executor = SingleThreadedExecutor(context=ros_context)
    client_executor.add_node(client_node)
    try:
        assert client.wait_for_server(timeout_sec=20.0)
        sent = [client.send_goal_async(Point.Goal(instruction=f'goal {i}')) for i in range(GOALS)]
        time.sleep(1.0)   # every request reaches the server before it spins: they wait together
        accepted_per_turn = []
        for _ in range(50):
            if len(accepted) == GOALS:
                break
            before = len(accepted)
            server_executor.spin_once(timeout_sec=0.5)
            if len(accepted) > before:
                accepted_per_turn.append(len(accepted) - before)
        assert accepted_per_turn == [GOALS]   # rclpy's ActionServer: [1, 1, 1, 1, 1, 1, 1, 1]

        # Each goal runs and its result request, sent on acceptance, is answered: nothing is lost in a batch.
        deadline = time.monotonic() + 30.0
        while not all(f.done() for f in sent) and time.monotonic() < deadline:
            client_executor.spin_once(timeout_sec=0.05)
            server_executor.spin_once(timeout_sec=0.05)
        assert all(f.done() and f.result().accepted for f in sent)
        results = [f.result().get_result_async() for f in sent]
        while not all(r.done() for r in results) and time.monotonic() < deadline:
            client_executor.spin_once(timeout_sec=0.05)
            server_executor.spin_once(timeout_sec=0.05)
        assert all(r.done() for r in results), 'a result never came'
        assert [r.result().status for r in results] == [GoalStatus.STATUS_SUCCEEDED] * GOALS
        assert [r.result().result.answer.info.status.message for r in results] == [f'goal {i}' for i in range(GOALS)]
    finally:
        client.destroy()
        server.destroy()
        client_executor.shutdown()
        server_executor.shutdown()
        client_node.destroy_node()
        server_node.destroy_node()
