"""Reading a rosbag2 recording (a folder, or one .mcap or .db3 file) with rosbags; no ROS needed.

The message definitions come from the bag itself (rosbags' typestore is built from them), so recordings of Humble,
Jazzy and Kilted read alike. A bag without definitions (Humble's SQLite 3 storage writes none) is read with
Humble's standard definitions; the replay then trusts the installed ones (definitions.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.typesys import Stores, get_typestore

NS = 1_000_000_000


class BagError(Exception):
    """The bag is missing, not a rosbag2, or corrupt; the message says which and where."""


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str          # e.g. sensor_msgs/msg/Image
    count: int
    has_definition: bool  # the bag carries the type's definition


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str          # mcap | sqlite3
    start_ns: int         # first message [ns] (the time goals' `at` counts from)
    end_ns: int           # last message [ns]
    message_count: int
    topics: dict[str, BagTopic] = field(default_factory=dict)
    ros_distro: str = ''  # as the bag's metadata says, when it does

    @property
    def duration(self) -> float:
        """[s] first to last message."""
        return (self.end_ns - self.start_ns) / NS


def _storage(path: Path) -> str:
    if path.is_file():
        return {'.mcap': 'mcap', '.db3': 'sqlite3'}.get(path.suffix, path.suffix)
    files = {p.suffix for p in path.iterdir()} if path.is_dir() else set()
    return 'mcap' if '.mcap' in files else 'sqlite3' if '.db3' in files else '?'


def _distro(reader: AnyReader) -> str:
    try:
        metadata = reader.readers[0].storage.metadata    # DirectoryReader only
        return str(getattr(metadata, 'ros_distro', '') or '')
    except AttributeError:
        return ''


class Bag:
    """An open recording: info, the typestore of its own definitions, and its messages in time order.

        with Bag(path) as bag:
            bag.info.duration
            for topic, msgtype, stamp_ns, raw in bag.messages({'/camera/image'}): ...
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: AnyReader | None = None
        self.info: BagInfo | None = None
        self.definitions_in_bag = True

    def __enter__(self) -> 'Bag':
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        path = self.path
        if not path.exists():
            raise BagError(f'no bag at {path}: give a rosbag2 folder (with metadata.yaml) or one .mcap or .db3 file')
        if path.is_dir() and not (path / 'metadata.yaml').is_file():
            raise BagError(f'{path} is a folder without metadata.yaml: not a rosbag2 recording (give the folder '
                           '`ros2 bag record` wrote, or one .mcap or .db3 file)')
        try:
            reader = AnyReader([path])
            try:
                reader.open()
            except Exception as exc:  # noqa: BLE001 - rosbags has many error types; all mean "cannot read"
                if 'no type definitions' not in str(exc):
                    raise
                # Humble's SQLite 3 bags carry no definitions: read them as Humble's standard types.
                reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
                reader.open()
                self.definitions_in_bag = False
        except Exception as exc:  # noqa: BLE001
            raise BagError(f'cannot read the bag {path}: {type(exc).__name__}: {exc}') from None
        self._reader = reader
        if not reader.connections:
            self.close()
            raise BagError(f'the bag {path} has no topics')
        topics: dict[str, BagTopic] = {}
        for connection in reader.connections:
            known = topics.get(connection.topic)
            count = connection.msgcount + (known.count if known else 0)
            has_definition = connection.msgdef.format != MessageDefinitionFormat.NONE
            topics[connection.topic] = BagTopic(connection.topic, connection.msgtype, count, has_definition)
        try:
            start, end, count = reader.start_time, reader.end_time, reader.message_count
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise BagError(f'cannot read the bag {path}: {type(exc).__name__}: {exc}') from None
        if count == 0:
            self.close()
            raise BagError(f'the bag {path} holds no messages')
        # rosbags' end_time is one past the last message.
        self.info = BagInfo(path, _storage(path), start, max(start, end - 1) if end > start else start, count,
                            topics, _distro(reader))

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing a reader that failed half-way
                pass
            self._reader = None

    @property
    def typestore(self):
        """rosbags' typestore of the bag's own message definitions."""
        assert self._reader is not None
        return self._reader.typestore

    def messages(self, topics: Collection[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log time [ns], CDR bytes) of these topics, in time order; BagError when the bag turns out
        corrupt while reading."""
        assert self._reader is not None
        connections = [c for c in self._reader.connections if c.topic in topics]
        if not connections:
            return
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                connection, stamp, raw = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001
                raise BagError(f'the bag {self.path} is corrupt: reading its messages failed: '
                               f'{type(exc).__name__}: {exc}') from None
            yield connection.topic, connection.msgtype, stamp, bytes(raw)
