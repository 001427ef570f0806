"""Recording what the brain node publishes, as it publishes it, into the output bag.

Raw subscriptions: the node's CDR bytes go into the bag untouched, stamped with the bag time at which they arrived.
The annotated images are also kept (bytes and stamp) for the report, which saves one per goal as a PNG.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from robobrain_ros.action_table import ACTIONS, ANSWER_TOPICS
from robobrain_ros.node.camera import Camera, CameraTopics

from .convert import type_name
from .output_bag import OutputBag
from .params import resolve_topic

# Reliable, volatile (matches the node's latched and plain publishers), deep enough for a burst of answers.
RECORD_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
RESULTS_PREFIX = '/replay/results'


def output_topics(brain: str, cameras: list[str]) -> dict[str, type]:
    """Every topic the node publishes answers on (resolved under its full name), with its message class."""
    topics: dict[str, type] = {resolve_topic(topic, brain): kind for kind, topic in ANSWER_TOPICS.items()}
    topics[resolve_topic('~/trajectory_path', brain)] = PathMsg
    topics[resolve_topic('~/poses', brain)] = PoseArray
    try:
        from vision_msgs.msg import Detection2DArray
        topics[resolve_topic('~/detections', brain)] = Detection2DArray
    except ImportError:   # the node publishes no detections then either
        pass
    for name in cameras:
        camera = Camera(name, CameraTopics('', '', '', ''))
        topics[resolve_topic(camera.output_topic('markers'), brain)] = MarkerArray
        topics[resolve_topic(camera.output_topic('annotated_image'), brain)] = Image
    topics['/diagnostics'] = DiagnosticArray
    return topics


def annotated_topic(brain: str, camera: str) -> str:
    return resolve_topic(Camera(camera, CameraTopics('', '', '', '')).output_topic('annotated_image'), brain)


def result_topics() -> dict[str, type]:
    """/replay/results/<action>: each goal's result answer."""
    return {f'{RESULTS_PREFIX}/{action.name}': action.answer_type for action in ACTIONS}


@dataclass
class AnnotatedImage:
    topic: str
    stamp_ns: int      # the image's header stamp: the frame the answer is about
    raw: bytes
    claimed: bool = False

    def message(self) -> Image:
        return deserialize_message(self.raw, Image)


class Recorder:
    def __init__(self, node: Node, bag: OutputBag, topics: Mapping[str, type], now_ns: Callable[[], int]) -> None:
        self.node = node
        self._bag = bag
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self.annotated: list[AnnotatedImage] = []
        self._subscriptions = []
        for topic, kind in topics.items():
            bag.add_topic(topic, type_name(kind))
            self._subscriptions.append(node.create_subscription(
                kind, topic, self._callback(topic, kind is Image and topic.endswith('annotated_image')),
                RECORD_QOS, raw=True))

    def _callback(self, topic: str, annotated: bool):
        def record(raw: bytes) -> None:
            self._bag.write(topic, self._now_ns(), raw)
            if annotated:
                header = deserialize_message(raw, Image).header
                with self._lock:
                    self.annotated.append(AnnotatedImage(topic, header.stamp.sec * 1_000_000_000
                                                         + header.stamp.nanosec, raw))
        return record

    def take_annotated(self, topic: str, stamp_ns: int) -> AnnotatedImage | None:
        """The first annotated image of topic at stamp_ns not yet given to a goal."""
        with self._lock:
            for image in self.annotated:
                if not image.claimed and image.topic == topic and image.stamp_ns == stamp_ns:
                    image.claimed = True
                    return image
        return None

    def has_annotated(self, topic: str, stamp_ns: int, count: int) -> bool:
        with self._lock:
            return sum(1 for i in self.annotated if i.topic == topic and i.stamp_ns == stamp_ns) >= count

    def publisher_counts(self) -> dict[str, int]:
        return {s.topic_name: self.node.count_publishers(s.topic_name) for s in self._subscriptions}

    def close(self) -> None:
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions.clear()
