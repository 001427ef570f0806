"""The replay's output recording: a rosbag2 folder with one MCAP file, written with rosbags. Pure Python.

Every topic carries its message definition, taken from the installed definition files (definitions.py): the
standard types as this ROS 2 installation serializes them and robobrain_interfaces' own, so `ros2 bag info` /
`ros2 bag play`, Foxglove and RViz (through play) read it without robobrain_interfaces' Python code. Messages are
written as the CDR bytes rclpy gave (raw subscriptions) or made (serialize_message): nothing is converted.
Thread-safe: the recorder's callbacks and the session write concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from .definitions import installed_typestore, normalize_type

# rosbag2 metadata version 8 (the oldest rosbags writes): Iron and later read it. The MCAP file opens anywhere.
METADATA_VERSION = 8


class OutputBag:
    def __init__(self, path: Path, msgtypes: Iterable[str]) -> None:
        """msgtypes: every type the bag will hold (their definitions are looked up now, once)."""
        self.path = Path(path)
        self._store = installed_typestore(msgtypes)
        self._writer = Writer(self.path, version=METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(self, topic: str, msgtype: str) -> None:
        with self._lock:
            if topic not in self._connections:
                self._connections[topic] = self._writer.add_connection(topic, normalize_type(msgtype),
                                                                       typestore=self._store)
                self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, raw: bytes) -> None:
        """One message's CDR bytes at stamp_ns; ignored once closed (a late callback)."""
        with self._lock:
            if self.closed:
                return
            self._writer.write(self._connections[topic], stamp_ns, raw)
            self.counts[topic] += 1

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._writer.close()

    @property
    def file(self) -> Path:
        return self.path / f'{self.path.name}.mcap'
