"""A client for the brain's actions, for scripts, tests and benchmarks (like nav2's BasicNavigator).

    with BrainClient() as brain:
        outcome = brain.query('point', 'the handle of the mug', image=image_msg)
        print(outcome.status_name, outcome.answer.points)

It spins its own node on a background executor thread, so calls can block and several goals can run at
once (`send` returns a handle; `query` waits). Also a command line:
`ros2 run robobrain_ros brain_query point "the mug handle" [--image file.jpg]`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from robobrain_interfaces.action import Affordance, Ask, Ground, Plan, Point, Trajectory
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES

ACTION_TYPES: dict[str, type] = {
    'point': Point, 'affordance': Affordance, 'trajectory': Trajectory,
    'ground': Ground, 'plan': Plan, 'ask': Ask,
}
STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled', GoalStatus.STATUS_UNKNOWN: 'unknown'}


@dataclass
class GoalOutcome:
    accepted: bool
    status: int = GoalStatus.STATUS_UNKNOWN
    answer: Any = None                      # PointsAnswer, BoxAnswer, ... (the action result's `answer`)
    feedback: list[Any] = field(default_factory=list)
    seconds: float = 0.0                    # goal sent -> result received

    @property
    def status_name(self) -> str:
        return 'rejected' if not self.accepted else STATUS_NAMES.get(self.status, str(self.status))

    @property
    def text(self) -> str:
        """The streamed text, rebuilt from feedback."""
        return ''.join(f.text for f in self.feedback)


class GoalHandle:
    """A goal in flight: wait() for its outcome, cancel() it."""

    def __init__(self) -> None:
        self.outcome = GoalOutcome(accepted=False)
        self._done = threading.Event()
        self._accepted = threading.Event()
        self._handle = None
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._start = time.perf_counter()

    def wait(self, timeout: float | None = None) -> GoalOutcome:
        if not self._done.wait(timeout):
            raise TimeoutError(f'no result within {timeout} s')
        return self.outcome

    def wait_accepted(self, timeout: float | None = None) -> bool:
        """True when accepted, False when rejected; TimeoutError when the server did not answer in time."""
        if not self._accepted.wait(timeout):
            raise TimeoutError(f'no accept or reject within {timeout} s')
        return self.outcome.accepted

    def cancel(self) -> None:
        """Cancel the goal; asked before the server accepted it, the cancel is sent as soon as it does."""
        with self._lock:
            self._cancel_requested = True
            handle = self._handle
        if handle is not None:
            handle.cancel_goal_async()

    def _on_accepted(self, handle) -> None:
        with self._lock:
            self._handle = handle
            cancel = self._cancel_requested
        if cancel:
            handle.cancel_goal_async()


class BrainClient:
    def __init__(self, brain_name: str = '/robobrain', node_name: str = 'robobrain_client',
                 context: Context | None = None) -> None:
        self._own_context = context is None
        self._context = context or Context()
        if self._own_context:
            rclpy.init(context=self._context)
        self.node = Node(node_name, context=self._context)
        self._clients = {name: ActionClient(self.node, kind, f'{brain_name}/{name}', **ACTION_SERVICE_PROFILES)
                         for name, kind in ACTION_TYPES.items()}
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True, name='brain-client')
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:   # the context was shut down under us: nothing left to spin
            pass

    def __enter__(self) -> 'BrainClient':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        for client in self._clients.values():
            client.destroy()
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self._context)
        self._thread.join(timeout=2.0)

    def wait_for_server(self, action: str = 'point', timeout: float = 30.0) -> bool:
        """True once the brain's action server answers a goal from this client.

        Discovery alone is not enough: right after rclpy's wait_for_server the server may not yet see this
        client's response reader, and Fast DDS then drops the response to the first goal ('failed to send
        response'); that goal runs, but its client never hears of it. So a goal that fails at once (an empty
        instruction: aborted as BAD_GOAL without touching the model) is sent until one comes back.
        """
        end = time.monotonic() + timeout
        if not self._clients[action].wait_for_server(timeout_sec=timeout):
            return False
        while time.monotonic() < end:
            try:
                self.send(action, self.goal(action, '')).wait(min(5.0, max(0.1, end - time.monotonic())))
                return True
            except TimeoutError:
                continue
        return False

    def goal(self, action: str, instruction: str, image=None, thinking: int = 0, max_image_age: float = 0.0,
             timeout: float = 0.0):
        goal = ACTION_TYPES[action].Goal(instruction=instruction, thinking=thinking, max_image_age=max_image_age,
                                         timeout=timeout)
        if image is not None:
            goal.image = image
        return goal

    def send(self, action: str, goal) -> GoalHandle:
        handle = GoalHandle()

        def on_feedback(message) -> None:
            handle.outcome.feedback.append(message.feedback)

        def on_result(future) -> None:
            response = future.result()
            handle.outcome.status = response.status
            handle.outcome.answer = response.result.answer
            handle.outcome.seconds = time.perf_counter() - handle._start
            handle._done.set()

        def on_response(future) -> None:
            goal_handle = future.result()
            handle.outcome.accepted = bool(goal_handle.accepted)
            if not goal_handle.accepted:
                handle.outcome.seconds = time.perf_counter() - handle._start
                handle._accepted.set()
                handle._done.set()
                return
            handle._on_accepted(goal_handle)
            handle._accepted.set()
            goal_handle.get_result_async().add_done_callback(on_result)

        future = self._clients[action].send_goal_async(goal, feedback_callback=on_feedback)
        future.add_done_callback(on_response)
        return handle

    def query(self, action: str, instruction: str, wait_timeout: float = 300.0, **goal_fields: Any) -> GoalOutcome:
        """Send a goal and wait for its outcome; goal_fields: image, thinking, max_image_age, timeout."""
        return self.send(action, self.goal(action, instruction, **goal_fields)).wait(wait_timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Send one goal to the robobrain node and print the answer.')
    parser.add_argument('action', choices=sorted(ACTION_TYPES))
    parser.add_argument('instruction')
    parser.add_argument('--image', help='image file to send in the goal (default: the camera topic)')
    parser.add_argument('--brain', default='/robobrain', help='the brain node (default /robobrain)')
    parser.add_argument('--thinking', choices=['default', 'off', 'on'], default='default')
    parser.add_argument('--timeout', type=float, default=0.0, help='[s] goal timeout (0 = node default)')
    args = parser.parse_args(rclpy.utilities.remove_ros_args(argv if argv is not None else sys.argv)[1:])
    image = None
    if args.image:
        import cv2

        from robobrain_ros.node.image_conversion import rgb_to_image_msg
        from std_msgs.msg import Header
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            parser.error(f'cannot read image {args.image}')
        image = rgb_to_image_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), Header(frame_id='camera_optical_frame'))
    thinking = {'default': 0, 'off': 1, 'on': 2}[args.thinking]
    with BrainClient(args.brain) as brain:
        if not brain.wait_for_server(args.action, 30.0):
            print(f'no action server at {args.brain}/{args.action}', file=sys.stderr)
            return 2
        outcome = brain.query(args.action, args.instruction, image=image, thinking=thinking, timeout=args.timeout)
    print(f'{outcome.status_name} in {outcome.seconds:.2f} s')
    print(outcome.answer)
    return 0 if outcome.status == GoalStatus.STATUS_SUCCEEDED else 1


if __name__ == '__main__':
    sys.exit(main())
