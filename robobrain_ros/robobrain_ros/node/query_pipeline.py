"""One query, start to end: frame -> request -> completion -> Answer -> 3D points, with a reason for every failure.

Runs in the calling thread (an action's execute callback or a ~/task worker); only the HTTP part goes to the
GenerationRunner's loop. Stages: validate the goal, take a frame, look up the negotiated server, prepare the
image and the request, generate, interpret the completion, lift to 3D (and into the target frame). Each stage
either fills the outcome or fails it with a QueryCode and a message a person can act on. Knows the fields of ROS
image messages (duck typed) but no ROS types: codes are a plain enum, mapped to robobrain_interfaces/QueryStatus
at the node's edge.
"""

from __future__ import annotations

import concurrent.futures
import enum
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robobrain_ros.model_client import ChatClientError, ServerUnreachable, StreamStalled
from robobrain_ros.model_client.generation import (
    STAGE_GENERATING,
    STAGE_QUEUED,
    CancelLatch,
    Generation,
    GenerationRunner,
)
from robobrain_ros.node.camera import Camera
from robobrain_ros.node.depth_lifting import LiftSettings, lift_answer_points
from robobrain_ros.node.frame_cache import CachedFrame
from robobrain_ros.node.image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb
from robobrain_ros.node.server_profile import ServerProfile
from robobrain_ros.node.shared_preparation import SharedPreparation
from robobrain_ros.node.transform_lookup import TransformLookup, TransformUnavailable
from robobrain_ros.protocol import (
    Answer,
    AnswerPoint,
    BuiltRequest,
    ConstraintDialect,
    ImageBudget,
    LiftedPoint,
    PreparedImage,
    Task,
    build_request,
    lookup_stamp,
    parse_completion,
    pass_jpeg_through,
    prepare_image,
    resolve_model,
    transform_lifted,
)
from robobrain_ros.protocol.tasks import SINGLE_IMAGE_TASKS
from robobrain_ros.protocol.thinking import THINKING_DEFAULT, thinking_for_goal

# Feedback stages, as in every action's Feedback (robobrain_interfaces/action/*.action).
FEEDBACK_WAITING_FOR_IMAGE = 0
FEEDBACK_QUEUED = 1
FEEDBACK_GENERATING = 2
FEEDBACK_PARSING = 3
_RUNNER_STAGES = {STAGE_QUEUED: FEEDBACK_QUEUED, STAGE_GENERATING: FEEDBACK_GENERATING}


# How long past the goal's deadline a generation may take to report back before the query stops waiting for
# it (the generation ends itself at the deadline; this only guards against a runner that never answers).
RESULT_GRACE = 5.0   # [s]

FeedbackCallback = Callable[[int, str, int], None]   # (stage, new text, tokens so far)


class QueryCode(enum.Enum):
    """How a query ended; the node maps each to the QueryStatus constant of the same name."""

    OK = 'ok'
    NOT_FOUND = 'not_found'
    NO_IMAGE = 'no_image'
    IMAGE_TOO_OLD = 'image_too_old'
    BAD_IMAGE = 'bad_image'
    BAD_GOAL = 'bad_goal'
    SERVER_UNREACHABLE = 'server_unreachable'
    SERVER_ERROR = 'server_error'
    TIMEOUT = 'timeout'
    PARSE_ERROR = 'parse_error'
    CANCELED = 'canceled'
    PIXELS_UNTRUSTED = 'pixels_untrusted'
    NODE_STOPPING = 'node_stopping'
    INTERNAL_ERROR = 'internal_error'
    NO_TRANSFORM = 'no_transform'


# Codes whose outcome still carries the model's pixel answer (NO_TRANSFORM: only the 3D part is missing).
PIXEL_ANSWER_CODES = frozenset({QueryCode.OK, QueryCode.NO_TRANSFORM})


@dataclass(frozen=True)
class PipelineSettings:
    """No defaults here: the parameter table (node/parameters.py) is the one source of them."""

    model_family: str    # auto | robobrain2.0 | robobrain2.5
    model_size: str    # auto | 3b | 7b | 32b
    thinking: bool | None    # node default: True, False, or None (append nothing)
    structured_outputs: bool
    allow_empty_answer: bool    # the constraint lets the model say "nothing found" ([]: NOT_FOUND)
    temperature: float
    max_tokens: int
    budget: ImageBudget
    jpeg_quality: int
    pass_through_jpeg: bool    # send a camera JPEG unchanged when the budget only rounds its size
    goal_timeout: float    # [s]
    max_image_age: float    # [s]
    max_instruction_chars: int
    lift: LiftSettings
    camera_lift: Mapping[str, LiftSettings]    # per camera; missing = lift
    target_frame: str    # frame of 3D answers; '' = the image's optical frame
    transform_timeout: float    # [s] longest wait for the transform at the image's stamp
    extra_body: dict[str, Any]    # merged into every request body
    processor_kwargs: bool    # send the budget as mm_processor_kwargs (--trust-request-mm-kwargs)
    prepare_ahead: float    # [s] after a goal took a camera frame, prepare that camera's new frames on arrival


@dataclass
class QueryRequest:
    task: Task
    instruction: str
    thinking: int = THINKING_DEFAULT
    image: Any = None                     # sensor_msgs/Image from a goal; None or empty = none
    compressed_image: Any = None          # sensor_msgs/CompressedImage from a goal; None or no data = none
    max_image_age: float = 0.0            # [s] 0 = settings
    timeout: float = 0.0                  # [s] 0 = settings
    extra_body: dict[str, Any] | None = None   # merged into the HTTP body (benchmarks force min_tokens)
    camera: str = ''                      # camera name; '' = the first camera
    target_frame: str = ''                # frame of the 3D answer; '' = settings


class CancelToken(CancelLatch):
    """The latch between a query and whoever may stop it (a client's cancel, deactivate, shutdown), with the
    reason: who stopped it. The first reason given is kept."""

    def __init__(self) -> None:
        super().__init__()
        self._reason = (QueryCode.CANCELED, 'canceled')

    @property
    def reason(self) -> tuple[QueryCode, str]:
        return self._reason

    def cancel(self, code: QueryCode = QueryCode.CANCELED, message: str = 'canceled') -> bool:
        with self._lock:
            if not self._event.is_set():
                self._reason = (code, message)
        return super().cancel()


@dataclass
class QueryOutcome:
    request: QueryRequest
    code: QueryCode = QueryCode.OK
    message: str = ''
    header: Any = None                    # std_msgs/Header of the image used (None when none was)
    image_source: str = ''
    image_age: float = 0.0
    camera: str = ''                      # the camera whose frames (or calibration) the query used
    frame_3d: str = ''                    # frame of lifted (valid ones); '' = none valid
    model: str = ''
    model_family: str = ''
    thinking: bool | None = None
    generation: Generation | None = None
    answer: Answer | None = None
    original_size: tuple[int, int] = (0, 0)
    sent_size: tuple[int, int] = (0, 0)
    frame_rgb: Callable[[], np.ndarray] | None = None   # the frame used, decoded (for the annotated image)
    lifted: list[LiftedPoint] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)   # Latency.msg field -> [ms]

    @property
    def ok(self) -> bool:
        return self.code is QueryCode.OK

    def fail(self, code: QueryCode, message: str) -> 'QueryOutcome':
        self.code, self.message = code, message
        return self


class QueryFailed(Exception):
    """Raised by a stage to end the query with a code and a message."""

    def __init__(self, code: QueryCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Frame:
    msg: Any
    header: Any
    compressed: bool
    stamp: float                          # [s]
    from_goal: bool


class QueryPipeline:
    """cameras: by name, the first is a goal's default; transforms: the lookup for target frames (raises
    TransformUnavailable when there is none, e.g. tf2 is not installed)."""

    def __init__(self, settings: PipelineSettings, cameras: Mapping[str, Camera], runner: GenerationRunner,
                 now: Callable[[], float], server: Callable[[], ServerProfile],
                 transforms: Callable[[], TransformLookup]) -> None:
        if not cameras:
            raise ValueError('a QueryPipeline needs at least one camera')
        self._settings = settings
        self._cameras = dict(cameras)
        self._runner = runner
        self._now = now
        self._server = server
        self._transforms = transforms
        self._shared_preparation: SharedPreparation[tuple[PreparedImage, Callable[[], np.ndarray]]] = \
            SharedPreparation()
        self._frame_taken: dict[str, float] = {}   # camera name -> time.monotonic() a goal last took its frame

    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    def update_settings(self, settings: PipelineSettings) -> None:
        self._settings = settings

    def wants_frames_ahead(self, camera_name: str) -> bool:
        """True when a goal took this camera's frame within the last prepare_ahead seconds: goals are coming."""
        window = self._settings.prepare_ahead
        return window > 0 and time.monotonic() - self._frame_taken.get(camera_name, -math.inf) < window

    def prepare_newest_frame(self, camera_name: str) -> None:
        """Prepare the camera's newest frame as a goal would (shared with it, see SharedPreparation), in the
        caller's thread, so that the next goal finds it ready. Does nothing when there is no frame or no server
        answered yet; a frame that cannot be used fails the goal that takes it, not this."""
        cached = self._cameras[camera_name].frames.latest_colour()
        if cached is None:
            return
        try:
            server = self._server()
        except ChatClientError:   # unreachable or unusable: the goal will say so
            return
        settings = self._settings
        frame = _Frame(cached.msg, cached.msg.header, cached.compressed, cached.stamp, from_goal=False)
        try:
            self._prepare_shared(frame, server.budget(settings.budget, settings.max_tokens), settings)
        except (ImageConversionError, ValueError):
            pass

    def run(self, request: QueryRequest, feedback: FeedbackCallback, cancel: CancelToken) -> QueryOutcome:
        start = time.perf_counter()
        outcome = QueryOutcome(request=request)
        try:
            self._run(request, feedback, cancel, outcome, start)
        except QueryFailed as failure:
            outcome.fail(failure.code, failure.message)
        except Exception as exc:  # every goal must end: a bug becomes an explained abort, not a hang
            outcome.fail(QueryCode.INTERNAL_ERROR, f'{type(exc).__name__}: {exc}')
        if cancel.requested and outcome.code is not QueryCode.OK:
            # Whatever the query was doing when it was stopped, the reason it ended is the stop.
            outcome.fail(*cancel.reason)
        outcome.latency['total'] = (time.perf_counter() - start) * 1e3
        return outcome

    def _run(self, request: QueryRequest, feedback: FeedbackCallback, cancel: CancelToken,
             outcome: QueryOutcome, start: float) -> None:
        settings = self._settings
        self._validate(request, settings)
        timeout = request.timeout or settings.goal_timeout
        deadline = start + timeout
        try:
            outcome.thinking = thinking_for_goal(request.thinking, settings.thinking)
        except ValueError as exc:   # none of THINKING_DEFAULT, THINKING_OFF, THINKING_ON
            raise QueryFailed(QueryCode.BAD_GOAL, str(exc)) from None

        camera = self._camera(request)
        outcome.camera = camera.name
        frame = self._acquire_frame(request, camera, feedback, cancel, outcome, deadline)
        # The server before any image work: a dead server fails the goal at once.
        server = self._server_profile()
        spec = resolve_model(settings.model_family, settings.model_size, server.model)
        outcome.model, outcome.model_family = server.model, spec.family.value

        began = time.perf_counter()
        prepared = self._prepare_image(frame, server, settings, outcome)
        built = self._build(request, prepared, server, spec, settings, outcome)
        outcome.latency['preprocess'] = (time.perf_counter() - began) * 1e3
        outcome.image_age = max(0.0, self._now() - frame.stamp)

        generation = self._generate(built, feedback, cancel, deadline, timeout)
        outcome.generation = generation
        outcome.latency.update(queue=generation.queue_ms, first_token=generation.first_token_ms,
                               generation=generation.generation_ms)
        began = time.perf_counter()
        # Parsed even when the generation failed: a planner (or a person) can still read what was said.
        outcome.answer = parse_completion(request.task, generation.text, outcome.thinking, prepared.sent_size,
                                          outcome.original_size, spec)
        self._check_generation(generation, timeout)
        feedback(FEEDBACK_PARSING, '', generation.tokens)
        self._interpret(outcome, generation, built)
        lifted, lift_note = self._lift(outcome.answer, frame, camera, outcome.original_size)
        outcome.message = '; '.join(note for note in (outcome.message, lift_note) if note)
        try:
            outcome.lifted, outcome.frame_3d = self._into_target_frame(request, lifted, frame)
        finally:
            outcome.latency['postprocess'] = (time.perf_counter() - began) * 1e3

    # ------------------------------------------------------------------ stages
    @staticmethod
    def _validate(request: QueryRequest, settings: PipelineSettings) -> None:
        def bad(message: str) -> QueryFailed:
            return QueryFailed(QueryCode.BAD_GOAL, message)

        if not request.instruction or not request.instruction.strip():
            raise bad('the instruction is empty')
        if len(request.instruction) > settings.max_instruction_chars:
            raise bad(f'the instruction has {len(request.instruction)} characters, more than '
                      f'max_instruction_chars ({settings.max_instruction_chars})')
        for name in ('timeout', 'max_image_age'):
            value = getattr(request, name)
            if not (value >= 0.0) or value == float('inf'):
                raise bad(f'{name} must be a finite number >= 0 (0 = the node default), got {value}')
        if _has_raw(request.image) and _has_compressed(request.compressed_image):
            raise bad('the goal carries both image and compressed_image: give at most one')

    def _camera(self, request: QueryRequest) -> Camera:
        if not request.camera:
            return next(iter(self._cameras.values()))
        camera = self._cameras.get(request.camera)
        if camera is None:
            raise QueryFailed(QueryCode.BAD_GOAL, f"unknown camera '{request.camera}': this node has "
                                                  f"{', '.join(self._cameras)} (cameras.names)")
        return camera

    def _acquire_frame(self, request: QueryRequest, camera: Camera, feedback: FeedbackCallback,
                       cancel: CancelToken, outcome: QueryOutcome, deadline: float) -> _Frame:
        """The image to use: the goal's own, else the newest camera frame young enough (waiting for one)."""
        if _has_raw(request.image) or _has_compressed(request.compressed_image):
            compressed = not _has_raw(request.image)     # _validate refused goals that carry both
            image = request.compressed_image if compressed else request.image
            outcome.header = image.header
            outcome.image_source = 'goal'
            stamp = _stamp_seconds(image.header)
            # A goal image without a stamp gets "now" for its age; depth is never paired with it (lifting).
            return _Frame(image, image.header, compressed, stamp or self._now(), from_goal=True)
        max_age = request.max_image_age or self._settings.max_image_age
        waited = time.perf_counter()
        frames = camera.frames
        frame: CachedFrame | None = frames.latest_colour()
        if frame is None or self._now() - frame.stamp > max_age:
            feedback(FEEDBACK_WAITING_FOR_IMAGE, '', 0)
            frame, newest = frames.wait_for_colour(max_age, deadline - time.perf_counter(), self._now,
                                                         lambda: cancel.requested)
            outcome.latency['image_wait'] = (time.perf_counter() - waited) * 1e3
            if frame is None:
                if cancel.requested:
                    raise QueryFailed(*cancel.reason)
                if newest is None:
                    raise QueryFailed(QueryCode.NO_IMAGE,
                                      f"no frame arrived on '{camera.colour_topic}' within the goal timeout "
                                      f'({(deadline - waited):.3g} s) and the goal carried no image')
                raise QueryFailed(QueryCode.IMAGE_TOO_OLD,
                                  f"the newest frame on '{newest.topic}' is {self._now() - newest.stamp:.3g} s old, "
                                  f'older than max_image_age ({max_age:g} s), and no newer one arrived in time')
        self._frame_taken[camera.name] = time.monotonic()
        msg = frame.msg
        outcome.header = msg.header
        outcome.image_source = frame.topic
        return _Frame(msg, msg.header, frame.compressed, frame.stamp, from_goal=False)

    def _server_profile(self) -> ServerProfile:
        try:
            return self._server()
        except ServerUnreachable as exc:
            raise QueryFailed(QueryCode.SERVER_UNREACHABLE, str(exc)) from None
        except ChatClientError as exc:   # reached, but its answers about itself are unusable
            raise QueryFailed(QueryCode.SERVER_ERROR, str(exc)) from None

    def _prepare_image(self, frame: _Frame, server: ServerProfile, settings: PipelineSettings,
                       outcome: QueryOutcome) -> PreparedImage:
        budget = server.budget(settings.budget, settings.max_tokens)
        try:
            if frame.from_goal:
                prepared, outcome.frame_rgb = _prepare_frame(frame, budget, settings)
            else:
                prepared, outcome.frame_rgb = self._prepare_shared(frame, budget, settings)
        except (ImageConversionError, ValueError) as exc:
            raise QueryFailed(QueryCode.BAD_IMAGE, f'cannot use the image: {exc}') from None
        outcome.original_size = prepared.original_size
        outcome.sent_size = prepared.sent_size
        return prepared

    def _prepare_shared(self, frame: _Frame, budget: ImageBudget,
                        settings: PipelineSettings) -> tuple[PreparedImage, Callable[[], np.ndarray]]:
        """A camera frame prepared once for every goal of a burst and for prepare_newest_frame."""
        return self._shared_preparation.get(frame.msg, (budget, settings.jpeg_quality, settings.pass_through_jpeg),
                                            lambda: _prepare_frame(frame, budget, settings))

    @staticmethod
    def _build(request: QueryRequest, prepared: PreparedImage, server: ServerProfile, spec,
               settings: PipelineSettings, outcome: QueryOutcome) -> BuiltRequest:
        constraint = server.constraint if settings.structured_outputs else ConstraintDialect.NONE
        try:
            return build_request(request.task, request.instruction, [prepared], outcome.thinking, spec,
                                 model=server.model, budget=server.budget(settings.budget, settings.max_tokens),
                                 constraint=constraint, max_tokens=settings.max_tokens,
                                 temperature=settings.temperature, processor_kwargs=settings.processor_kwargs,
                                 extra={**settings.extra_body, **(request.extra_body or {})},
                                 allow_empty=settings.allow_empty_answer)
        except ValueError as exc:
            raise QueryFailed(QueryCode.BAD_GOAL, str(exc)) from None

    def _generate(self, built: BuiltRequest, feedback: FeedbackCallback, cancel: CancelToken, deadline: float,
                  timeout: float) -> Generation:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise QueryFailed(QueryCode.TIMEOUT, f'the goal timeout ({timeout:g} s) passed before the request was sent')
        if cancel.requested:
            raise QueryFailed(*cancel.reason)

        def on_progress(stage: str, text: str, tokens: int) -> None:
            feedback(_RUNNER_STAGES.get(stage, FEEDBACK_GENERATING), text, tokens)

        try:
            handle = self._runner.submit(built.body, on_progress, remaining)
        except RuntimeError as exc:   # the runner stopped (node shutting down)
            raise QueryFailed(QueryCode.NODE_STOPPING, f'the request could not be sent: {exc}') from None
        cancel.attach(handle.cancel)
        try:
            return handle.result(timeout=remaining + RESULT_GRACE)
        except concurrent.futures.TimeoutError:
            handle.cancel()
            raise QueryFailed(QueryCode.TIMEOUT, f'no result from the request loop {RESULT_GRACE:g} s after the goal '
                                                 f'timeout ({timeout:g} s)') from None

    @staticmethod
    def _check_generation(generation: Generation, timeout: float) -> None:
        if generation.canceled:
            raise QueryFailed(QueryCode.CANCELED, 'canceled; the server request was aborted')
        if generation.timed_out:
            raise QueryFailed(QueryCode.TIMEOUT,
                              f'the goal timeout ({timeout:g} s) passed after {generation.tokens} generated tokens')
        if isinstance(generation.error, ServerUnreachable):
            raise QueryFailed(QueryCode.SERVER_UNREACHABLE, str(generation.error))
        if isinstance(generation.error, StreamStalled):
            raise QueryFailed(QueryCode.SERVER_ERROR, f'the server stalled: {generation.error}')
        if generation.error is not None:
            raise QueryFailed(QueryCode.SERVER_ERROR, str(generation.error))

    @staticmethod
    def _interpret(outcome: QueryOutcome, generation: Generation, built: BuiltRequest) -> None:
        answer = outcome.answer
        if answer.error:
            note = ' (generation stopped at max_tokens)' if generation.finish_reason == 'length' else ''
            if outcome.thinking:
                note += ' (thinking on: the answer is not constrained)'
            elif built.constraint is ConstraintDialect.NONE:
                note += ' (answers are unconstrained here: see /diagnostics)'
            raise QueryFailed(QueryCode.PARSE_ERROR, answer.error + note)
        resized = server_resized_image(generation, built.sent_sizes[0] if built.sent_sizes else None,
                                       built.task)
        if resized:
            raise QueryFailed(QueryCode.PIXELS_UNTRUSTED, resized)
        if answer.not_found:
            raise QueryFailed(QueryCode.NOT_FOUND, 'the model found nothing matching the instruction (it answered '
                                                   'an empty list)')

    def _lift(self, answer: Answer, frame: _Frame, camera: Camera,
              original_size: tuple[int, int]) -> tuple[list[LiftedPoint], str]:
        """3D points (optical frame) for the answer's points or box centre; ([], why not) when they cannot be
        trusted."""
        points = list(answer.points)
        if answer.box is not None:
            box = answer.box
            points = [AnswerPoint((box.x_min + box.x_max) / 2, (box.y_min + box.y_max) / 2)]
        if not points:
            return [], ''
        settings = self._settings
        return lift_answer_points(points, frame.header, original_size, frame.from_goal, camera.frames,
                                  settings.camera_lift.get(camera.name, settings.lift), colour_stamp=frame.stamp,
                                  model_depths=answer.depths)

    def _into_target_frame(self, request: QueryRequest, lifted: list[LiftedPoint],
                           frame: _Frame) -> tuple[list[LiftedPoint], str]:
        """(the points in the target frame, that frame); QueryFailed(NO_TRANSFORM) when the transform at the image's
        stamp is not known in time. Never a point labelled with a frame it is not in."""
        source = frame.header.frame_id
        if not any(point.valid for point in lifted):
            return lifted, ''
        target = request.target_frame or self._settings.target_frame
        if not target or target == source:
            return lifted, source
        if not source:
            raise QueryFailed(QueryCode.NO_TRANSFORM, f"no 3D points in '{target}': the image has no frame_id, so "
                                                      'there is no frame to transform from')
        timeout = self._settings.transform_timeout
        stamp = lookup_stamp(_stamp_seconds(frame.header), frame.stamp, frame.from_goal)
        if stamp is None:
            raise QueryFailed(QueryCode.NO_TRANSFORM, f"no 3D points in '{target}': the goal image has no stamp "
                                                      '(header.stamp is 0), so no transform time can be chosen')
        try:
            transform = self._transforms().lookup(target, source, stamp, timeout)
        except TransformUnavailable as exc:
            raise QueryFailed(QueryCode.NO_TRANSFORM, f"no 3D points in '{target}': no transform from '{source}' "
                                                      f'at the image stamp {stamp:.3f} within {timeout:g} s: {exc}')
        return transform_lifted(lifted, transform), target


def server_resized_image(generation: Generation, sent_size: tuple[int, int] | None, task: Task,
                         factor: int = 28) -> str:
    """Why the answer's pixels cannot be trusted, or '' when they can.

    RoboBrain 2.0 answers in pixels of the image it saw; if the server's processor resized the image sent (its
    max_pixels below the node's budget), that is not the image the node maps back from. The prompt then holds
    fewer tokens than the sent image alone needs. Only tasks whose answer is in pixels are affected.
    """
    if sent_size is None or Task(task) not in SINGLE_IMAGE_TASKS:
        return ''
    image_tokens = (sent_size[0] // factor) * (sent_size[1] // factor)
    usage = generation.usage
    if usage is None or not usage.prompt_tokens or usage.prompt_tokens >= image_tokens:
        return ''
    return (f'the server counted {usage.prompt_tokens} prompt tokens, fewer than the {image_tokens} of the '
            f'{sent_size[0]}x{sent_size[1]} image sent: it resized the image itself, so the answer\'s pixels '
            'cannot be mapped back; lower model.max_pixels to what the server accepts (see /diagnostics)')


def _has_raw(image: Any) -> bool:
    return image is not None and int(getattr(image, 'width', 0)) > 0


def _prepare_frame(frame: _Frame, budget: ImageBudget,
                   settings: PipelineSettings) -> tuple[PreparedImage, Callable[[], np.ndarray]]:
    """The image to send and a function that gives the frame's pixels (for the annotated image)."""
    if frame.compressed and settings.pass_through_jpeg:
        prepared = pass_jpeg_through(frame.msg.data, budget)
        if prepared is not None:
            # Decoded only if the annotated image is drawn, on the annotator's thread.
            msg = frame.msg
            return prepared, lambda: compressed_to_rgb(msg)
    rgb = compressed_to_rgb(frame.msg) if frame.compressed else image_to_rgb(frame.msg)
    return prepare_image(rgb, budget, settings.jpeg_quality), lambda: rgb


def _has_compressed(image: Any) -> bool:
    return image is not None and len(getattr(image, 'data', b'')) > 0


def _stamp_seconds(header: Any) -> float:
    if header is None:
        return 0.0
    return header.stamp.sec + header.stamp.nanosec * 1e-9
