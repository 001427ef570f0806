"""The robot brain node: camera topics and planner goals in, RoboBrain's answers out as ROS data.

A thin layer: subscriptions store frames (frame_cache), action goals and ~/task instructions become
QueryRequests run by the QueryPipeline (HTTP on its own asyncio thread), outcomes become messages
(answer_messages, markers) and /diagnostics. Lifecycle: configure builds everything and probes the
server (an unreachable server is reported, not fatal), activate starts accepting goals.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rcl_interfaces.msg import SetParametersResult
from nav_msgs.msg import Path
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from robobrain_interfaces.action import Affordance, Ask, Ground, Plan, Point, Trajectory
from robobrain_interfaces.msg import (BoxAnswer, PlanAnswer, PointsAnswer, QueryStatus, TextAnswer,
                                      TrajectoryAnswer)
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES
from robobrain_ros.client import ChatClient, ClientConfig, ServerUnreachable
from robobrain_ros.client.generation import GenerationRunner
from robobrain_ros.node import parameters
from robobrain_ros.node.answer_messages import answer_message
from robobrain_ros.node.frame_cache import CachedFrame, FrameCache
from robobrain_ros.node.image_conversion import rgb_to_image_msg
from robobrain_ros.node.markers import answer_markers
from robobrain_ros.node.query_pipeline import CancelToken, QueryOutcome, QueryPipeline, QueryRequest
from robobrain_ros.protocol import Task, draw_annotations

ACTIONS: dict[str, tuple[type, Task]] = {
    'point': (Point, Task.POINTING),
    'affordance': (Affordance, Task.AFFORDANCE),
    'trajectory': (Trajectory, Task.TRAJECTORY),
    'ground': (Ground, Task.GROUNDING),
    'plan': (Plan, Task.PLANNING),
    'ask': (Ask, Task.GENERAL),
}

# Answer topics: latched, so a late subscriber (or `ros2 topic echo`) still gets the last answer.
ANSWER_TOPICS: dict[type, str] = {
    PointsAnswer: '~/points', BoxAnswer: '~/boxes', TrajectoryAnswer: '~/trajectory',
    PlanAnswer: '~/plan', TextAnswer: '~/answer',
}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_LAST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class BrainNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('robobrain', **kwargs)
        parameters.declare_parameters(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._frames = FrameCache()
        self._runner: GenerationRunner | None = None
        self._pipeline: QueryPipeline | None = None
        self._active = False
        self._admission = threading.Lock()
        self._admitted = 0
        self._tokens: dict[bytes, CancelToken] = {}
        self._task_workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._image_worker: concurrent.futures.ThreadPoolExecutor | None = None   # annotated images
        self._model = ''
        self._health: list = []
        self._health_pending = False
        self._stats = {'succeeded': 0, 'aborted': 0, 'canceled': 0, 'rejected': 0}
        self._last_latency_ms = 0.0
        self._last_error = ''
        self._entities: list = []    # everything created in on_configure, destroyed in on_cleanup

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        v = parameters.values(self)
        config = ClientConfig(base_urls=parameters.base_urls(v), api_key=v['server.api_key'],
                              connect_timeout=v['server.connect_timeout'], stall_timeout=v['server.stall_timeout'])
        self._runner = GenerationRunner(ChatClient(config), v['queries.max_concurrent'], v['queries.feedback_period'])
        self._runner.start()
        colour_topic = self.resolve_topic_name(v['topics.image'] or v['topics.compressed_image'])
        self._pipeline = QueryPipeline(parameters.pipeline_settings(v), self._frames, self._runner,
                                       now=self._now, model_name=self._model_name, colour_topic=colour_topic)
        self._task_workers = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix='robobrain-task')
        self._image_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='robobrain-annotate')
        self._create_publishers()
        self._create_subscriptions(v)
        self._create_action_servers(v['queries.result_timeout'])
        self._entities.append(self.create_timer(1.0, self._publish_diagnostics,
                                                callback_group=MutuallyExclusiveCallbackGroup()))
        self._entities.append(self.create_timer(v['server.health_period'], self._probe_server,
                                                callback_group=MutuallyExclusiveCallbackGroup()))
        self._check_server_now(v)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info('active: accepting goals on ' + ', '.join(
            self.resolve_topic_name(f'~/{name}') for name in ACTIONS))
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        self._active = False
        for token in list(self._tokens.values()):
            token.cancel()
        if self._task_workers is not None:
            self._task_workers.shutdown(wait=False, cancel_futures=True)
            self._task_workers = None
        if self._image_worker is not None:
            self._image_worker.shutdown(wait=False, cancel_futures=True)
            self._image_worker = None
        for entity in self._entities:
            if isinstance(entity, ActionServer):
                entity.destroy()
            elif isinstance(entity, Timer):
                self.destroy_timer(entity)
            elif isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
        self._entities.clear()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None

    # ---------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            reason = parameters.check_choice(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if param.name == 'model.extra_body':
                try:
                    parameters.parse_extra_body(param.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        if self._pipeline is not None:
            self._pipeline.update_settings(parameters.pipeline_settings(parameters.values(self)))

    # ---------------------------------------------------------------- inputs
    def _create_publishers(self) -> None:
        self._answer_pubs = {kind: self.create_lifecycle_publisher(kind, topic, LATCHED)
                             for kind, topic in ANSWER_TOPICS.items()}
        self._path_pub = self.create_lifecycle_publisher(Path, '~/trajectory_path', LATCHED)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, '~/markers', RELIABLE_LAST)
        self._annotated_pub = self.create_lifecycle_publisher(Image, '~/annotated_image', RELIABLE_LAST)
        # /diagnostics is published in every state: an inactive brain with a dead server must still say so.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._entities.extend([*self._answer_pubs.values(), self._path_pub, self._markers_pub,
                               self._annotated_pub, self._diagnostics_pub])

    def _create_subscriptions(self, v: dict[str, Any]) -> None:
        group = MutuallyExclusiveCallbackGroup()
        if v['topics.image']:
            self._entities.append(self.create_subscription(
                Image, v['topics.image'], self._colour_callback(False, v['topics.image']),
                qos_profile_sensor_data, callback_group=group))
        if v['topics.compressed_image']:
            self._entities.append(self.create_subscription(
                CompressedImage, v['topics.compressed_image'],
                self._colour_callback(True, v['topics.compressed_image']), qos_profile_sensor_data,
                callback_group=group))
        if v['topics.depth']:
            self._entities.append(self.create_subscription(
                Image, v['topics.depth'],
                lambda msg: self._frames.put_depth(self._cached(msg, False, v['topics.depth'])),
                qos_profile_sensor_data, callback_group=group))
        if v['topics.camera_info']:
            self._entities.append(self.create_subscription(
                CameraInfo, v['topics.camera_info'], self._frames.put_camera_info, qos_profile_sensor_data,
                callback_group=group))
        self._entities.append(self.create_subscription(String, '~/task', self._on_task, 10, callback_group=group))

    def _colour_callback(self, compressed: bool, topic: str):
        resolved = self.resolve_topic_name(topic)
        return lambda msg: self._frames.put_colour(self._cached(msg, compressed, resolved))

    def _cached(self, msg, compressed: bool, topic: str) -> CachedFrame:
        received = self._now()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        return CachedFrame(msg=msg, compressed=compressed, topic=topic, stamp=stamp or received, received=received)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ---------------------------------------------------------------- actions
    def _create_action_servers(self, result_timeout: int) -> None:
        group = ReentrantCallbackGroup()
        for name, (action_type, task) in ACTIONS.items():
            self._entities.append(ActionServer(
                self, action_type, f'~/{name}',
                execute_callback=lambda handle, t=task, a=action_type: self._execute(handle, t, a),
                goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                handle_accepted_callback=lambda handle: handle.execute(),
                callback_group=group, result_timeout=result_timeout, **ACTION_SERVICE_PROFILES))

    def _admit(self) -> str:
        """'' and a reserved slot when a new query may start, else the reason it may not."""
        if not self._active:
            return 'the node is not active (lifecycle state)'
        limit = self.get_parameter('queries.max_concurrent').value + self.get_parameter('queries.max_queued').value
        with self._admission:
            if self._admitted >= limit:
                return (f'{self._admitted} goals already running or queued (max_concurrent + max_queued = '
                        f'{limit})')
            self._admitted += 1
        return ''

    def _release(self) -> None:
        with self._admission:
            self._admitted -= 1

    def _on_goal(self, goal_request) -> GoalResponse:
        reason = self._admit()
        if reason:
            self._stats['rejected'] += 1
            self.get_logger().warning(f'goal rejected: {reason}', throttle_duration_sec=1.0)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        token = self._tokens.get(bytes(goal_handle.goal_id.uuid))
        if token is not None:
            token.cancel()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle, task: Task, action_type):
        goal_id = bytes(goal_handle.goal_id.uuid)
        token = CancelToken()
        self._tokens[goal_id] = token
        if goal_handle.is_cancel_requested:
            token.cancel()
        goal = goal_handle.request

        def feedback(stage: int, text: str, tokens: int) -> None:
            goal_handle.publish_feedback(action_type.Feedback(stage=stage, text=text, tokens=tokens))

        try:
            request = QueryRequest(task=task, instruction=goal.instruction, thinking=goal.thinking,
                                   image=goal.image, max_image_age=goal.max_image_age, timeout=goal.timeout)
            outcome = self._pipeline.run(request, feedback, token)
            message = answer_message(outcome)
            if outcome.code == QueryStatus.CANCELED and self._cancel_accepted(goal_handle, token):
                goal_handle.canceled()
                self._stats['canceled'] += 1
            elif outcome.ok:
                goal_handle.succeed()
                self._stats['succeeded'] += 1
            else:
                goal_handle.abort()
                self._stats['aborted'] += 1
                self.get_logger().warning(f'{task.value} goal aborted: {outcome.message}',
                                          throttle_duration_sec=1.0)
            self._publish_outputs(outcome, message)
            return action_type.Result(answer=message)
        finally:
            # rclpy keeps the goal, request included, as long as its result (queries.result_timeout): drop
            # the image (megabytes per goal), which nothing reads any more.
            goal.image = Image()
            self._tokens.pop(goal_id, None)
            self._release()

    @staticmethod
    def _cancel_accepted(goal_handle, token: CancelToken, wait: float = 1.0) -> bool:
        """True when the client's cancel request was accepted (the goal is CANCELING and may end CANCELED).

        _on_cancel sets the token before rclpy moves the goal to CANCELING, right after the callback returns; a
        query that stops at once (waiting for a frame) can finish in between. Give rclpy that moment.
        """
        end = time.monotonic() + wait
        while not goal_handle.is_cancel_requested and token.requested and time.monotonic() < end:
            time.sleep(0.005)
        return goal_handle.is_cancel_requested

    # ---------------------------------------------------------------- ~/task topic
    def _on_task(self, msg: String) -> None:
        reason = self._admit()
        if reason:
            self._stats['rejected'] += 1
            self.get_logger().warning(f'~/task instruction dropped: {reason}', throttle_duration_sec=1.0)
            return
        task = Task(self.get_parameter('queries.default_task').value)
        request = QueryRequest(task=task, instruction=msg.data)
        self._task_workers.submit(self._run_topic_query, request)

    def _run_topic_query(self, request: QueryRequest) -> None:
        try:
            outcome = self._pipeline.run(request, lambda *_: None, CancelToken())
            self._stats['succeeded' if outcome.ok else 'aborted'] += 1
            if not outcome.ok:
                self.get_logger().warning(f'~/task {request.task.value} failed: {outcome.message}')
            self._publish_outputs(outcome, answer_message(outcome))
        finally:
            self._release()

    # ---------------------------------------------------------------- outputs
    def _publish_outputs(self, outcome: QueryOutcome, message) -> None:
        if outcome.code == QueryStatus.CANCELED:
            return
        self._last_latency_ms = outcome.latency.get('total', 0.0)
        if not outcome.ok:
            self._last_error = outcome.message
        self._answer_pubs[type(message)].publish(message)
        if outcome.answer is None or outcome.header is None:
            return
        if isinstance(message, TrajectoryAnswer) and message.path.poses:
            self._path_pub.publish(message.path)
        if self.get_parameter('output.markers').value:
            markers = answer_markers(message, self.get_parameter('output.marker_lifetime').value)
            if markers is not None:
                self._markers_pub.publish(markers)
        worker = self._image_worker
        if self.get_parameter('output.annotated_image').value and outcome.rgb is not None and worker is not None:
            # Drawing, copying and serialising a full frame takes 5-10 ms (docs/BENCHMARKS.md): done on a
            # thread of its own so the goal's result does not wait for it.
            try:
                worker.submit(self._publish_annotated, outcome)
            except RuntimeError:   # shut down meanwhile
                pass

    def _publish_annotated(self, outcome: QueryOutcome) -> None:
        try:
            title = f'{outcome.request.task.value}: {outcome.request.instruction}'
            drawn = draw_annotations(outcome.rgb, outcome.answer, title)
            self._annotated_pub.publish(rgb_to_image_msg(drawn, outcome.header))
        except Exception as exc:  # a failed picture must not go unnoticed, nor break anything else
            self.get_logger().warning(f'annotated image not published: {exc}', throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- server health
    def _model_name(self) -> str:
        configured = self.get_parameter('server.model').value
        if configured:
            return configured
        if not self._model:
            models = self._runner.call(self._runner.client.list_models(), timeout=10.0)
            if not models:
                raise ServerUnreachable('the server lists no models at /v1/models')
            self._model = models[0]
        return self._model

    def _check_server_now(self, v: dict[str, Any]) -> None:
        try:
            self._health = self._runner.call(self._runner.client.check_health(),
                                             timeout=v['server.connect_timeout'] * 2 + 10.0)
        except concurrent.futures.TimeoutError:
            self._health = []
        reachable = [h for h in self._health if h.reachable]
        if reachable:
            self._model = self._model or (reachable[0].models[0] if reachable[0].models else '')
            self.get_logger().info(f'model server {reachable[0].base_url} serves {reachable[0].models}')
        else:
            errors = '; '.join(h.error for h in self._health) or 'no answer'
            self.get_logger().error(f'model server unreachable ({errors}); goals will abort with '
                                    'SERVER_UNREACHABLE until it answers: /diagnostics tells when')

    def _probe_server(self) -> None:
        if self._runner is None or self._health_pending:
            return
        self._health_pending = True
        future = self._runner.submit_coroutine(self._runner.client.check_health())

        def store(done: concurrent.futures.Future) -> None:
            self._health_pending = False
            if not done.cancelled() and done.exception() is None:
                self._health = done.result()
                if any(h.reachable for h in self._health) and not self._model:
                    first = next(h for h in self._health if h.reachable)
                    self._model = first.models[0] if first.models else ''

        future.add_done_callback(store)

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._server_status(), self._camera_status()]
        self._diagnostics_pub.publish(array)

    def _server_status(self) -> DiagnosticStatus:
        status = DiagnosticStatus(name=f'{self.get_name()}: model server',
                                  hardware_id=','.join(h.base_url for h in self._health))
        reachable = [h for h in self._health if h.reachable]
        healthy = [h for h in reachable if h.healthy]
        model = self.get_parameter('server.model').value or self._model
        if not self._health:
            status.level, status.message = DiagnosticStatus.WARN, 'not checked yet'
        elif not reachable:
            status.level, status.message = DiagnosticStatus.ERROR, 'server unreachable: ' + self._health[0].error
        elif not healthy:
            status.level, status.message = DiagnosticStatus.ERROR, 'server reachable but unhealthy'
        elif model and not any(model in h.models for h in healthy):
            status.level, status.message = DiagnosticStatus.ERROR, f"model '{model}' is not served"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"serving '{model}'"
        runner = self._runner
        values = {
            'reachable': str(bool(reachable)).lower(),
            'model': model,
            'models served': ','.join(m for h in reachable for m in h.models),
            'last latency [ms]': f'{self._last_latency_ms:.1f}',
            'requests in flight': str(runner.in_flight if runner else 0),
            'queue depth': str(runner.waiting if runner else 0),
            'goals admitted': str(self._admitted),
            'last error': self._last_error,
            **{f'goals {k}': str(n) for k, n in self._stats.items()},
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def _camera_status(self) -> DiagnosticStatus:
        status = DiagnosticStatus(name=f'{self.get_name()}: camera')
        frame = self._frames.latest_colour()
        if frame is None:
            status.level, status.message = DiagnosticStatus.WARN, 'no frame received yet'
            age = float('nan')
        else:
            age = self._now() - frame.stamp
            status.level, status.message = DiagnosticStatus.OK, f'last frame {age:.2f} s old'
        status.values = [KeyValue(key='frames received', value=str(self._frames.colour_count)),
                         KeyValue(key='last frame age [s]', value=f'{age:.3f}'),
                         KeyValue(key='camera_info', value=str(self._frames.camera_info() is not None).lower())]
        return status


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = BrainNode()
    # Each running or queued goal holds an executor thread while it waits for its answer; a few more keep
    # camera callbacks, timers and new goals flowing whatever the load.
    threads = (node.get_parameter('queries.max_concurrent').value
               + node.get_parameter('queries.max_queued').value + 4)
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    if node.get_parameter('autostart').value:
        node.trigger_configure()
        node.trigger_activate()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._teardown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
