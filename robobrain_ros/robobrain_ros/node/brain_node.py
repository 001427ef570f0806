"""The robot brain node: camera topics and planner goals in, RoboBrain's answers out as ROS data.

A thin layer: subscriptions store each camera's frames (camera, frame_cache), action goals and ~/task
instructions become QueryRequests run by the QueryPipeline in the node's query threads (HTTP on its own asyncio
thread), outcomes become messages (answer_messages, standard_messages, markers) and /diagnostics. No executor
callback waits for anything: an accepted goal's query runs in a query thread, which hands the goal's end back to
the executor when it is ready (goal_handle.execute() then runs a callback that only sets the end state and returns
the result). So one executor thread serves the node, rclpy's EventsExecutor where it works (executor_choice).
Target frames come from a TransformLookup (tf2 on a robot: tf2_transforms), created when a target frame is first
needed. Lifecycle: configure validates the settings, builds everything and negotiates with the model server (an
unreachable server is reported, not fatal); activate starts accepting goals; deactivate, cleanup and shutdown end
every running goal (aborted with NODE_STOPPING) before going on.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from robobrain_interfaces.msg import QueryStatus, TrajectoryAnswer
from robobrain_ros.action_services import ACTION_SERVICE_PROFILES
from robobrain_ros.action_table import ACTIONS, ANSWER_TOPICS, BrainAction
from robobrain_ros.model_client import ChatClient, ClientConfig, ServerUnreachable
from robobrain_ros.model_client.api_key import insecure_key_urls
from robobrain_ros.model_client.base_urls import base_urls_problem
from robobrain_ros.model_client.generation import GenerationRunner
from robobrain_ros.node import diagnostics, executor_choice, parameters
from robobrain_ros.node.answer_messages import answer_message
from robobrain_ros.node.camera import DEFAULT_CAMERA, Camera
from robobrain_ros.node.diagnostics import GoalCounts
from robobrain_ros.node.frame_cache import CachedFrame
from robobrain_ros.node.goal_registry import GoalRegistry
from robobrain_ros.node.image_conversion import rgb_to_image_msg
from robobrain_ros.node.latest_only_worker import LatestOnlyWorker
from robobrain_ros.node.markers import answer_markers
from robobrain_ros.node.query_pipeline import QueryCode, QueryOutcome, QueryPipeline, QueryRequest
from robobrain_ros.node.server_monitor import ServerMonitor, ServerSnapshot
from robobrain_ros.node.server_profile import ServerProfile
from robobrain_ros.node.standard_messages import DetectionPublisher, pose_array
from robobrain_ros.node.transform_lookup import TransformLookup, TransformUnavailable
from robobrain_ros.protocol import Task, draw_annotations

# Answer topics: latched, so a late subscriber (or `ros2 topic echo`) still gets the last answer.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_LAST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# [s] after the last goal ended on teardown, before the action servers are destroyed (results still go out).
RESULT_FLUSH = 0.5


class ConfigurationError(Exception):
    """A setting that makes configure fail; the message says which and why."""


TransformLookupFactory = Callable[[LifecycleNode], TransformLookup]


def tf2_lookup(node: LifecycleNode) -> TransformLookup:
    """The robot's transforms: tf2 (TransformUnavailable naming what to install when tf2_ros is missing)."""
    from robobrain_ros.node.tf2_transforms import Tf2TransformLookup, tf2_missing
    missing = tf2_missing()
    if missing:
        raise TransformUnavailable(missing)
    return Tf2TransformLookup(node)


class BrainNode(LifecycleNode):
    def __init__(self, transform_lookup: TransformLookupFactory = tf2_lookup, **kwargs: Any) -> None:
        """transform_lookup(node) gives the lookup for target frames (tf2; tests pass a stand-in)."""
        super().__init__('robobrain', **kwargs)
        parameters.declare_parameters(self)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._settings: parameters.NodeSettings | None = None   # from configure on: typed, kept up to date
        self._transform_lookup_factory = transform_lookup
        self._transform_lookup: TransformLookup | None = None
        self._transform_lock = threading.Lock()
        self._cameras: dict[str, Camera] = {}
        # A clock that jumps back (a recording played again, `ros2 bag play --loop`) leaves the cached frames stamped
        # in its future: a goal would take them as the newest, 0 s old. They are dropped, as tf2 drops its buffer.
        self._clock_jump = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=False),
            post_callback=self._on_clock_jump_back)
        self._runner: GenerationRunner | None = None
        self._query_threads: ThreadPoolExecutor | None = None
        # A finished goal's end, from its query thread to the action server's execute callback: goal id -> call
        # that sets the end state and returns the result.
        self._endings: dict[bytes, Callable[[], Any]] = {}
        self._endings_lock = threading.Lock()
        self._diagnostics_pub: Publisher | None = None
        self._pipeline: QueryPipeline | None = None
        self._annotator: LatestOnlyWorker | None = None
        self._preparer: LatestOnlyWorker | None = None
        self._active = False
        self._goals = GoalRegistry()
        self._monitor: ServerMonitor | None = None
        self._stats = {'succeeded': 0, 'aborted': 0, 'canceled': 0, 'rejected': 0}
        self._last_latency_ms = 0.0
        self._last_error = ''
        self._entities: list = []    # everything created in on_configure, destroyed in on_cleanup
        # Held by the timer callbacks while they run and by _teardown while it takes their publisher and runner
        # away: a callback the executor dispatched before the teardown runs to its end or finds nothing to use.
        self._teardown_lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure(parameters.values(self))
        except ConfigurationError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # rclpy would swallow it: say what happened and leave nothing half-built
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self, v: dict[str, Any]) -> None:
        problem = base_urls_problem(parameters.base_urls(v), 'server.base_urls') or parameters.check_settings(v)
        if problem:
            raise ConfigurationError(problem)
        self._settings = settings = parameters.node_settings(v)
        urls = settings.base_urls
        for name, camera_topics in settings.cameras.items():
            if not camera_topics.colour:
                where = ('topics.image and topics.compressed_image' if name == DEFAULT_CAMERA else
                         f'cameras.{name}.image and cameras.{name}.compressed_image')
                raise ConfigurationError(f'{where} are both empty: the node would have no camera {name} '
                                         '(set at least one)')
        target_frame = settings.pipeline.target_frame
        if target_frame:
            try:   # now, not at the first goal: the transform history fills while the node waits for goals
                self._transforms()
            except TransformUnavailable as exc:
                raise ConfigurationError(f"frames.target_frame is '{target_frame}', but {exc}") from None
        try:
            api_key = parameters.load_api_key(settings.api_key_env, settings.api_key_file)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        for url in insecure_key_urls(urls, api_key):
            self.get_logger().warning(f'the API key goes to {url} over plain http: anyone on the network path can '
                                      'read it (use https, or a server on this machine)')
        config = ClientConfig(base_urls=urls, api_key=api_key, connect_timeout=settings.connect_timeout,
                              stall_timeout=settings.stall_timeout)
        self._runner = GenerationRunner(ChatClient(config), settings.max_concurrent, settings.feedback_period)
        self._runner.start()
        logger = self.get_logger()
        self._monitor = ServerMonitor(self._runner, lambda: self._settings.negotiation, logger.info, logger.error)
        self._cameras = {name: Camera(name, camera_topics, colour_topic=self.resolve_topic_name(camera_topics.colour))
                         for name, camera_topics in settings.cameras.items()}
        self._pipeline = QueryPipeline(settings.pipeline, self._cameras, self._runner, now=self._now,
                                       server=self._server_profile, transforms=self._transforms)
        self._annotator = LatestOnlyWorker('robobrain-annotate')
        self._preparer = LatestOnlyWorker('robobrain-prepare')
        # One thread per admitted query (admission caps them at max_concurrent + max_queued): a query waits for
        # its frame, its request slot and its answer there, never on the executor.
        self._query_threads = ThreadPoolExecutor(settings.goal_limit, thread_name_prefix='robobrain-query')
        self._create_publishers()
        for camera in self._cameras.values():
            self._create_camera_subscriptions(camera)
        self._entities.append(self.create_subscription(String, '~/task', self._on_task, 10,
                                                       callback_group=MutuallyExclusiveCallbackGroup()))
        self._create_action_servers(settings.result_timeout)
        self._entities.append(self.create_timer(1.0, self._publish_diagnostics,
                                                callback_group=MutuallyExclusiveCallbackGroup()))
        self._entities.append(self.create_timer(settings.health_period, self._probe_server,
                                                callback_group=MutuallyExclusiveCallbackGroup()))
        self._monitor.check_now(health_timeout=settings.connect_timeout * 2 + 10.0)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info('active: accepting goals on ' + ', '.join(
            self.resolve_topic_name(f'~/{action.name}') for action in ACTIONS))
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_goals('the node was deactivated')
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _stop_goals(self, reason: str) -> None:
        """No new goals; every running one ends (aborted, NODE_STOPPING) within queries.drain_timeout."""
        self._active = False
        timeout = self._settings.drain_timeout if self._settings else 0.0   # never configured: no goal ran
        if not self._goals.stop_all(reason, timeout):
            self.get_logger().error(f'{self._goals.admitted} goals still running {timeout:g} s after: {reason}')

    def _teardown(self) -> None:
        running = self._goals.admitted
        self._stop_goals('the node is shutting down')
        if running:
            # The goals have ended; give rclpy a moment to send their results before the servers go.
            time.sleep(RESULT_FLUSH)
        for worker in (self._annotator, self._preparer):
            if worker is not None:
                worker.stop()
        self._annotator = self._preparer = None
        if self._query_threads is not None:
            self._query_threads.shutdown(wait=False)   # every query has ended (or was given up on) above
            self._query_threads = None
        with self._teardown_lock:
            # Newest first: the timers go before the publisher and the runner they use.
            entities, self._entities = self._entities[::-1], []
            runner, self._runner = self._runner, None
            self._monitor = None
            self._diagnostics_pub = None
        for entity in entities:
            if isinstance(entity, ActionServer):
                entity.destroy()
            elif isinstance(entity, Timer):
                self.destroy_timer(entity)
            elif isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
        if runner is not None:
            runner.stop()
        with self._transform_lock:
            lookup, self._transform_lookup = self._transform_lookup, None
        if lookup is not None:
            lookup.close()

    # ---------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        # The whole set after the change must make sense, not only each value in its own range.
        candidate = parameters.values(self)
        candidate.update({param.name: param.value for param in params})
        reason = parameters.check_settings(candidate)
        return SetParametersResult(successful=not reason, reason=reason)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        self._settings = parameters.node_settings(parameters.values(self))
        if self._pipeline is not None:
            self._pipeline.update_settings(self._settings.pipeline)

    # ---------------------------------------------------------------- inputs
    def _create_publishers(self) -> None:
        self._answer_pubs = {kind: self.create_lifecycle_publisher(kind, topic, LATCHED)
                             for kind, topic in ANSWER_TOPICS.items()}
        self._path_pub = self.create_lifecycle_publisher(Path, '~/trajectory_path', LATCHED)
        self._poses_pub = self.create_lifecycle_publisher(PoseArray, '~/poses', LATCHED)
        detections = DetectionPublisher(lambda kind: self.create_lifecycle_publisher(kind, '~/detections', LATCHED))
        if detections.missing:
            self.get_logger().info(detections.missing)
        self._detections = detections
        # Markers and annotated images per camera: each camera's view shows its own latest answer. The topics.*
        # camera keeps the plain names.
        self._markers_pubs, self._annotated_pubs = {}, {}
        for name, camera in self._cameras.items():
            self._markers_pubs[name] = self.create_lifecycle_publisher(MarkerArray, camera.output_topic('markers'),
                                                                       RELIABLE_LAST)
            self._annotated_pubs[name] = self.create_lifecycle_publisher(
                Image, camera.output_topic('annotated_image'), RELIABLE_LAST)
        # /diagnostics is published in every state: an inactive brain with a dead server must still say so.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._entities.extend([*self._answer_pubs.values(), self._path_pub, self._poses_pub,
                               *([detections.publisher] if detections.publisher else []),
                               *self._markers_pubs.values(), *self._annotated_pubs.values(), self._diagnostics_pub])

    def _create_camera_subscriptions(self, camera: Camera) -> None:
        group = MutuallyExclusiveCallbackGroup()
        topics, frames = camera.topics, camera.frames
        # Deserialising subscriptions, not raw=True: with rmw_fastrtps a raw take copies the frame twice before
        # rclpy's bytes (3 copies of 25 MB per 4K frame against 2), and the goal then deserialises it once more;
        # measured in paired runs (docs/BENCHMARKS.md, "Camera frames"): fewer 4K frames received with raw.
        if topics.image:
            self._entities.append(self.create_subscription(
                Image, topics.image, self._colour_callback(camera, Image, topics.image),
                qos_profile_sensor_data, callback_group=group))
        if topics.compressed_image:
            self._entities.append(self.create_subscription(
                CompressedImage, topics.compressed_image,
                self._colour_callback(camera, CompressedImage, topics.compressed_image), qos_profile_sensor_data,
                callback_group=group))
        if topics.depth:
            depth_topic = self.resolve_topic_name(topics.depth)
            self._entities.append(self.create_subscription(
                Image, topics.depth, lambda msg: frames.put_depth(self._cached(msg, Image, depth_topic)),
                qos_profile_sensor_data, callback_group=group))
        if topics.camera_info:
            self._entities.append(self.create_subscription(
                CameraInfo, topics.camera_info, frames.put_camera_info, qos_profile_sensor_data,
                callback_group=group))

    def _colour_callback(self, camera: Camera, msg_type: type, topic: str):
        resolved, frames = self.resolve_topic_name(topic), camera.frames

        def on_frame(msg) -> None:
            frames.put_colour(self._cached(msg, msg_type, resolved))
            self._prepare_ahead(camera.name)
        return on_frame

    def _prepare_ahead(self, camera_name: str) -> None:
        """The camera's newest frame resized and encoded before a goal asks for it (queries.prepare_ahead).

        Called when a frame arrives and when the last running query ends. Off the executor, in a thread whose
        OpenCV work releases the GIL; newest frame only (a busy thread skips the frames between). Not while queries
        run: a planner that waits for each answer sends its next goal after them, and under load the CPU is better
        spent on the queries than on frames that the goals in flight no longer need.
        """
        pipeline, preparer = self._pipeline, self._preparer
        if (pipeline is not None and preparer is not None and self._goals.admitted == 0
                and pipeline.wants_frames_ahead(camera_name)):
            preparer.submit(lambda: pipeline.prepare_newest_frame(camera_name))

    def _cached(self, msg, msg_type: type, topic: str) -> CachedFrame:
        received = self._now()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        return CachedFrame(msg, compressed=msg_type is CompressedImage, topic=topic, stamp=stamp or received,
                           received=received, frame_id=msg.header.frame_id)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_clock_jump_back(self, jump: TimeJump) -> None:
        for camera in self._cameras.values():
            camera.frames.forget_frames()
        self.get_logger().info(f'the clock jumped back {-jump.delta.nanoseconds * 1e-9:.3f} s: cached frames dropped')

    def _transforms(self) -> TransformLookup:
        """The transform lookup, made on first use (a node that never needs a target frame never listens to /tf);
        TransformUnavailable when it cannot be made."""
        with self._transform_lock:
            if self._transform_lookup is None:
                self._transform_lookup = self._transform_lookup_factory(self)
                self.get_logger().info('listening to /tf and /tf_static for target frames')
            return self._transform_lookup

    # ---------------------------------------------------------------- actions
    def _create_action_servers(self, result_timeout: int) -> None:
        group = MutuallyExclusiveCallbackGroup()
        for action in ACTIONS:
            self._entities.append(ActionServer(
                self, action.action_type, f'~/{action.name}', execute_callback=self._deliver_end,
                goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                handle_accepted_callback=lambda handle, a=action: self._on_accepted(handle, a),
                callback_group=group, result_timeout=result_timeout, **ACTION_SERVICE_PROFILES))

    def _admit(self) -> str:
        """'' and a reserved slot when a new query may start, else the reason it may not."""
        if not self._active:
            return 'the node is not active (lifecycle state)'
        return self._goals.admit(self._settings.goal_limit)

    def _on_goal(self, goal_request) -> GoalResponse:
        reason = self._admit()
        if reason:
            self._stats['rejected'] += 1
            self.get_logger().warning(f'goal rejected: {reason}', throttle_duration_sec=1.0)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, goal_handle, action: BrainAction) -> None:
        # The token exists before the query starts: a cancel in between is kept, not lost.
        self._goals.register(bytes(goal_handle.goal_id.uuid))
        try:
            self._query_threads.submit(self._run_goal, goal_handle, action)
        except (AttributeError, RuntimeError):   # torn down meanwhile (no threads, or shut down)
            self._goals.finish(bytes(goal_handle.goal_id.uuid))
            self._stats['aborted'] += 1
            self._hand_over_end(goal_handle, self._failed_result(action, QueryCode.NODE_STOPPING,
                                                                 'the node is shutting down'), 'aborted')

    def _on_cancel(self, goal_handle) -> CancelResponse:
        token = self._goals.token(bytes(goal_handle.goal_id.uuid))
        if token is not None:
            token.cancel()
        return CancelResponse.ACCEPT

    def _run_goal(self, goal_handle, action: BrainAction) -> None:
        """In a query thread: the goal's query, its outputs, then its end handed to the executor."""
        goal_id = bytes(goal_handle.goal_id.uuid)
        token = self._goals.register(goal_id)
        goal = goal_handle.request
        camera = ''

        def feedback(stage: int, text: str, tokens: int) -> None:
            goal_handle.publish_feedback(action.action_type.Feedback(stage=stage, text=text, tokens=tokens))

        try:
            request = QueryRequest(task=action.task, instruction=goal.instruction, thinking=goal.thinking,
                                   image=goal.image, compressed_image=goal.compressed_image,
                                   max_image_age=goal.max_image_age, timeout=goal.timeout, camera=goal.camera,
                                   target_frame=getattr(goal, 'target_frame', ''))
            outcome = self._pipeline.run(request, feedback, token)
            camera = outcome.camera
            message = answer_message(outcome)
            # Outputs first, the goal's end after: a client that hears the end finds the topics up to date.
            self._publish_outputs(outcome, message)
            end = self._end_state(goal_handle, token, outcome, action.task)
            result = action.action_type.Result(answer=message)
        except Exception as exc:  # a bug must still end the goal, with a result that says so
            message = f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'{action.name} goal failed inside the node: {message}')
            self._last_error = message
            self._stats['aborted'] += 1
            end, result = 'aborted', self._failed_result(action, QueryCode.INTERNAL_ERROR, message)
        finally:
            # rclpy keeps the goal, request included, as long as its result (queries.result_timeout): drop
            # the images (megabytes per goal), which nothing reads any more.
            goal.image = Image()
            goal.compressed_image = CompressedImage()
        try:
            self._hand_over_end(goal_handle, result, end)
        finally:
            self._goals.finish(goal_id)
        if camera:
            self._prepare_ahead(camera)

    def _end_state(self, goal_handle, token, outcome: QueryOutcome, task: Task) -> str:
        """How the goal ends: 'canceled', 'succeeded' or 'aborted' (counted and, for an abort, logged)."""
        if outcome.code is QueryCode.CANCELED and self._cancel_accepted(goal_handle, token):
            end = 'canceled'
        elif outcome.ok:
            end = 'succeeded'
        else:
            end = 'aborted'
            self.get_logger().warning(f'{task.value} goal aborted ({outcome.code.name}): {outcome.message}',
                                      throttle_duration_sec=1.0)
        self._stats[end] += 1
        return end

    def _hand_over_end(self, goal_handle, result, end: str) -> None:
        """Any thread: the goal ends with result on the executor's thread, where rclpy sends it (_deliver_end)."""
        def deliver():
            {'canceled': goal_handle.canceled, 'succeeded': goal_handle.succeed, 'aborted': goal_handle.abort}[end]()
            return result
        goal_id = bytes(goal_handle.goal_id.uuid)
        with self._endings_lock:
            self._endings[goal_id] = deliver
        try:
            goal_handle.execute()
        except Exception as exc:   # the action server was destroyed meanwhile: nobody can hear this goal any more
            with self._endings_lock:
                self._endings.pop(goal_id, None)
            self.get_logger().warning(f'a goal ended after its action server was gone: {type(exc).__name__}: {exc}')

    def _deliver_end(self, goal_handle):
        """The action servers' execute callback, run once the query handed its end over: never waits."""
        with self._endings_lock:
            deliver = self._endings.pop(bytes(goal_handle.goal_id.uuid))
        return deliver()

    @staticmethod
    def _failed_result(action: BrainAction, code: QueryCode, message: str):
        result = action.action_type.Result()
        result.answer.info.task = action.task.value
        result.answer.info.status.code = getattr(QueryStatus, code.name)
        result.answer.info.status.message = message
        return result

    @staticmethod
    def _cancel_accepted(goal_handle, token, wait: float = 1.0) -> bool:
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
        key = object()
        token = self._goals.register(key)
        request = QueryRequest(task=self._settings.default_task, instruction=msg.data)
        try:
            self._query_threads.submit(self._run_topic_query, key, token, request)
        except (AttributeError, RuntimeError):   # torn down meanwhile
            self._goals.finish(key)

    def _run_topic_query(self, key: object, token, request: QueryRequest) -> None:
        try:
            outcome = self._pipeline.run(request, lambda *_: None, token)
            self._stats['succeeded' if outcome.ok else 'aborted'] += 1
            if not outcome.ok:
                self.get_logger().warning(f'~/task {request.task.value} failed ({outcome.code.name}): '
                                          f'{outcome.message}')
            self._publish_outputs(outcome, answer_message(outcome))
        except Exception as exc:  # nobody waits on this thread: the log is where a bug must show
            self.get_logger().error(f'~/task query failed inside the node: {type(exc).__name__}: {exc}')
        finally:
            self._goals.finish(key)

    # ---------------------------------------------------------------- outputs
    def _publish_outputs(self, outcome: QueryOutcome, message) -> None:
        """Answer topic, path, markers and annotated image; a failure here is logged, never the goal's end."""
        if outcome.code is QueryCode.CANCELED:
            return
        self._last_latency_ms = outcome.latency.get('total', 0.0)
        if not outcome.ok:
            self._last_error = f'{outcome.code.name}: {outcome.message}'
        try:
            self._answer_pubs[type(message)].publish(message)
            if isinstance(message, TrajectoryAnswer) and message.path.poses:
                self._path_pub.publish(message.path)
            poses = pose_array(message)
            if poses is not None:
                self._poses_pub.publish(poses)
            self._detections.publish(message)
            if self._settings.markers and outcome.camera in self._markers_pubs:
                self._markers_pubs[outcome.camera].publish(answer_markers(message, self._settings.marker_lifetime))
        except Exception as exc:
            self.get_logger().error(f'answer outputs not published: {type(exc).__name__}: {exc}',
                                    throttle_duration_sec=5.0)
        annotator, publisher = self._annotator, self._annotated_pubs.get(outcome.camera)
        # Drawn only for a subscriber (rviz, a recorder): decoding, drawing and serialising a frame nobody
        # watches took a quarter of the node's CPU time under back-to-back goals.
        if (self._settings.annotated_image and outcome.frame_rgb is not None and outcome.answer is not None
                and outcome.header is not None and annotator is not None and publisher is not None
                and publisher.get_subscription_count() > 0):
            # Drawing, copying and serialising a full frame takes 5-10 ms (docs/BENCHMARKS.md): done on a
            # thread of its own, newest answer only, so the goal's result does not wait for it.
            annotator.submit(lambda: self._publish_annotated(outcome))

    def _publish_annotated(self, outcome: QueryOutcome) -> None:
        try:
            title = f'{outcome.request.task.value}: {outcome.request.instruction}'
            drawn = draw_annotations(outcome.frame_rgb(), outcome.answer, title)
            publisher = self._annotated_pubs.get(outcome.camera)
            if publisher is not None:
                publisher.publish(rgb_to_image_msg(drawn, outcome.header))
        except Exception as exc:  # a failed picture must not go unnoticed, nor break anything else
            self.get_logger().warning(f'annotated image not published: {exc}', throttle_duration_sec=5.0)

    # ---------------------------------------------------------------- model server
    def _server_profile(self) -> ServerProfile:
        monitor = self._monitor
        if monitor is None:
            raise ServerUnreachable('the node is not configured')
        return monitor.profile()

    def _probe_server(self) -> None:
        with self._teardown_lock:   # a runner stopped meanwhile would never run the check, nor say so
            if self._monitor is not None:
                self._monitor.probe()

    # ---------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        with self._teardown_lock:
            monitor, runner, publisher = self._monitor, self._runner, self._diagnostics_pub
        if publisher is None:   # torn down after this call was dispatched
            return
        name = self.get_fully_qualified_name()
        server = monitor.snapshot() if monitor is not None else ServerSnapshot()
        goals = GoalCounts(admitted=self._goals.admitted, in_flight=runner.in_flight if runner else 0,
                           waiting=runner.waiting if runner else 0, ended=dict(self._stats),
                           last_latency_ms=self._last_latency_ms, last_error=self._last_error)
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diagnostics.server_status(name, server, self._settings, goals),
                        *(diagnostics.camera_status(name, camera, self._now()) for camera in self._cameras.values())]
        with self._teardown_lock:
            if self._diagnostics_pub is not None:
                self._diagnostics_pub.publish(array)


class GracefulStop:
    """SIGINT / SIGTERM: end every goal (aborted, NODE_STOPPING, results sent), then stop the executor.

    rclpy's own handler shuts the context down at once, so results of goals in flight could never be sent and
    their clients waited for nothing. Here the goals end while the executor still spins; `done` is set after
    that, which ends the spin. A second signal (launch forwards SIGINT again) finds the stop under way and does
    nothing.
    """

    def __init__(self, node: BrainNode) -> None:
        self._node = node
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    def request(self, signum: int = 0, frame: Any = None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._stop, name='robobrain-stop', daemon=True)
            self._thread.start()

    def _stop(self) -> None:
        self._node.get_logger().info('stopping: ending the goals in flight')
        self._node._teardown()
        self.done.set()

    def finish(self) -> None:
        """After the spin: the stop requested by a signal completes, or, without one, happens now."""
        if self._thread is None:
            self._node._teardown()
        else:
            self._thread.join()


def main(args: list[str] | None = None, transform_lookup: TransformLookupFactory = tf2_lookup) -> None:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = BrainNode(transform_lookup)
    stop = GracefulStop(node)
    signal.signal(signal.SIGINT, stop.request)
    signal.signal(signal.SIGTERM, stop.request)
    choice = executor_choice.choose_executor(node.get_parameter('executor').value)
    if choice.note:
        node.get_logger().warning(choice.note)
    node.get_logger().info(f'executor: {choice.kind}')
    executor = executor_choice.make_executor(choice.kind)
    executor.add_node(node)
    if node.get_parameter('autostart').value and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()
    try:
        # Short waits, not spin(): Python runs the signal handler only between them, an unconfigured node has no
        # timer that would end a wait, and EventsExecutor must never wait without a timeout (executor_choice).
        while not stop.done.is_set() and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=executor_choice.SPIN_TIMEOUT)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.finish()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
