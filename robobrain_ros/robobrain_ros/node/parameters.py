"""The brain node's parameters: one table with name, default, description and range; typed settings out.

config/brain.yaml documents the same keys for users; test_parameters checks the two agree. The cameras of
cameras.names add parameters of their own (cameras.<name>.*), declared once the names are known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from robobrain_ros.model_client import ClientConfig, split_base_urls
from robobrain_ros.model_client import api_key as client_api_key
from robobrain_ros.node.camera import DEFAULT_CAMERA, CameraTopics, camera_name_problem
from robobrain_ros.node.depth_lifting import LiftSettings
from robobrain_ros.node.executor_choice import EVENTS
from robobrain_ros.node.executor_choice import KINDS as EXECUTOR_KINDS
from robobrain_ros.node.query_pipeline import PipelineSettings
from robobrain_ros.node.server_profile import NegotiationSettings
from robobrain_ros.protocol import ImageBudget, Task
from robobrain_ros.protocol.request import owned_keys
from robobrain_ros.protocol.thinking import PARAMETER_WORDS

FAMILY_CHOICES = ('auto', 'robobrain2.0', 'robobrain2.5')
SIZE_CHOICES = ('auto', '3b', '4b', '7b', '8b', '32b')
TASK_CHOICES = tuple(t.value for t in Task)


@dataclass(frozen=True)
class Spec:
    default: Any
    description: str
    read_only: bool = False
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None


CLIENT_DEFAULTS = ClientConfig(base_urls=())
PARAMETERS: dict[str, Spec] = {
    'server.base_urls': Spec(['http://127.0.0.1:9010/v1'],
                             'OpenAI-compatible base URLs of the model servers, tried in order on connection '
                             'failure (e.g. http://127.0.0.1:9010/v1)', read_only=True),
    # The key itself is no parameter: `ros2 param get` and /parameter_events would show it to anyone on the network.
    'server.api_key_env': Spec('ROBOBRAIN_API_KEY', 'environment variable holding the API key sent as a Bearer '
                               'token (unset or empty = no key); empty name = no variable', read_only=True),
    'server.api_key_file': Spec('', 'file holding the API key (one line); when given it wins over '
                                'server.api_key_env, and a file that cannot be read fails configure', read_only=True),
    'server.model': Spec('', 'served model name; empty = the first model listed by /v1/models', read_only=True),
    # The HTTP client's own defaults (the consistency tool and the benchmarks use the client without the node).
    'server.connect_timeout': Spec(CLIENT_DEFAULTS.connect_timeout, '[s] TCP connect timeout per attempt',
                                   read_only=True, float_range=(0.1, 60.0)),
    'server.stall_timeout': Spec(CLIENT_DEFAULTS.stall_timeout,
                                 '[s] longest silence accepted from the server inside a request',
                                 read_only=True, float_range=(1.0, 3600.0)),
    'server.health_period': Spec(2.0, '[s] how often the server is probed for /diagnostics', read_only=True,
                                 float_range=(0.2, 600.0)),
    'server.self_check': Spec(True, 'at configure (and when a server comes back) prove with tiny requests that the '
                              'server enforces the answer constraint and keeps images at the size sent',
                              read_only=True),
    'server.vision_check': Spec(False, 'at configure, also send a probe image with a known answer to check that the '
                                "server's vision works (reported on /diagnostics, never fatal)", read_only=True),
    'model.family': Spec('auto', 'prompts and coordinate convention: robobrain2.0 (pixels of the image the model '
                         'saw), robobrain2.5 (0..1000), or auto (a strict match of the served model name, e.g. '
                         'RoboBrain2.0-7B; any other name: robobrain2.0)', choices=FAMILY_CHOICES),
    'model.size': Spec('auto', 'model size, which decides the thinking prefill (2.0 7B/32B: <think>...; 2.0 3B and '
                       '2.5: nothing): 3b, 4b, 7b, 8b, 32b or auto (from the served model name)', choices=SIZE_CHOICES),
    'model.thinking': Spec('off', "default thinking switch: 'on', 'off', or 'none' (append nothing whatever the "
                           'model)', choices=tuple(PARAMETER_WORDS)),
    'model.structured_outputs': Spec(True, 'constrain answers to the task format with vLLM structured outputs'),
    'model.allow_empty_answer': Spec(True, 'let the answer constraint accept "nothing found" (an empty list) for '
                                     'pointing, trajectory, affordance and grounding; the goal then ends NOT_FOUND. '
                                     'false = the model must give at least one point or a box'),
    'model.temperature': Spec(0.7, 'sampling temperature (RoboBrain: 0.7; 0 = greedy)', float_range=(0.0, 2.0)),
    'model.max_tokens': Spec(768, 'most tokens generated per answer (RoboBrain: 768)', int_range=(1, 32768)),
    'model.max_pixels': Spec(1003520, '[px] image budget: frames are resized (keeping aspect) to at most this many '
                             'pixels before sending; 28x28 pixels cost one visual token', int_range=(3136, 16777216)),
    'model.min_pixels': Spec(3136, '[px] smallest image sent (smaller frames are scaled up)',
                             int_range=(784, 1000000)),
    'model.extra_body': Spec('', 'JSON object merged into every request body, e.g. {"top_p": 0.95, "min_tokens": 8}; '
                             'keys the node sets itself (messages, model, max_tokens, the answer constraint, ...) '
                             'are refused; empty = nothing'),
    'model.send_processor_kwargs': Spec(False, 'also send the pixel budget as mm_processor_kwargs (only for '
                                        'servers started with --trust-request-mm-kwargs)'),
    'model.jpeg_quality': Spec(90, 'JPEG quality of the image sent to the server', int_range=(50, 100)),
    'model.pass_through_jpeg': Spec(True, "send a camera's JPEG (compressed topic or goal) unchanged when the image "
                                    'budget only rounds its size to multiples of 28 (the server rounds it the same '
                                    'way): no decode and re-encode; false = always decode, resize and re-encode'),
    'queries.max_concurrent': Spec(8, 'requests in flight at once (vLLM batches them)', read_only=True,
                                   int_range=(1, 256)),
    'queries.max_queued': Spec(32, 'goals waiting for a request slot; more are rejected', read_only=True,
                               int_range=(0, 1024)),
    'queries.goal_timeout': Spec(60.0, '[s] default timeout of a goal (image wait included)',
                                 float_range=(0.1, 3600.0)),
    'queries.max_image_age': Spec(1.0, '[s] default newest-frame age accepted for a goal without image',
                                  float_range=(0.0, 3600.0)),
    'queries.max_instruction_chars': Spec(4000, 'longest instruction accepted', int_range=(1, 100000)),
    'queries.feedback_period': Spec(0.05, '[s] shortest interval between two feedback messages of a goal',
                                    read_only=True, float_range=(0.0, 10.0)),
    'queries.result_timeout': Spec(15, '[s] how long a finished goal keeps its result for clients that ask late '
                                   "(rclpy's default, 10 s, answers STATUS_UNKNOWN to a get-result request that a "
                                   'busy client or network delayed past it); every status message lists the goals '
                                   'kept, and each client decodes it: 20-50 us per kept goal',
                                   read_only=True, int_range=(1, 86400)),
    'queries.drain_timeout': Spec(5.0, '[s] on deactivate or shutdown, how long running goals get to end (they are '
                                  'aborted with NODE_STOPPING) before the node goes on', read_only=True,
                                  float_range=(0.0, 600.0)),
    'queries.prepare_ahead': Spec(10.0, '[s] after a goal took a camera\'s frame, each new frame of that camera is '
                                  'prepared for the model (resized, encoded) as it arrives while no query runs, for '
                                  'this long, so the next goal finds its frame ready; costs that work per frame '
                                  '(4-6 ms for 1280x720) while goals come; 0 = prepare at the goal only',
                                  float_range=(0.0, 3600.0)),
    'queries.default_task': Spec('pointing', 'task of instructions received on ~/task (std_msgs/String)',
                                 choices=TASK_CHOICES),
    'topics.image': Spec('image', 'sensor_msgs/Image colour topic; empty = not subscribed', read_only=True),
    'topics.compressed_image': Spec('image/compressed', 'sensor_msgs/CompressedImage topic; empty = not subscribed',
                                    read_only=True),
    'topics.camera_info': Spec('camera_info', 'sensor_msgs/CameraInfo of the colour camera', read_only=True),
    'topics.depth': Spec('depth', 'depth image registered to the colour image (16UC1 mm or 32FC1 m); '
                         'empty = no 3D lifting', read_only=True),
    'camera.depth_sync_tolerance': Spec(0.05, '[s] largest stamp difference between a colour and a depth frame',
                                        float_range=(0.0, 10.0)),
    'camera.depth_wait': Spec(0.2, '[s] how long a query waits for the depth frame matching its colour frame '
                              '(depth often arrives a little later)', float_range=(0.0, 5.0)),
    'camera.lift_window': Spec(5, '[px] side of the window whose median depth is used per point',
                               int_range=(1, 51)),
    'camera.depth_registered': Spec(False, 'the depth image is registered to the colour image even though its '
                                    'frame_id differs; false = lift only when the frame_ids match'),
    'camera.rectified': Spec(False, 'the colour image is rectified (use camera_info P, no distortion); false = raw '
                             '(undistort points with camera_info D and K)'),
    'frames.target_frame': Spec('', 'frame of every 3D answer (points, box centres, trajectory, markers, poses), '
                                'looked up with tf2 at the image\'s stamp, e.g. base_link; a goal\'s target_frame '
                                'wins; empty = the camera optical frame (needs no tf2)'),
    'frames.transform_timeout': Spec(0.2, '[s] how long a goal waits for the transform at its image\'s stamp; '
                                     'then its pixel answer ends NO_TRANSFORM, without 3D points',
                                     float_range=(0.0, 10.0)),
    'output.markers': Spec(True, 'publish RViz markers on ~/markers'),
    'output.annotated_image': Spec(True, 'publish the frame with the answer drawn on ~/annotated_image'),
    'output.marker_lifetime': Spec(0.0, '[s] marker lifetime; 0 = until the next answer replaces them',
                                   float_range=(0.0, 3600.0)),
    'autostart': Spec(True, 'configure and activate the lifecycle node at start', read_only=True),
    'executor': Spec(EVENTS, "what spins the node: events (rclpy's EventsExecutor; SingleThreadedExecutor where "
                     'this rclpy has none) or single_threaded', read_only=True, choices=EXECUTOR_KINDS),
}


CAMERA_NAMES = 'cameras.names'
# cameras.<name>.<key>: the camera's topics, with their defaults under the camera's name ('' = none).
CAMERA_TOPICS = {'image': '{name}/image', 'compressed_image': '{name}/image/compressed',
                 'camera_info': '{name}/camera_info', 'depth': '{name}/depth'}
# cameras.<name>.<key> overrides camera.<key> for that camera; its default is camera.<key>'s value at start.
CAMERA_OVERRIDES = ('depth_sync_tolerance', 'depth_wait', 'lift_window', 'depth_registered', 'rectified')


def _descriptor(name: str, spec: Spec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, description=spec.description, read_only=spec.read_only)
    if spec.float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0],
                                                              to_value=spec.float_range[1])]
    if spec.int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    if spec.choices is not None:
        descriptor.additional_constraints = 'Must be one of: ' + ', '.join(spec.choices)
    return descriptor


def declare_parameters(node: Node) -> None:
    for name, spec in PARAMETERS.items():
        node.declare_parameter(name, spec.default, _descriptor(name, spec))
    # Every parameter has a value (a declared, unset one breaks the get_parameters service: `ros2 param dump`
    # gets nothing). rclpy cannot give a statically typed string array an empty default ([] reads as bytes), so
    # this one is dynamically typed; configure checks it is a list of names.
    node.declare_parameter(CAMERA_NAMES, [], ParameterDescriptor(
        name=CAMERA_NAMES, read_only=True, dynamic_typing=True,
        description='names of the cameras of this node (string array; each camera has cameras.<name>.image, '
                    '.compressed_image, .camera_info, .depth and optional overrides of camera.*); empty = one '
                    f"camera, '{DEFAULT_CAMERA}', on topics.*"))
    names = node.get_parameter(CAMERA_NAMES).value
    for camera in camera_names(names) if _is_name_list(names) else []:
        for key, pattern in CAMERA_TOPICS.items():
            name = f'cameras.{camera}.{key}'
            node.declare_parameter(name, pattern.format(name=camera), ParameterDescriptor(
                name=name, read_only=True, description=f'{key} topic of camera {camera}; empty = not subscribed'))
        for key in CAMERA_OVERRIDES:
            name, spec = f'cameras.{camera}.{key}', PARAMETERS[f'camera.{key}']
            descriptor = _descriptor(name, spec)
            descriptor.description = f'camera {camera} only: {spec.description}; default: camera.{key} at start'
            node.declare_parameter(name, node.get_parameter(f'camera.{key}').value, descriptor)


def camera_names(value: Any) -> list[str]:
    """cameras.names as a list ([] for the empty default, which rclpy stores as an empty byte array)."""
    return list(value) if _is_name_list(value) else []


def _is_name_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value)


def check_choice(name: str, value: Any) -> str:
    """'' when value is allowed for name, else the reason (for the on-set parameter callback)."""
    spec = PARAMETERS.get(name)
    if spec is not None and spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of: {', '.join(spec.choices)} (got '{value}')"
    return ''


def values(node: Node) -> dict[str, Any]:
    """Every parameter's value by name: the table's and the cameras'."""
    found = {name: node.get_parameter(name).value for name in PARAMETERS}
    found.update({f'cameras.{key}': param.value for key, param in node.get_parameters_by_prefix('cameras').items()})
    return found


def camera_topics(v: dict[str, Any]) -> dict[str, CameraTopics]:
    """Each camera's topics by name, in cameras.names order; no names = the one camera of topics.*."""
    names = camera_names(v.get(CAMERA_NAMES))
    if not names:
        return {DEFAULT_CAMERA: CameraTopics(v['topics.image'], v['topics.compressed_image'], v['topics.camera_info'],
                                             v['topics.depth'])}
    return {name: CameraTopics(*(v.get(f'cameras.{name}.{key}', pattern.format(name=name))
                                 for key, pattern in CAMERA_TOPICS.items()))
            for name in names}


def _lift_settings(v: dict[str, Any], camera: str | None) -> LiftSettings:
    def setting(key: str) -> Any:
        override = v.get(f'cameras.{camera}.{key}') if camera else None
        return v[f'camera.{key}'] if override is None else override
    return LiftSettings(sync_tolerance=setting('depth_sync_tolerance'), depth_wait=setting('depth_wait'),
                        window=setting('lift_window'), depth_registered=setting('depth_registered'),
                        rectified=setting('rectified'))


def pipeline_settings(v: dict[str, Any]) -> PipelineSettings:
    return PipelineSettings(
        model_family=v['model.family'],
        model_size=v['model.size'],
        thinking=PARAMETER_WORDS[v['model.thinking']],
        structured_outputs=v['model.structured_outputs'],
        allow_empty_answer=v['model.allow_empty_answer'],
        temperature=v['model.temperature'],
        max_tokens=v['model.max_tokens'],
        budget=ImageBudget(max_pixels=v['model.max_pixels'], min_pixels=v['model.min_pixels']),
        jpeg_quality=v['model.jpeg_quality'],
        pass_through_jpeg=v['model.pass_through_jpeg'],
        goal_timeout=v['queries.goal_timeout'],
        max_image_age=v['queries.max_image_age'],
        max_instruction_chars=v['queries.max_instruction_chars'],
        lift=_lift_settings(v, None),
        camera_lift={name: _lift_settings(v, name) for name in camera_names(v.get(CAMERA_NAMES))},
        target_frame=v['frames.target_frame'],
        transform_timeout=v['frames.transform_timeout'],
        extra_body=parse_extra_body(v['model.extra_body'], v['model.structured_outputs']),
        processor_kwargs=v['model.send_processor_kwargs'],
        prepare_ahead=v['queries.prepare_ahead'],
    )


def negotiation_settings(v: dict[str, Any]) -> NegotiationSettings:
    return NegotiationSettings(model=v['server.model'], family=v['model.family'], size=v['model.size'],
                               check_constraint=v['server.self_check'], check_vision=v['server.vision_check'],
                               budget=ImageBudget(max_pixels=v['model.max_pixels'], min_pixels=v['model.min_pixels']))


@dataclass(frozen=True)
class NodeSettings:
    """Everything the node reads from its parameters, typed; made from the values at start and after each accepted
    change (nothing re-reads parameters on a timer)."""

    pipeline: PipelineSettings
    negotiation: NegotiationSettings
    cameras: dict[str, CameraTopics]
    base_urls: tuple[str, ...]
    api_key_env: str
    api_key_file: str
    connect_timeout: float          # [s]
    stall_timeout: float            # [s]
    health_period: float            # [s]
    thinking: str                   # model.thinking as given: on | off | none
    max_concurrent: int
    max_queued: int
    feedback_period: float          # [s]
    result_timeout: int             # [s]
    drain_timeout: float            # [s]
    default_task: Task
    markers: bool
    marker_lifetime: float          # [s]
    annotated_image: bool

    @property
    def goal_limit(self) -> int:
        """Goals running or queued at once; more are rejected."""
        return self.max_concurrent + self.max_queued


def node_settings(v: dict[str, Any]) -> NodeSettings:
    """The typed settings of these values; ValueError (from the parts) when they cannot make a working node."""
    return NodeSettings(
        pipeline=pipeline_settings(v), negotiation=negotiation_settings(v), cameras=camera_topics(v),
        base_urls=base_urls(v), api_key_env=v['server.api_key_env'], api_key_file=v['server.api_key_file'],
        connect_timeout=v['server.connect_timeout'], stall_timeout=v['server.stall_timeout'],
        health_period=v['server.health_period'], thinking=v['model.thinking'],
        max_concurrent=v['queries.max_concurrent'], max_queued=v['queries.max_queued'],
        feedback_period=v['queries.feedback_period'], result_timeout=v['queries.result_timeout'],
        drain_timeout=v['queries.drain_timeout'], default_task=Task(v['queries.default_task']),
        markers=v['output.markers'], marker_lifetime=v['output.marker_lifetime'],
        annotated_image=v['output.annotated_image'])


def check_settings(v: dict[str, Any]) -> str:
    """'' when the values make a working node, else why not. Each value may be in its own range and the whole
    still impossible (model.min_pixels above model.max_pixels): a live change is refused before it is applied."""
    for name, value in v.items():
        reason = check_choice(name, value)
        if reason:
            return reason
    names = v.get(CAMERA_NAMES, [])
    if not _is_name_list(names):
        return f'cameras.names must be a list of camera names (strings), got {names!r}'
    reason = camera_name_problem(camera_names(names))
    if reason:
        return reason
    try:
        node_settings(v)
    except ValueError as exc:
        return str(exc)
    return ''


def parse_extra_body(text: str, constrains_answers: bool = True) -> dict[str, Any]:
    """model.extra_body as a dict; ValueError naming the problem when it is not a JSON object or sets a key the
    node owns (protocol.request.owned_keys: the answer constraint is the node's while model.structured_outputs is
    true, constrains_answers)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f'model.extra_body is not valid JSON: {exc}') from None
    if not isinstance(value, dict):
        raise ValueError(f'model.extra_body must be a JSON object, got {type(value).__name__}')
    owned = sorted(owned_keys(constrains_answers).intersection(value))
    if owned:
        # Merged last into every body, these would replace the node's own messages, limits or answer constraint.
        raise ValueError(f"model.extra_body may not set {', '.join(owned)}: the node sets "
                         f"{'it' if len(owned) == 1 else 'them'} (model.* parameters such as model.max_tokens, "
                         'model.temperature and model.structured_outputs choose what it sends)')
    return value


def load_api_key(env_name: str, file_path: str) -> str:
    """The model server's API key: from file_path when given (it wins), else from $env_name; '' = no key.

    A file that is named but cannot be read, or is empty, raises ValueError naming server.api_key_file and the file
    (never the key). The loader is client.api_key's, shared with the consistency tool.
    """
    return client_api_key.load_api_key(env_name, file_path, file_option='server.api_key_file')


def base_urls(v: dict[str, Any]) -> tuple[str, ...]:
    return split_base_urls(list(v['server.base_urls']))
