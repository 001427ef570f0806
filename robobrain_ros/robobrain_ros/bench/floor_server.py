"""The two processes of the floor benchmark (bench/floor.py): a bare rclpy action server, and the client timing it.

    python -m robobrain_ros.bench.floor_server server --executor single --action floor_single [--result-timeout 1]
    python -m robobrain_ros.bench.floor_server client --executor single --action floor_single [--result-timeout 1]

The server is a plain Node with an rclpy ActionServer for robobrain_interfaces/action/Point: it accepts every goal
and succeeds it at once with an empty result, and serves until SIGINT or SIGTERM. The client reads one JSON command
a line on stdin and answers each with one line `FLOOR <json>` on stdout (anything else there is not an answer):
  {"cmd": "block", "payload": "empty"|"image", "pacing": "idle"|"back_to_back", "goals": N, "warmup": W}
      -> {"round_trip_ms": [...], "accepted_ms": [...], "kept": [...]} or {"error": "..."}
  {"cmd": "kept", "levels": [0, 200, ...], "goals": N}
      -> {"levels": {"0": {"round_trip_ms": [...]}, ...}} or {"error": "..."}
  {"cmd": "quit"}
Both sides run the executor named by --executor (single, multi or events).

Every spin has a finite timeout. The EventsExecutor of the PyPI wheels, spun without one (spin(), spin_once() or
spin_until_future_complete() with no timeout), never runs a callback and spins at 100% CPU, deaf to Ctrl-C. The
client waits on plain futures with spin_until_future_complete(future, timeout_sec=...): awaiting them in
coroutines left goals stuck.
"""

from __future__ import annotations

import argparse
import array
import json
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

EXECUTORS = ('single', 'multi', 'events')
PAYLOADS = ('empty', 'image')
PACINGS = ('idle', 'back_to_back')
IDLE_PAUSE = 0.020        # [s] between goals in the idle pacing
GOAL_TIMEOUT = 10.0       # [s] for a goal's response and for its result: beyond it the block fails
PROBE_TIMEOUT = 2.0       # [s] per probe goal while the client's endpoints are still being matched
PROBES = 10
DRAIN_MARGIN = 0.3        # [s] past result_timeout: the server's expiry timer has fired by then
IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 720
ANSWER = 'FLOOR '


def make_executor(kind: str):
    import rclpy.executors
    if kind == 'single':
        return rclpy.executors.SingleThreadedExecutor()
    if kind == 'multi':
        return rclpy.executors.MultiThreadedExecutor()
    if kind == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    raise ValueError(f'unknown executor {kind!r} (one of {", ".join(EXECUTORS)})')


def image_goal():
    """A Point goal with a 1280x720 rgb8 image (2,764,800 bytes). Its content does not matter: raw bytes are
    copied, never looked at, on the way."""
    from robobrain_interfaces.action import Point
    goal = Point.Goal(instruction='x')
    goal.image.width, goal.image.height, goal.image.encoding = IMAGE_WIDTH, IMAGE_HEIGHT, 'rgb8'
    goal.image.step = 3 * IMAGE_WIDTH
    goal.image.data = array.array('B', bytes(range(256))) * (3 * IMAGE_WIDTH * IMAGE_HEIGHT // 256)
    return goal


def empty_goal():
    from robobrain_interfaces.action import Point
    return Point.Goal(instruction='x')


def _init_ros() -> threading.Event:
    """rclpy without its SIGINT handler: SIGINT and SIGTERM set the returned event, which the loops poll between
    spins (every spin has a timeout), so the process always gets to destroy its node and shut down."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def serve(kind: str, action: str, result_timeout: int) -> int:
    import rclpy
    from rclpy.action import ActionServer, GoalResponse
    from rclpy.node import Node

    from robobrain_interfaces.action import Point

    def execute(goal_handle):
        goal_handle.succeed()
        return Point.Result()

    stop = _init_ros()
    executor = node = server = None
    try:
        executor = make_executor(kind)
        node = Node(f'{action}_server')
        server = ActionServer(node, Point, action, execute_callback=execute,
                              goal_callback=lambda _request: GoalResponse.ACCEPT, result_timeout=result_timeout)
        executor.add_node(node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        if server is not None:
            server.destroy()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


class FloorClient:
    """An ActionClient and its executor; times round trips to the server of the same action name."""

    def __init__(self, kind: str, action: str, result_timeout: int) -> None:
        from rclpy.action import ActionClient
        from rclpy.node import Node

        from robobrain_interfaces.action import Point
        self.kind = kind
        self.result_timeout = result_timeout
        self.executor = make_executor(kind)   # first: where this kind is missing, no node is left to clean up
        self.node = Node(f'{action}_client')
        self.client = ActionClient(self.node, Point, action)
        self.executor.add_node(self.node)
        self.goals = {'empty': empty_goal(), 'image': image_goal()}
        # Client-side times of the results the server may still keep (it keeps each result_timeout seconds).
        self._finished: deque[float] = deque()
        self.finished_total = 0   # goals this client saw through, probes included: the server's only client

    def close(self) -> None:
        self.client.destroy()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()

    def connect(self) -> None:
        """Wait for the server, then until a goal goes through: wait_for_server() sees the server in the graph
        before the goal service's endpoints have matched, and a request sent before that is lost."""
        if not self.client.wait_for_server(timeout_sec=30.0):
            raise RuntimeError(f'no action server in 30 s ({self.kind} executor)')
        for _ in range(PROBES):
            try:
                self.round_trip(self.goals['empty'], timeout=PROBE_TIMEOUT)
                return
            except TimeoutError:
                continue
        raise RuntimeError(f'no probe goal of {PROBES} went through ({self.kind} executor)')

    def kept(self) -> int:
        """Goals whose results the server keeps now, as far as this client can tell (it is the server's only one)."""
        horizon = time.monotonic() - self.result_timeout
        while self._finished and self._finished[0] <= horizon:
            self._finished.popleft()
        return len(self._finished)

    def drain(self) -> None:
        """Wait until the server has dropped every kept result, so each block starts with none."""
        if self._finished:
            time.sleep(max(0.0, self._finished[-1] + self.result_timeout + DRAIN_MARGIN - time.monotonic()))
        self._finished.clear()

    def round_trip(self, goal, timeout: float = GOAL_TIMEOUT) -> tuple[float, float]:
        """(goal accepted, result received) in seconds after send_goal_async."""
        from action_msgs.msg import GoalStatus
        start = time.perf_counter()
        sent = self.client.send_goal_async(goal)
        self._wait(sent, 'goal response', timeout)
        accepted = time.perf_counter()
        handle = sent.result()
        if not handle.accepted:
            raise RuntimeError('the server rejected a goal')
        result = handle.get_result_async()
        self._wait(result, 'result', timeout)
        done = time.perf_counter()
        self._finished.append(time.monotonic())
        self.finished_total += 1
        if result.result().status != GoalStatus.STATUS_SUCCEEDED:
            raise RuntimeError(f'goal ended with status {result.result().status}, not SUCCEEDED')
        return accepted - start, done - start

    def _wait(self, future, what: str, timeout: float) -> None:
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f'no {what} within {timeout:g} s ({self.kind} executor)')

    def pause(self, seconds: float) -> None:
        """Spin through the pause, as a client node does between goals: the goal's late status messages are
        handled now, not at the start of the next goal's round trip."""
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.executor.spin_once(timeout_sec=left)

    def block(self, payload: str, pacing: str, goals: int, warmup: int) -> dict[str, Any]:
        goal = self.goals[payload]
        for _ in range(warmup):
            self.round_trip(goal)
        self.drain()
        out: dict[str, list] = {'round_trip_ms': [], 'accepted_ms': [], 'kept': []}
        for _ in range(goals):
            if pacing == 'idle':
                self.pause(IDLE_PAUSE)
            out['kept'].append(self.kept())
            accepted, done = self.round_trip(goal)
            out['accepted_ms'].append(accepted * 1e3)
            out['round_trip_ms'].append(done * 1e3)
        return out

    def kept_levels(self, levels: list[int], goals: int) -> dict[str, Any]:
        """Back-to-back round trips (empty goal) once at least `level` goals have finished, for each level: the
        server keeps every one (its result_timeout outlasts the run). The probe goal of connect() and the measured
        goals count too; each level's answer says how many had finished when its first round trip began."""
        goal, out = self.goals['empty'], {}
        for level in sorted(levels):
            while self.finished_total < level:
                self.round_trip(goal)
            kept = self.finished_total
            out[str(level)] = {'kept': kept, 'round_trip_ms': [self.round_trip(goal)[1] * 1e3 for _ in range(goals)]}
        return {'levels': out}


def answer(payload: dict[str, Any]) -> None:
    print(ANSWER + json.dumps(payload), flush=True)


def client_loop(kind: str, action: str, result_timeout: int) -> int:
    import rclpy
    stop = _init_ros()
    client = None
    try:
        client = FloorClient(kind, action, result_timeout)
        client.connect()
        answer({'ready': True})
        for line in sys.stdin:
            command = json.loads(line)
            if command['cmd'] == 'quit' or stop.is_set():
                break
            try:
                if command['cmd'] == 'block':
                    answer(client.block(command['payload'], command['pacing'], command['goals'],
                                        command.get('warmup', 0)))
                else:
                    answer(client.kept_levels(command['levels'], command['goals']))
            except (RuntimeError, TimeoutError) as error:
                answer({'error': str(error)})
    except (RuntimeError, TimeoutError, ImportError) as error:
        answer({'error': f'{type(error).__name__}: {error}'})
        return 1
    finally:
        if client is not None:
            client.close()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m robobrain_ros.bench.floor_server',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('role', choices=('server', 'client'))
    parser.add_argument('--executor', choices=EXECUTORS, default='single')
    parser.add_argument('--action', default='floor')
    parser.add_argument('--result-timeout', type=int, default=1,
                        help='[s] how long the server keeps a finished goal (the client needs it to drain)')
    args = parser.parse_args(argv)
    if args.role == 'server':
        return serve(args.executor, args.action, args.result_timeout)
    return client_loop(args.executor, args.action, args.result_timeout)


if __name__ == '__main__':
    sys.exit(main())
