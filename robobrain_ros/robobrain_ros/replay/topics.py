"""Which of a bag's topics a replay publishes, which it skips and why. Pure Python.

Published: every topic one of the node's cameras listens to (colour, compressed, camera_info, depth), and /tf and
/tf_static (for target frames); /clock is made by the replay itself. A topic whose type cannot be published here
(no Python message package, or a definition that differs from the installed one) is skipped with a warning that
names it. The rest of the bag is not published: the node does not listen to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .bag import BagInfo

TF_TOPICS = ('/tf', '/tf_static')
CLOCK_TOPIC = '/clock'


@dataclass(frozen=True)
class CameraInputs:
    """One camera of the node: its name and the resolved topics it subscribes to ('' = none)."""

    name: str
    image: str
    compressed_image: str
    camera_info: str
    depth: str

    @property
    def topics(self) -> dict[str, str]:
        return {role: topic for role, topic in (('image', self.image), ('compressed_image', self.compressed_image),
                                                ('camera_info', self.camera_info), ('depth', self.depth)) if topic}

    @property
    def colour_topics(self) -> list[str]:
        return [topic for topic in (self.image, self.compressed_image) if topic]


@dataclass
class TopicPlan:
    publish: dict[str, str] = field(default_factory=dict)   # topic -> msgtype
    skipped: dict[str, str] = field(default_factory=dict)   # topic -> why (unknown type, ...)
    ignored: list[str] = field(default_factory=list)        # topics the node does not listen to
    warnings: list[str] = field(default_factory=list)
    problem: str = ''                                      # non-empty: nothing to replay, and why


def plan_topics(info: BagInfo, cameras: Sequence[CameraInputs], unusable: Callable[[str, str], str],
                clock_in_bag: Mapping[str, str] | None = None) -> TopicPlan:
    """unusable(topic, msgtype) -> '' when the type can be published here, else why not."""
    plan = TopicPlan()
    wanted = {topic for camera in cameras for topic in camera.topics.values()} | set(TF_TOPICS)
    for name, topic in sorted(info.topics.items()):
        if name not in wanted:
            plan.ignored.append(name)
            continue
        why = unusable(name, topic.msgtype)
        if why:
            plan.skipped[name] = why
            plan.warnings.append(f'{name} ({topic.msgtype}) is not replayed: {why}')
        else:
            plan.publish[name] = topic.msgtype
    for camera in cameras:
        colour = [t for t in camera.colour_topics if t in plan.publish]
        if not colour:
            plan.warnings.append(
                f"camera {camera.name}: none of its colour topics ({', '.join(camera.colour_topics)}) is replayed: "
                'its goals will end NO_IMAGE')
        elif camera.depth and camera.depth not in plan.publish:
            plan.warnings.append(f'camera {camera.name}: its depth topic {camera.depth} is not replayed: answers '
                                 'will have no 3D points')
    if not any(t in plan.publish for camera in cameras for t in camera.colour_topics):
        listened = ', '.join(sorted({t for camera in cameras for t in camera.colour_topics}))
        in_bag = ', '.join(f'{name} ({topic.msgtype})' for name, topic in sorted(info.topics.items()))
        colour = {t for camera in cameras for t in camera.colour_topics}
        skipped = ''.join(f'; {name} skipped: {why}' for name, why in plan.skipped.items() if name in colour)
        plan.problem = (f'the bag has no colour topic the node listens to ({listened}){skipped}. The bag has: '
                        f'{in_bag}. Map the node to the bag with --params-file (topics.image, '
                        'topics.compressed_image, or cameras.<name>.image)')
    return plan
