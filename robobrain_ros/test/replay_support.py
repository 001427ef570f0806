"""Helpers of the brain_replay tests: run the tool as `ros2 run` does, scripted answers with known pixels, and
reading an output bag back with rosbags (from the definitions the bag itself carries)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.replay import sample
from robobrain_ros.replay.bag import Bag

W, H, F = sample.WIDTH, sample.HEIGHT, sample.FOCAL
# Answers in pixels of the 640x480 frame, on pixel centres. RoboBrain 2.0 (model.family robobrain2.0) answers in
# pixels of the image it saw: the node sends 640x480 at 644x476 (multiples of 28) and maps the answers back.
POINTS = [(320.5, 240.5), (420.5, 140.5)]
BOX = (500.5, 380.5, 560.5, 430.5)
GROUND_BOX = (400.5, 240.5, 520.5, 330.5)
WAYPOINTS = [(180.5, 290.5), (240.5, 300.5), (300.5, 400.5)]
PLAN = '1. pick up the red cup\n2. put it on the green plate'
TEXT = 'a red cup, a blue box, a green plate and a mug'


SENT_W, SENT_H = 644, 476


def rel(x: float, y: float) -> str:
    """A pixel of the frame as RoboBrain 2.0 says it: in the pixels of the image it saw."""
    return f'{x * SENT_W / W:.10f}, {y * SENT_H / H:.10f}'


def points_text(points) -> str:
    return '[' + ', '.join(f'({rel(x, y)})' for x, y in points) + ']'


def box_text(box) -> str:
    return f'[{rel(box[0], box[1])}, {rel(box[2], box[3])}]'


def lifted(x: float, y: float) -> tuple[float, float, float]:
    """Where the sample camera (K: f 500, principal point (320, 240); a wall at 1 m) puts pixel (x, y)."""
    depth = sample.DEPTH_MM / 1000.0
    return ((x - 0.5 - W / 2) / F * depth, (y - 0.5 - H / 2) / F * depth, depth)


def scripted_sample_server() -> ScriptedServer:
    """Answers the sample goals (sample.SAMPLE_GOALS) by their instructions."""
    server = ScriptedServer(default=Reply(text=points_text(POINTS), chunks=2))
    server.rule('grasp the mug by its handle', Reply(text=box_text(BOX), chunks=2))
    server.rule('move the red cup onto the green plate', Reply(text=points_text(WAYPOINTS), chunks=2))
    server.rule('the blue box', Reply(text=box_text(GROUND_BOX), chunks=2))
    server.rule('put the red cup on the green plate', Reply(text=PLAN, chunks=2))
    server.rule('what is on the table?', Reply(text=TEXT, chunks=2))
    return server


def replay_params(path: Path, **extra) -> Path:
    """The sample's params file plus the model family of the scripted answers (and extra dotted parameters)."""
    import yaml
    data = yaml.safe_load(sample.params_text())
    flat = {'model.family': 'robobrain2.0', **extra}
    for key, value in flat.items():
        level = data['/**']['ros__parameters']
        parts = key.split('.')
        for part in parts[:-1]:
            level = level.setdefault(part, {})
        level[parts[-1]] = value
    path.write_text(yaml.safe_dump(data))
    return path


def brain_replay_command() -> list[str]:
    """The installed brain_replay (what `ros2 run robobrain_ros brain_replay` runs), else the module."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        candidate = Path(prefix) / 'lib' / 'robobrain_ros' / 'brain_replay'
        if prefix and candidate.is_file():
            return [sys.executable, str(candidate)]
    return [sys.executable, '-m', 'robobrain_ros.replay']


def run_brain_replay(*args: str | Path, timeout: float = 240.0) -> subprocess.CompletedProcess:
    """brain_replay as its own process (it starts a brain node process itself); its output is kept."""
    env = {**os.environ, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'PYTHONUNBUFFERED': '1'}
    return subprocess.run([*brain_replay_command(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def explain(result: subprocess.CompletedProcess) -> str:
    return f'exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}'


def results(out: Path) -> dict:
    return json.loads((out / 'results.json').read_text())


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log time ns, message)], deserialized with the definitions the bag carries (no robobrain_interfaces
    Python code involved)."""
    found: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for connection, stamp, raw in reader.messages():
            found.setdefault(connection.topic, []).append((stamp, reader.deserialize(raw, connection.msgtype)))
        found['__types__'] = [(0, {c.topic: c.msgtype for c in reader.connections})]
    return found


def corrupt_chunk(bag: Path) -> Path:
    """A copy of an MCAP bag with one chunk in the middle damaged (its checksum no longer matches)."""
    from mcap.reader import make_reader
    copy = bag.parent / 'corrupt'
    shutil.copytree(bag, copy)
    mcap_file = copy / f'{bag.name}.mcap'
    with open(mcap_file, 'rb') as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    data = bytearray(mcap_file.read_bytes())
    offset = chunks[len(chunks) // 2].chunk_start_offset
    data[offset + 9:offset + 60] = b'\xff' * 51
    mcap_file.write_bytes(bytes(data))
    return copy


def write_bag_with_unknown_depth_type(path: Path, source: Path) -> Path:
    """The sample scene with its depth topic re-typed as acme_msgs/msg/DepthImage (definition in the bag)."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg('std_msgs/Header header\nuint32 height\nuint32 width\nuint16[] depth_mm',
                                      'acme_msgs/msg/DepthImage'))
    depth_type = store.types['acme_msgs/msg/DepthImage']
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}
    with Bag(source) as bag:
        for topic, msgtype, stamp, raw in bag.messages(set(bag.info.topics)):
            if topic == '/camera/aligned_depth_to_color/image_raw':
                image = bag.typestore.deserialize_cdr(raw, msgtype)
                msgtype = 'acme_msgs/msg/DepthImage'
                raw = store.serialize_cdr(depth_type(header=image.header, height=image.height, width=image.width,
                                                     depth_mm=np.frombuffer(bytes(image.data), np.uint16)), msgtype)
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], stamp, raw)
    writer.close()
    return path


def bag_with_a_late_camera(path: Path, source: Path, camera_start_ns: int) -> Path:
    """The sample scene without the camera messages recorded before camera_start_ns (bag time, from its start):
    the bag starts with /tf_static, the camera a while later."""
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {}
    with Bag(source) as bag:
        start = bag.info.start_ns
        for topic, msgtype, stamp, raw in bag.messages(set(bag.info.topics)):
            if topic.startswith('/camera/') and stamp < start + camera_start_ns:
                continue
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=bag.typestore)
            writer.write(connections[topic], stamp, raw)
    writer.close()
    return path
