"""The node's /diagnostics statuses: the model server (health, what negotiation chose, the goals' counts) and
each camera (frames received, age, camera_info). Built from plain inputs; the node publishes them at 1 Hz."""

from __future__ import annotations

import math
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from robobrain_ros.node.camera import Camera
from robobrain_ros.node.parameters import NodeSettings
from robobrain_ros.node.server_monitor import ServerSnapshot
from robobrain_ros.protocol import resolve_model

NEGOTIATED_KEYS = ('server version', 'answer constraint', 'model family', 'model size', 'thinking',
                   'image budget [px]', 'server image limit', 'vision check')


@dataclass(frozen=True)
class GoalCounts:
    """How the node's goals went, and its load, when the status is built."""

    admitted: int
    in_flight: int              # requests the runner has open
    waiting: int                # requests queued in the runner
    ended: dict[str, int]       # succeeded / aborted / canceled / rejected -> count
    last_latency_ms: float
    last_error: str


def server_status(node_name: str, server: ServerSnapshot, settings: NodeSettings,
                  goals: GoalCounts) -> DiagnosticStatus:
    # The fully qualified node name: two brains in two namespaces are told apart.
    status = DiagnosticStatus(name=f'{node_name}: model server',
                              hardware_id=','.join(h.base_url for h in server.health))
    reachable = [h for h in server.health if h.reachable]
    healthy = [h for h in reachable if h.healthy]
    profile = server.profile
    model = settings.negotiation.model or (profile.model if profile else '')
    if not server.health:
        status.level, status.message = DiagnosticStatus.WARN, 'not checked yet'
    elif not reachable:
        status.level, status.message = DiagnosticStatus.ERROR, 'server unreachable: ' + server.health[0].error
    elif not healthy:
        status.level, status.message = DiagnosticStatus.ERROR, 'server reachable but unhealthy'
    elif model and not any(model in h.models for h in healthy):
        status.level, status.message = DiagnosticStatus.ERROR, f"model '{model}' is not served"
    elif profile is None:
        errors = server.negotiation_errors
        status.level = DiagnosticStatus.ERROR if errors else DiagnosticStatus.WARN
        status.message = ('negotiation failed: ' + '; '.join(errors.values()) if errors
                          else 'negotiating with the server')
    else:
        warnings = []
        if profile.constraint.value == 'none':
            warnings.append('answers are unconstrained: ' + profile.constraint_note)
        if profile.vision_ok is False:
            warnings.append('vision self-check failed: ' + profile.vision_note)
        status.level = DiagnosticStatus.WARN if warnings else DiagnosticStatus.OK
        status.message = '; '.join([f"serving '{model}'", *warnings])
    values = {
        'reachable': str(bool(reachable)).lower(),
        'model': model,
        'models served': ','.join(m for h in reachable for m in h.models),
        **negotiated_values(profile, settings),
        'last latency [ms]': f'{goals.last_latency_ms:.1f}',
        'requests in flight': str(goals.in_flight),
        'queue depth': str(goals.waiting),
        'goals admitted': str(goals.admitted),
        'last error': goals.last_error,
        **{f'goals {k}': str(n) for k, n in goals.ended.items()},
    }
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


def negotiated_values(profile, settings: NodeSettings) -> dict[str, str]:
    """What negotiation chose, as key-values (empty strings before it ran)."""
    if profile is None:
        return {key: '' for key in NEGOTIATED_KEYS}
    pipeline = settings.pipeline
    spec = resolve_model(pipeline.model_family, pipeline.model_size, profile.model)
    budget = profile.budget(pipeline.budget, pipeline.max_tokens)
    constraint = (profile.constraint.value if pipeline.structured_outputs
                  else 'none (model.structured_outputs false)')
    return {
        'server version': profile.version or 'unknown (not vLLM)',
        'answer constraint': f'{constraint}: {profile.constraint_note}',
        'model family': f'{spec.family.value} ({spec.source})',
        'model size': spec.size.value,
        'thinking': settings.thinking,
        'image budget [px]': f'{budget.min_pixels}..{budget.max_pixels}',
        'server image limit': profile.image_limit_note,
        'vision check': profile.vision_note,
    }


def camera_status(node_name: str, camera: Camera, now: float) -> DiagnosticStatus:
    """now [s]: the node clock (a frame's age is measured on it, as goals measure it)."""
    label = 'camera' if camera.is_default else f'camera {camera.name}'
    status = DiagnosticStatus(name=f'{node_name}: {label}', hardware_id=camera.colour_topic)
    frames = camera.frames
    frame = frames.latest_colour()
    if frame is None:
        status.level, status.message = DiagnosticStatus.WARN, 'no frame received yet'
        age = math.nan
    else:
        age = now - frame.stamp
        status.level, status.message = DiagnosticStatus.OK, f'last frame {age:.2f} s old'
    status.values = [*(KeyValue(key=k, value=v) for k, v in frames.diagnostic_values().items()),
                     KeyValue(key='last frame age [s]', value=f'{age:.3f}'),
                     KeyValue(key='camera_info', value=str(frames.camera_info() is not None).lower())]
    return status
