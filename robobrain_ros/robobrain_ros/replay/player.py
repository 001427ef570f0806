"""Publishing a bag's messages at their recorded times (scaled by the rate), with /clock.

The messages are read and converted ahead of time on a thread of their own (Prefetcher), so a big frame's
conversion does not delay the schedule. The Player publishes what it is given; the session decides when.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from .bag import Bag, BagError
from .convert import Converter, message_class
from .topics import CLOCK_TOPIC

# Reliable and volatile: matches the node's best-effort camera subscriptions and reliable ones (RViz) alike.
DATA_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# /tf_static is latched: a listener that comes late still gets every static transform.
STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
CLOCK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
PREFETCH = 16      # converted messages kept ready ahead of their time


class Prefetcher:
    """Iterates (stamp_ns, (topic, message)) over the bag's messages of the given topics, converted on a thread.

    A message that cannot be converted is skipped and counted in `failed` (with the first error per topic); a
    corrupt bag raises BagError from the iteration.
    """

    def __init__(self, bag: Bag, topics: Mapping[str, str], converter: Converter) -> None:
        self._bag = bag
        self._topics = dict(topics)
        self._converter = converter
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self._stop = threading.Event()
        self.failed: dict[str, tuple[int, str]] = {}
        self._thread = threading.Thread(target=self._run, daemon=True, name='replay-prefetch')
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for topic, msgtype, stamp, raw in self._bag.messages(self._topics):
                try:
                    message = self._converter.convert(msgtype, raw)
                except Exception as exc:  # noqa: BLE001 - a message rclpy cannot read: skipped, counted
                    count, first = self.failed.get(topic, (0, f'{type(exc).__name__}: {exc}'))
                    self.failed[topic] = (count + 1, first)
                    continue
                if not self._put((stamp, (topic, message))):
                    return
            self._put(None)
        except BagError as exc:
            self._put(exc)
        except Exception as exc:  # noqa: BLE001 - reported by the iteration, in the main thread
            self._put(BagError(f'reading the bag failed: {type(exc).__name__}: {exc}'))

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


class Player:
    def __init__(self, node: Node, topics: Mapping[str, str]) -> None:
        """topics: topic -> msgtype of everything to publish."""
        self.node = node
        self._publishers = {topic: node.create_publisher(message_class(msgtype), topic,
                                                         STATIC_QOS if topic == '/tf_static' else DATA_QOS)
                            for topic, msgtype in topics.items()}
        self._clock = node.create_publisher(Clock, CLOCK_TOPIC, CLOCK_QOS)
        self.published = 0
        self.last_clock_ns = 0

    def publish(self, topic: str, message) -> None:
        self._publishers[topic].publish(message)
        self.published += 1

    def publish_clock(self, stamp_ns: int) -> None:
        """Bag time on /clock; never backwards."""
        stamp_ns = max(stamp_ns, self.last_clock_ns)
        self.last_clock_ns = stamp_ns
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
        self._clock.publish(msg)

    def unmatched(self, topics) -> list[str]:
        """Those of topics (and /clock) that no subscriber listens to yet."""
        missing = [topic for topic in topics if self._publishers[topic].get_subscription_count() == 0]
        if self._clock.get_subscription_count() == 0:
            missing.append(CLOCK_TOPIC)
        return missing

    def close(self) -> None:
        for publisher in self._publishers.values():
            self.node.destroy_publisher(publisher)
        self.node.destroy_publisher(self._clock)
