"""A client for the brain's actions, for scripts, tests and benchmarks (like nav2's BasicNavigator).

    with BrainClient() as brain:
        outcome = brain.query('point', 'the handle of the mug', image=image_msg)
        print(outcome.status_name, outcome.answer.points)

It spins its own node on a background executor thread, so calls can block and several goals can run at
once (`send` returns a handle; `query` waits). Also a command line:
`ros2 run robobrain_ros brain_query point "the mug handle" [--image file.jpg] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from unique_identifier_msgs.msg import UUID

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES
from robobrain_ros.action_table import ACTIONS
from robobrain_ros.node.executor_choice import EVENTS, SPIN_TIMEOUT, choose_executor, make_executor
from robobrain_ros.outcome_summary import REJECTED_REASON, message_to_data, summary_lines
from robobrain_ros.protocol.thinking import GOAL_WORDS, THINKING_DEFAULT

# Action name -> action type, from the one table of the six actions.
ACTION_TYPES: dict[str, type] = {action.name: action.action_type for action in ACTIONS}
# How long an answer may be missing before GoalHandle.wait() asks again: a cancel request without an answer, a goal
# the status topic says ended without its result (see GoalHandle).
RECOVERY_PERIOD = 2.0   # [s]
# How long brain_query waits for a goal to end after Ctrl-C canceled it: the brain aborts the server request at
# once, but a loaded machine can take seconds to say so.
CANCEL_WAIT = 30.0   # [s]
ENDED_STATUSES = (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED, GoalStatus.STATUS_CANCELED)
STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled', GoalStatus.STATUS_UNKNOWN: 'unknown'}


@dataclass
class GoalOutcome:
    accepted: bool
    status: int = GoalStatus.STATUS_UNKNOWN
    answer: Any = None                      # PointsAnswer, BoxAnswer, ... (the action result's `answer`)
    feedback: list[Any] = field(default_factory=list)
    seconds: float = 0.0                    # goal sent -> result received
    accepted_seconds: float = 0.0           # goal sent -> accepted or rejected by the server

    @property
    def status_name(self) -> str:
        return 'rejected' if not self.accepted else STATUS_NAMES.get(self.status, str(self.status))

    @property
    def text(self) -> str:
        """The streamed text, rebuilt from feedback."""
        return ''.join(f.text for f in self.feedback)


class GoalHandle:
    """A goal in flight: wait() for its outcome, cancel() it.

    While wait() waits it also recovers what the middleware can lose between two processes: a cancel request or its
    answer (the cancel is sent again; cancelling twice is harmless) and a result answer (asked for again once the
    status topic says the goal ended). Without that, a lost answer left the caller waiting for a goal long over.
    """

    def __init__(self, in_executor: Callable[[Callable[[], Any]], None]) -> None:
        self._in_executor = in_executor    # runs a call on the client's executor thread (see BrainClient.in_executor)
        self.outcome = GoalOutcome(accepted=False)
        self._done = threading.Event()
        self._accepted = threading.Event()
        self._handle = None
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._cancel_sent = 0.0        # time.monotonic() of the last cancel request sent, 0 = none
        self._cancel_answer: bool | None = None   # the server's answer: True = canceling, False = refused
        self._ended_seen = 0.0         # time.monotonic() the status topic first said the goal ended, 0 = not yet
        self._result_asked = 0.0       # time.monotonic() of the last result request
        self._start = time.perf_counter()

    def wait(self, timeout: float | None = None) -> GoalOutcome:
        end = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            left = RECOVERY_PERIOD if end is None else min(RECOVERY_PERIOD, end - time.monotonic())
            if left <= 0:
                raise TimeoutError(f'no result within {timeout} s')
            if not self._done.wait(left):
                self._recover_lost_answers()
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
            self._send_cancel(handle)

    @property
    def cancel_state(self) -> str:
        """Where the cancel stands, in words (for a caller that gave up waiting)."""
        with self._lock:
            if not self._cancel_requested:
                return 'no cancel was asked for'
            if self._handle is None:
                return 'the server never answered the goal, so no cancel could be sent'
            if self._cancel_answer is None:
                return 'the server never answered the cancel'
            if not self._cancel_answer:
                return 'the server refused the cancel (the goal had ended or was unknown to it)'
            if self._ended_seen:
                return 'the server canceled the goal, but its result never came'
            return 'the server accepted the cancel, but the goal has not ended'

    def _send_cancel(self, handle) -> None:
        with self._lock:
            self._cancel_sent = time.monotonic()
        self._in_executor(lambda: handle.cancel_goal_async().add_done_callback(self._on_cancel_answer))

    def _on_cancel_answer(self, future) -> None:
        goal_id = bytes(self._handle.goal_id.uuid)
        canceling = any(bytes(g.goal_id.uuid) == goal_id for g in future.result().goals_canceling)
        with self._lock:
            # One answer "canceling" is enough: a resent cancel for a goal already canceling may be refused.
            self._cancel_answer = self._cancel_answer or canceling

    def _ask_result(self, handle) -> None:
        with self._lock:
            self._result_asked = time.monotonic()
        self._in_executor(lambda: handle.get_result_async().add_done_callback(self._on_result))

    def _on_result(self, future) -> None:
        with self._lock:
            if self._done.is_set():   # the answer to a request sent again: the first one counts
                return
            response = future.result()
            self.outcome.status = response.status
            self.outcome.answer = response.result.answer
            self.outcome.seconds = time.perf_counter() - self._start
            self._done.set()

    def _on_goal_response(self, future) -> None:
        handle = future.result()
        self.outcome.accepted = bool(handle.accepted)
        self.outcome.accepted_seconds = time.perf_counter() - self._start
        if not handle.accepted:
            self.outcome.seconds = self.outcome.accepted_seconds
            self._accepted.set()
            self._done.set()
            return
        with self._lock:
            self._handle = handle
            cancel = self._cancel_requested
        self._ask_result(handle)
        if cancel:
            self._send_cancel(handle)
        self._accepted.set()

    def _recover_lost_answers(self) -> None:
        now = time.monotonic()
        with self._lock:
            handle = self._handle
            if handle is None:
                return
            resend_cancel = (self._cancel_requested and self._cancel_answer is None
                             and now - self._cancel_sent > RECOVERY_PERIOD)
            if handle.status in ENDED_STATUSES and not self._ended_seen:
                self._ended_seen = now
            ask_again = (self._ended_seen and now - self._ended_seen > RECOVERY_PERIOD
                         and now - self._result_asked > RECOVERY_PERIOD)
        if resend_cancel:
            self._send_cancel(handle)
        if ask_again:
            self._ask_result(handle)


def wait_until_answering(client: ActionClient, timeout: float = 30.0,
                         submit: Callable[[Callable[[], None]], None] = lambda send: send()) -> bool:
    """True once ``client``'s action server answers it; touches no goal and nothing robots see.

    Discovery alone is not enough: right after rclpy's wait_for_server the server may not yet see this client's
    response readers, and Fast DDS then drops the response to the first goal ('failed to send response'); that goal
    runs, but its client never hears of it. So a cancel request for a random goal id (no goal has it: the server
    answers ERROR_UNKNOWN_GOAL_ID, calls no callback and logs nothing) is sent until one answer comes back. The server
    creates and announces the goal, cancel and result services together, so once its cancel answers reach this
    client, its goal answers do too (a probe goal would do the same, but it would overwrite the latched answer topic,
    count an abort and set the node's "last error"). ``submit`` runs the send: BrainClient sends from its executor's
    thread (Jazzy's rclpy drops a response that arrives before the request is filed).
    """
    end = time.monotonic() + timeout
    if not client.wait_for_server(timeout_sec=timeout):
        return False
    while time.monotonic() < end:
        answered = threading.Event()
        # uuid4 is never all zeros (which would mean "cancel every goal").
        nobody = ClientGoalHandle(client, UUID(uuid=list(uuid.uuid4().bytes)), None)
        submit(lambda: nobody.cancel_goal_async().add_done_callback(lambda _: answered.set()))
        if answered.wait(min(2.0, max(0.1, end - time.monotonic()))):
            return True
    return False


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
        # rclpy's EventsExecutor where this rclpy has it: every response, feedback and status message of the brain
        # is handled on this one thread, in C++ up to the Python callback (executor_choice).
        self._executor = make_executor(choose_executor(EVENTS).kind, context=self._context)
        self._executor.add_node(self.node)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True, name='brain-client')
        self._thread.start()

    def _spin(self) -> None:
        """Spin until closed or the context shuts down, through any one callback's error.

        An exception out of one callback, or out of rclpy itself, would otherwise end this thread silently and with
        it every response, result and message this client waits for, while graph queries (wait_for_server) still
        answer. rclpy raises one when an ActionClient is created on a spinning node from another thread: the
        executor sees it half-built (AttributeError '_lock', ros2/rclpy#1589); the next wait sees it whole.
        """
        while not self._closing.is_set() and self._context.ok():
            try:
                # Never without a timeout (EventsExecutor, see executor_choice); between two waits it looks
                # whether the client was closed.
                self._executor.spin_once(timeout_sec=SPIN_TIMEOUT)
            except ExternalShutdownException:
                return
            except Exception:   # noqa: BLE001 - reported, and the other callbacks keep being served
                if self._closing.is_set() or not self._context.ok():
                    return
                self.node.get_logger().error(
                    f'a callback of this client failed; still serving the others:\n{traceback.format_exc()}',
                    throttle_duration_sec=1.0)

    def __enter__(self) -> 'BrainClient':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(timeout_sec=2.0)
        for client in self._clients.values():
            client.destroy()
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self._context)
        self._thread.join(timeout=2.0)

    def wait_for_server(self, action: str = 'point', timeout: float = 30.0) -> bool:
        """True once the brain's action server answers this client (see wait_until_answering)."""
        return wait_until_answering(self._clients[action], timeout, submit=self.in_executor)

    def goal(self, action: str, instruction: str, image=None, thinking: int = THINKING_DEFAULT,
             max_image_age: float = 0.0, timeout: float = 0.0, compressed_image=None, camera: str = '',
             target_frame: str = ''):
        """A goal of the action; target_frame only for the actions whose answers have 3D points."""
        # The message fields are float64 and uint8: `timeout=30` must not reach them as an int (Kilted's generated
        # code does not check types, and the C conversion then aborts the whole process at send).
        goal = ACTION_TYPES[action].Goal(instruction=instruction, thinking=int(thinking),
                                         max_image_age=float(max_image_age), timeout=float(timeout),
                                         camera=camera)
        if target_frame:
            if not hasattr(goal, 'target_frame'):
                raise ValueError(f'{action} answers have no 3D points: target_frame is for point, affordance, '
                                 'trajectory and ground')
            goal.target_frame = target_frame
        if image is not None:
            goal.image = image
        if compressed_image is not None:
            goal.compressed_image = compressed_image
        return goal

    def in_executor(self, call: Callable[[], Any]) -> None:
        """Run call on the executor's thread, where responses are handled: send every request of an rclpy client
        made on ``self.node`` this way.

        rclpy before Kilted (Jazzy's 7.1) files a sent request under its sequence number only after sending it,
        without a lock: a response the spinning thread takes in between is dropped ("Ignoring unexpected goal
        response") and that goal is never heard of again. Sent from the spinning thread, it cannot happen.
        """
        self._executor.create_task(call)

    def send(self, action: str, goal) -> GoalHandle:
        handle = GoalHandle(self.in_executor)

        def on_feedback(message) -> None:
            handle.outcome.feedback.append(message.feedback)

        def send_goal() -> None:
            future = self._clients[action].send_goal_async(goal, feedback_callback=on_feedback)
            future.add_done_callback(handle._on_goal_response)

        self.in_executor(send_goal)
        return handle

    def query(self, action: str, instruction: str, wait_timeout: float = 300.0, **goal_fields: Any) -> GoalOutcome:
        """Send a goal and wait for its outcome; goal_fields: image, compressed_image, thinking, max_image_age,
        timeout."""
        return self.send(action, self.goal(action, instruction, **goal_fields)).wait(wait_timeout)


def image_goal_fields(path: str) -> dict[str, Any] | None:
    """An image file as the goal field that carries it; None when the file is not an image that can be sent.

    A JPEG or PNG file goes as it is, as compressed_image: a fraction of the raw size to send, no decoding here,
    and a camera-sized JPEG reaches the model unchanged (the node's model.pass_through_jpeg). Any other format
    OpenCV reads goes decoded, as image. frame_id is empty either way: the image comes from no camera.
    """
    import cv2
    import numpy as np
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from robobrain_ros.node.image_conversion import compressed_image_size, rgb_to_image_msg
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    if compressed_image_size(data) is not None:
        image_format = 'jpeg' if data[:2] == b'\xff\xd8' else 'png'
        return {'compressed_image': CompressedImage(header=Header(), format=image_format, data=data)}
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return {'image': rgb_to_image_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), Header())}


def print_outcome(outcome: GoalOutcome, action: str, brain: str, as_json: bool) -> None:
    """The outcome on stdout: readable lines, or one JSON object with --json."""
    if as_json:
        print(json.dumps({'action': action, 'brain': brain, 'outcome': outcome.status_name,
                          'reason': None if outcome.accepted else REJECTED_REASON.format(brain=brain),
                          'seconds': round(outcome.seconds, 4), 'answer': message_to_data(outcome.answer)},
                         indent=1))
    elif not outcome.accepted:
        print(f'rejected by {brain}/{action} after {outcome.seconds:.2f} s: ' + REJECTED_REASON.format(brain=brain))
    elif outcome.answer is None:
        print(f'{outcome.status_name} in {outcome.seconds:.2f} s, without an answer')
    else:
        print('\n'.join(summary_lines(outcome.status_name, outcome.seconds, outcome.answer, QueryStatus)))


def main(argv: list[str] | None = None) -> int:
    """brain_query: exit 0 succeeded, 1 aborted/canceled/rejected, 2 no action server, 130 interrupted."""
    parser = argparse.ArgumentParser(description='Send one goal to the robobrain node and print the answer.')
    parser.add_argument('action', choices=sorted(ACTION_TYPES))
    parser.add_argument('instruction')
    parser.add_argument('--image', help='image file to send in the goal (default: the camera topic); JPEG and PNG '
                        'files are sent as they are (compressed_image)')
    parser.add_argument('--brain', default='/robobrain', help='the brain node (default /robobrain)')
    parser.add_argument('--thinking', choices=list(GOAL_WORDS), default='default')
    parser.add_argument('--timeout', type=float, default=0.0, help='[s] goal timeout (0 = node default)')
    parser.add_argument('--camera', default='', help="the node's camera to use (cameras.names; default: its first)")
    parser.add_argument('--target-frame', default='',
                        help='frame of the 3D answer, e.g. base_link (point, affordance, trajectory, ground; '
                             "default: the node's frames.target_frame)")
    parser.add_argument('--json', action='store_true', help='print the whole outcome as one JSON object')
    argv = list(argv if argv is not None else sys.argv)
    args = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    image_fields: dict[str, Any] = {}
    if args.image:
        image_fields = image_goal_fields(args.image)
        if image_fields is None:
            parser.error(f'cannot read image {args.image}')
    if args.target_frame and args.action in ('plan', 'ask'):
        parser.error(f'--target-frame: {args.action} answers have no 3D points')
    # Ctrl-C must reach this code (to cancel the goal), so rclpy installs no signal handler: its handler would
    # shut the context down first, and the cancel could not be sent.
    context = Context()
    rclpy.init(args=argv, context=context, signal_handler_options=SignalHandlerOptions.NO)
    # A unique node name: two brain_query at once must not be two nodes of one name.
    brain = BrainClient(args.brain, node_name=f'brain_query_{uuid.uuid4().hex[:8]}', context=context)
    handle = None
    try:
        if not brain.wait_for_server(args.action, 30.0):
            print(f'no action server at {args.brain}/{args.action} (is the node running, in this '
                  'ROS_DOMAIN_ID?)', file=sys.stderr)
            return 2
        handle = brain.send(args.action, brain.goal(args.action, args.instruction, thinking=GOAL_WORDS[args.thinking],
                                                    timeout=args.timeout, camera=args.camera,
                                                    target_frame=args.target_frame, **image_fields))
        if handle.wait_accepted():
            print(f'goal accepted by {args.brain}/{args.action}; waiting for the answer (Ctrl-C cancels it)',
                  file=sys.stderr, flush=True)
        outcome = handle.wait()
    except KeyboardInterrupt:
        if handle is None:
            return 130
        print(f'interrupted: canceling the goal (waiting up to {CANCEL_WAIT:g} s for it to end; Ctrl-C again '
              'leaves at once)', file=sys.stderr, flush=True)
        handle.cancel()
        try:
            outcome = handle.wait(CANCEL_WAIT)
        except (TimeoutError, KeyboardInterrupt) as exc:
            waited = 'left without waiting' if isinstance(exc, KeyboardInterrupt) else f'not ended in {CANCEL_WAIT:g} s'
            print(f'{waited}: {handle.cancel_state}', file=sys.stderr)
            return 130
        print_outcome(outcome, args.action, args.brain, args.json)
        return 130
    finally:
        brain.close()
        rclpy.try_shutdown(context=context)
    print_outcome(outcome, args.action, args.brain, args.json)
    return 0 if outcome.status == GoalStatus.STATUS_SUCCEEDED else 1


if __name__ == '__main__':
    sys.exit(main())
