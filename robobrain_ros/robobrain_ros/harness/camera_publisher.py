"""A camera for the brain on one machine: synthetic frames (raw or compressed), depth and camera_info published at a
fixed rate, stamped with the publishing node's clock. Used by the tests, the benchmarks and the soak."""

from __future__ import annotations

import threading

import numpy as np


def test_image(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A deterministic RGB test frame with some structure (the model does not care, the encoder does)."""
    rng = np.random.default_rng(seed)
    image = (rng.random((height // 8, width // 8, 3)) * 255).astype(np.uint8)
    return np.kron(image, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


test_image.__test__ = False   # a helper, not a test


class Camera:
    """Publishes frames (raw or compressed), depth and camera_info at a fixed rate, stamped now."""

    def __init__(self, node) -> None:
        self._node = node
        self._publishers: dict = {}
        self._messages: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stamp_offset = 0.0    # [s] added to "now": negative values make stale frames

    def publisher(self, msg_type, topic: str):
        from rclpy.qos import qos_profile_sensor_data
        key = (msg_type, topic)
        if key not in self._publishers:
            self._publishers[key] = self._node.create_publisher(msg_type, topic, qos_profile_sensor_data)
        return self._publishers[key]

    def create_image_publisher(self, topic: str):
        from sensor_msgs.msg import Image
        return self.publisher(Image, topic)

    def set(self, *messages) -> None:
        """(publisher, message) pairs to publish on every tick."""
        self._messages = list(messages)

    def start(self, rate_hz: float = 20.0) -> 'Camera':
        self._stop.clear()

        def run() -> None:
            from builtin_interfaces.msg import Time
            while not self._stop.is_set():
                now = self._node.get_clock().now().nanoseconds * 1e-9 + self.stamp_offset
                stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
                for publisher, message in self._messages:
                    message.header.stamp = stamp
                    publisher.publish(message)
                self._stop.wait(1.0 / rate_hz)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing; the publishers stay (and stay matched) for the next start()."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.stamp_offset = 0.0

    def close(self) -> None:
        self.stop()
        for publisher in self._publishers.values():
            self._node.destroy_publisher(publisher)
        self._publishers.clear()
