"""One query, start to end: frame -> request -> completion -> Answer -> 3D points, with a reason for every failure.

Runs in the calling thread (an action's execute callback or the ~/task worker); only the HTTP part goes
to the GenerationRunner's loop. Knows ROS message fields (images, camera_info) but publishes nothing:
turning an outcome into messages is answer_messages.py's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from robobrain_interfaces.msg import QueryStatus

from robobrain_ros.client import ServerUnreachable, StreamStalled
from robobrain_ros.client.generation import STAGE_GENERATING, STAGE_QUEUED, Generation, GenerationRunner
from robobrain_ros.node.frame_cache import CachedFrame, FrameCache
from robobrain_ros.node.image_conversion import (ImageConversionError, compressed_to_rgb, depth_to_array,
                                                 image_to_rgb)
from robobrain_ros.protocol import (Answer, CameraIntrinsics, ImageBudget, LiftedPoint, PixelPoint,
                                    Task, build_request, lift_to_3d, parse_completion, prepare_image,
                                    resolve_model_family)

# Feedback stages, as in every action's Feedback (robobrain_interfaces/action/*.action).
FEEDBACK_WAITING_FOR_IMAGE = 0
FEEDBACK_QUEUED = 1
FEEDBACK_GENERATING = 2
FEEDBACK_PARSING = 3
_RUNNER_STAGES = {STAGE_QUEUED: FEEDBACK_QUEUED, STAGE_GENERATING: FEEDBACK_GENERATING}

THINKING_DEFAULT, THINKING_OFF, THINKING_ON = 0, 1, 2

FeedbackCallback = Callable[[int, str, int], None]   # (stage, new text, tokens so far)


@dataclass(frozen=True)
class PipelineSettings:
    model_family: str = 'auto'            # auto | robobrain2.0 | robobrain2.5
    thinking: bool | None = False         # node default: True, False, or None (append nothing: 3B models)
    structured_outputs: bool = True
    temperature: float = 0.7
    max_tokens: int = 768
    budget: ImageBudget = ImageBudget()
    jpeg_quality: int = 90
    goal_timeout: float = 60.0            # [s]
    max_image_age: float = 1.0            # [s]
    max_instruction_chars: int = 4000
    depth_sync_tolerance: float = 0.05    # [s]
    depth_wait: float = 0.2               # [s] how long to wait for the depth frame matching the colour frame
    lift_window: int = 5                  # [px]
    extra_body: dict[str, Any] = field(default_factory=dict)   # merged into every request body
    processor_kwargs: bool = False        # send the budget as mm_processor_kwargs (--trust-request-mm-kwargs)


@dataclass
class QueryRequest:
    task: Task
    instruction: str
    thinking: int = THINKING_DEFAULT
    image: Any = None                     # sensor_msgs/Image from a goal; None or empty = camera topic
    max_image_age: float = 0.0            # [s] 0 = settings
    timeout: float = 0.0                  # [s] 0 = settings
    extra_body: dict[str, Any] | None = None   # merged into the HTTP body (benchmarks force min_tokens)


class CancelToken:
    """Shared between the thread running a query and whoever may cancel it (an action's cancel callback)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._generation = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            generation = self._generation
        if generation is not None:
            generation.cancel()

    def attach(self, generation) -> None:
        with self._lock:
            self._generation = generation
            cancelled = self._event.is_set()
        if cancelled:
            generation.cancel()


@dataclass
class QueryOutcome:
    request: QueryRequest
    code: int = QueryStatus.OK
    message: str = ''
    header: Any = None                    # std_msgs/Header of the image used (None when none was)
    image_source: str = ''
    image_age: float = 0.0
    model: str = ''
    model_family: str = ''
    thinking: bool | None = None
    generation: Generation | None = None
    answer: Answer | None = None
    original_size: tuple[int, int] = (0, 0)
    sent_size: tuple[int, int] = (0, 0)
    rgb: np.ndarray | None = None         # the decoded frame, for the annotated image
    lifted: list[LiftedPoint] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)   # Latency.msg field -> [ms]

    @property
    def ok(self) -> bool:
        return self.code == QueryStatus.OK

    def fail(self, code: int, message: str) -> 'QueryOutcome':
        self.code, self.message = code, message
        return self


class QueryPipeline:
    def __init__(self, settings: PipelineSettings, frames: FrameCache, runner: GenerationRunner,
                 now: Callable[[], float], model_name: Callable[[], str], colour_topic: str) -> None:
        self._settings = settings
        self._frames = frames
        self._runner = runner
        self._now = now
        self._model_name = model_name
        self._colour_topic = colour_topic

    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    def update_settings(self, settings: PipelineSettings) -> None:
        self._settings = settings

    def run(self, request: QueryRequest, feedback: FeedbackCallback, cancel: CancelToken) -> QueryOutcome:
        start = time.perf_counter()
        outcome = QueryOutcome(request=request)
        try:
            self._run(request, feedback, cancel, outcome, start)
        except Exception as exc:  # every goal must end: a bug becomes an explained abort, not a hang
            outcome.fail(QueryStatus.INTERNAL_ERROR, f'{type(exc).__name__}: {exc}')
        outcome.latency['total'] = (time.perf_counter() - start) * 1e3
        return outcome

    def _run(self, request: QueryRequest, feedback: FeedbackCallback, cancel: CancelToken,
             outcome: QueryOutcome, start: float) -> None:
        settings = self._settings
        problem = self._validate(request)
        if problem:
            outcome.fail(QueryStatus.BAD_GOAL, problem)
            return
        timeout = request.timeout or settings.goal_timeout
        deadline = start + timeout
        outcome.thinking = {THINKING_DEFAULT: settings.thinking, THINKING_OFF: False,
                            THINKING_ON: True}[request.thinking]

        frame = self._acquire_frame(request, feedback, cancel, outcome, deadline)
        if frame is None:
            return
        msg, header, compressed, stamp = frame

        # Model name and family first: a dead server should fail the goal before any image work.
        try:
            outcome.model = self._model_name()
        except ServerUnreachable as exc:
            outcome.fail(QueryStatus.SERVER_UNREACHABLE, str(exc))
            return
        family = resolve_model_family(settings.model_family, outcome.model)
        outcome.model_family = family.value

        began = time.perf_counter()
        try:
            rgb = compressed_to_rgb(msg) if compressed else image_to_rgb(msg)
            outcome.rgb = rgb
            outcome.original_size = (int(rgb.shape[1]), int(rgb.shape[0]))
            prepared = prepare_image(rgb, settings.budget, settings.jpeg_quality)
        except (ImageConversionError, ValueError) as exc:
            outcome.fail(QueryStatus.BAD_IMAGE, f'cannot use the image: {exc}')
            return
        outcome.sent_size = prepared.sent_size
        try:
            built = build_request(request.task, request.instruction, [prepared], outcome.thinking, family,
                                  model=outcome.model, budget=settings.budget,
                                  structured=settings.structured_outputs,
                                  max_tokens=settings.max_tokens, temperature=settings.temperature,
                                  processor_kwargs=settings.processor_kwargs,
                                  extra={**settings.extra_body, **(request.extra_body or {})})
        except ValueError as exc:
            outcome.fail(QueryStatus.BAD_GOAL, str(exc))
            return
        outcome.latency['preprocess'] = (time.perf_counter() - began) * 1e3
        outcome.image_age = max(0.0, self._now() - stamp)

        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            outcome.fail(QueryStatus.TIMEOUT, f'the goal timeout ({timeout:g} s) passed before the request was sent')
            return
        if cancel.requested:
            outcome.fail(QueryStatus.CANCELED, 'canceled before the request was sent')
            return

        def on_progress(stage: str, text: str, tokens: int) -> None:
            feedback(_RUNNER_STAGES.get(stage, FEEDBACK_GENERATING), text, tokens)

        handle = self._runner.submit(built.body, on_progress, remaining)
        cancel.attach(handle)
        generation = handle.result()
        outcome.generation = generation
        outcome.latency.update(queue=generation.queue_ms, first_token=generation.first_token_ms,
                               generation=generation.generation_ms)
        if not self._generation_ok(generation, outcome, timeout):
            # Keep what was generated: a planner (or a person) can still read why it failed.
            outcome.answer = parse_completion(request.task, generation.text, outcome.thinking,
                                              prepared.sent_size, outcome.original_size, family)
            return

        feedback(FEEDBACK_PARSING, '', generation.tokens)
        began = time.perf_counter()
        answer = parse_completion(request.task, generation.text, outcome.thinking, prepared.sent_size,
                                  outcome.original_size, family)
        outcome.answer = answer
        if answer.error:
            note = ' (generation stopped at max_tokens)' if generation.finish_reason == 'length' else ''
            outcome.fail(QueryStatus.PARSE_ERROR, answer.error + note)
        else:
            outcome.lifted, lift_note = self._lift(answer, stamp, outcome.original_size)
            outcome.message = '; '.join(n for n in (lift_note, _resize_warning(generation, prepared.sent_size,
                                                                                settings.budget.factor)) if n)
        outcome.latency['postprocess'] = (time.perf_counter() - began) * 1e3

    def _validate(self, request: QueryRequest) -> str:
        if not request.instruction or not request.instruction.strip():
            return 'the instruction is empty'
        if len(request.instruction) > self._settings.max_instruction_chars:
            return (f'the instruction has {len(request.instruction)} characters, more than '
                    f'max_instruction_chars ({self._settings.max_instruction_chars})')
        if request.thinking not in (THINKING_DEFAULT, THINKING_OFF, THINKING_ON):
            return (f'unknown thinking value {request.thinking}: use THINKING_DEFAULT (0), THINKING_OFF (1) '
                    'or THINKING_ON (2)')
        for name in ('timeout', 'max_image_age'):
            value = getattr(request, name)
            if not (value >= 0.0) or value == float('inf'):
                return f'{name} must be a finite number >= 0 (0 = the node default), got {value}'
        return ''

    def _acquire_frame(self, request: QueryRequest, feedback: FeedbackCallback, cancel: CancelToken,
                       outcome: QueryOutcome, deadline: float):
        """(message, header, compressed, stamp [s]) of the image to use, or None with outcome failed."""
        image = request.image
        if image is not None and int(getattr(image, 'width', 0)) > 0:
            outcome.header = image.header
            outcome.image_source = 'goal'
            return image, image.header, False, _stamp_seconds(image.header) or self._now()
        max_age = request.max_image_age or self._settings.max_image_age
        waited = time.perf_counter()
        frame: CachedFrame | None = self._frames.latest_colour()
        if frame is None or self._now() - frame.stamp > max_age:
            feedback(FEEDBACK_WAITING_FOR_IMAGE, '', 0)
            frame, newest = self._frames.wait_for_colour(max_age, deadline - time.perf_counter(), self._now,
                                                         lambda: cancel.requested)
            outcome.latency['image_wait'] = (time.perf_counter() - waited) * 1e3
            if frame is None:
                if cancel.requested:
                    outcome.fail(QueryStatus.CANCELED, 'canceled while waiting for a camera frame')
                elif newest is None:
                    outcome.fail(QueryStatus.NO_IMAGE,
                                 f"no frame arrived on '{self._colour_topic}' within the goal timeout "
                                 f'({(deadline - waited):.3g} s) and the goal carried no image')
                else:
                    outcome.fail(QueryStatus.IMAGE_TOO_OLD,
                                 f"the newest frame on '{newest.topic}' is {self._now() - newest.stamp:.3g} s old, "
                                 f'older than max_image_age ({max_age:g} s), and no newer one arrived in time')
                return None
        outcome.header = frame.msg.header
        outcome.image_source = frame.topic
        return frame.msg, frame.msg.header, frame.compressed, frame.stamp

    def _generation_ok(self, generation: Generation, outcome: QueryOutcome, timeout: float) -> bool:
        if generation.canceled:
            outcome.fail(QueryStatus.CANCELED, 'canceled; the server request was aborted')
        elif generation.timed_out:
            outcome.fail(QueryStatus.TIMEOUT,
                         f'the goal timeout ({timeout:g} s) passed after {generation.tokens} generated tokens')
        elif isinstance(generation.error, ServerUnreachable):
            outcome.fail(QueryStatus.SERVER_UNREACHABLE, str(generation.error))
        elif isinstance(generation.error, StreamStalled):
            outcome.fail(QueryStatus.SERVER_ERROR, f'the server stalled: {generation.error}')
        elif generation.error is not None:
            outcome.fail(QueryStatus.SERVER_ERROR, str(generation.error))
        else:
            return True
        return False

    def _lift(self, answer: Answer, stamp: float, original_size: tuple[int, int]) -> tuple[list[LiftedPoint], str]:
        """3D points for the answer's points (or box centre); ([], why not) when that is impossible."""
        points = list(answer.points)
        if answer.box is not None:
            box = answer.box
            points = [PixelPoint((box.x_min + box.x_max) / 2, (box.y_min + box.y_max) / 2)]
        if not points:
            return [], ''
        depth_frame = self._frames.depth_near(stamp, self._settings.depth_sync_tolerance,
                                              wait=self._settings.depth_wait)
        info = self._frames.camera_info()
        if depth_frame is None or info is None:
            missing = 'depth' if depth_frame is None else 'camera_info'
            return [], f'no 3D points: no {missing} within {self._settings.depth_sync_tolerance:g} s of the image'
        try:
            depth, unit = depth_to_array(depth_frame.msg)
        except ImageConversionError as exc:
            return [], f'no 3D points: {exc}'
        height, width = depth.shape
        if (int(info.width), int(info.height)) != (width, height):
            return [], (f'no 3D points: camera_info is for {info.width}x{info.height} but depth is '
                        f'{width}x{height}')
        scale_x, scale_y = width / original_size[0], height / original_size[1]
        if abs(scale_x - scale_y) > 0.01:
            return [], (f'no 3D points: depth {width}x{height} is not registered to the '
                        f'{original_size[0]}x{original_size[1]} image (aspect ratios differ)')
        in_depth = [PixelPoint(p.x * scale_x, p.y * scale_y, p.clipped) for p in points]
        intrinsics = CameraIntrinsics.from_k(list(info.k), width, height)
        return lift_to_3d(in_depth, depth, intrinsics, unit, self._settings.lift_window), ''


def _resize_warning(generation: Generation, sent_size: tuple[int, int], factor: int) -> str:
    """A warning when the server's prompt is shorter than the image sent: then it resized the image itself.

    Answers are in the pixels of the image the model saw; if that is not the image the node sent (a server
    whose processor max_pixels is below the node's budget), the mapping back to the original is wrong.
    """
    image_tokens = (sent_size[0] // factor) * (sent_size[1] // factor)
    usage = generation.usage
    if usage is None or not usage.prompt_tokens or usage.prompt_tokens >= image_tokens:
        return ''
    return (f'the server counted {usage.prompt_tokens} prompt tokens, fewer than the {image_tokens} of the '
            f'{sent_size[0]}x{sent_size[1]} image sent: it resized the image, so pixel answers may be off; '
            'lower model.max_pixels to what the server accepts')


def _stamp_seconds(header: Any) -> float:
    if header is None:
        return 0.0
    return header.stamp.sec + header.stamp.nanosec * 1e-9
