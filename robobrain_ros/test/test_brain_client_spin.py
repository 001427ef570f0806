"""BrainClient keeps serving after one callback fails: its spinning thread is all its responses have.

Before, any exception out of the executor ended the thread silently: the client still found servers (graph queries
need no spinning) but never heard a response, result or message again. In CI that made one test's ActionClient,
created on the shared client's node while it spun (rclpy's half-built ActionClient, ros2/rclpy#1589), fail every
later test of the session that listened through that client. Real rclpy (Fast DDS) in this process, no brain.
"""

from __future__ import annotations

import threading

import pytest
from rclpy.action import ActionClient
from std_msgs.msg import String

from robobrain_interfaces.action import Point
from robobrain_ros.brain_client import BrainClient
from robobrain_ros.harness.brain_process import wait_until


@pytest.fixture
def client():
    brain_client = BrainClient(brain_name='/nobody', node_name='spin_test_client')
    yield brain_client
    brain_client.close()


def still_hears(client: BrainClient, topic: str) -> bool:
    """True when a message published on this client's node comes back through its executor."""
    heard = threading.Event()
    subscription = client.node.create_subscription(String, topic, lambda msg: heard.set(), 10)
    publisher = client.node.create_publisher(String, topic, 10)
    try:
        return wait_until(lambda: publisher.publish(String(data='ping')) or heard.is_set(), 20.0, period=0.1)
    finally:
        client.node.destroy_publisher(publisher)
        client.node.destroy_subscription(subscription)


def test_a_callback_that_raises_is_reported_and_the_client_keeps_spinning(client, capfd):
    fired = threading.Event()

    def failing_callback() -> None:
        fired.set()
        timer.cancel()
        raise RuntimeError('a user callback broke')

    timer = client.node.create_timer(0.01, failing_callback)
    assert wait_until(fired.is_set, 10.0)
    assert still_hears(client, '/spin_test/after_a_failing_callback')
    client.node.destroy_timer(timer)
    assert 'a user callback broke' in capfd.readouterr().err   # reported, not swallowed


def test_action_clients_created_while_it_spins_do_not_stop_it(client):
    # The race (the executor reads the new client before its constructor ends) hit within ~50 creations here.
    for index in range(300):
        ActionClient(client.node, Point, f'/nobody_{index}/point').destroy()
    assert still_hears(client, '/spin_test/after_action_clients')


def test_close_ends_the_spinning_thread():
    client = BrainClient(brain_name='/nobody', node_name='spin_test_closed_client')
    client.close()
    assert not client._thread.is_alive()
