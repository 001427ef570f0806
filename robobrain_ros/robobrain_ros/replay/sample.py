"""A sample recording made here, with rosbags (no ROS needed): a short RGB-D scene from a moving camera.

    brain_replay --make-sample DIR [--storage mcap|sqlite3] [--distro humble|jazzy|kilted]

DIR/scene/ is the rosbag2 recording, DIR/goals.yaml six goals for it (one per action) and DIR/params.yaml the
node's topics for it. The scene: the consistency tool's table photograph (a red cup, a blue box, a green plate, a
mug) seen by a RealSense-like camera (raw and JPEG colour, camera_info, registered 16UC1 depth of a wall 1 m away)
on a robot that drives forward at 0.1 m/s (/tf odom -> base_link) while the camera pans (the picture slides 4 px a
frame); /tf_static holds base_link -> camera_link -> camera_color_optical_frame. 5 Hz for 3 s.

--distro picks the message definitions the bag carries (rosbags' store of that distribution). humble also writes
the bag as Humble's rosbag2 does: metadata version 5, and with sqlite3 no message definitions at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robobrain_ros.consistency.samples import SHIPPED_SAMPLES

NS = 1_000_000_000
IMAGE = SHIPPED_SAMPLES.parent / 'images' / 'table.png'
START_NS = 1_750_000_000 * NS      # bag time of the first message (2025-06-15)
FRAMES = 15                        # colour, depth and camera_info each
FRAME_PERIOD = 0.2                 # [s] 5 Hz
TF_PERIOD = 0.1                    # [s] /tf at 10 Hz
CAMERA_LATENCY_NS = 10_000_000     # a frame is recorded 10 ms after its stamp
WIDTH, HEIGHT = 640, 480
FOCAL = 500.0                      # [px]
# K's principal point is (WIDTH / 2, HEIGHT / 2) and pixel centres are at integers + 0.5 (the node's convention):
# the answer pixel (320.5, 240.5) lifts to the optical axis.
DEPTH_MM = 1000                    # a wall 1 m in front of the camera, 16UC1
SHIFT_PX = 4                       # the picture slides left this much per frame
SPEED = 0.1                        # [m/s] base_link along odom's x
OPTICAL_FRAME = 'camera_color_optical_frame'
TOPICS = {
    'image': '/camera/color/image_raw',
    'compressed_image': '/camera/color/image_raw/compressed',
    'camera_info': '/camera/color/camera_info',
    'depth': '/camera/aligned_depth_to_color/image_raw',
}
STORES = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY, 'kilted': Stores.ROS2_KILTED}
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
SAMPLE_GOALS = [
    {'at': 0.5, 'action': 'point', 'instruction': 'the red cup'},
    {'at': 1.0, 'action': 'affordance', 'instruction': 'grasp the mug by its handle'},
    {'at': 1.5, 'action': 'trajectory', 'instruction': 'move the red cup onto the green plate'},
    {'at': 2.0, 'action': 'ground', 'instruction': 'the blue box'},
    {'at': 2.3, 'action': 'plan', 'instruction': 'put the red cup on the green plate'},
    {'at': 2.6, 'action': 'ask', 'instruction': 'what is on the table?'},
]


@dataclass(frozen=True)
class SampleScene:
    directory: Path
    bag: Path
    goals: Path
    params: Path
    start_ns: int
    end_ns: int

    @property
    def duration(self) -> float:
        return (self.end_ns - self.start_ns) / NS


def frame_stamp_ns(index: int) -> int:
    return START_NS + int(round(index * FRAME_PERIOD * NS))


def frame_rgb(index: int) -> np.ndarray:
    """Colour frame `index` as HxWx3 RGB: the table photograph slid left by SHIFT_PX per frame, edge repeated."""
    bgr = cv2.imread(str(IMAGE), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'the sample image {IMAGE} is missing from the installed package')
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    shift = min(index * SHIFT_PX, WIDTH - 1)
    moved = np.empty_like(rgb)
    moved[:, :WIDTH - shift] = rgb[:, shift:]
    moved[:, WIDTH - shift:] = rgb[:, -1:]
    return moved


def params_text() -> str:
    return ('# The brain node\'s topics for the sample scene (brain_replay --make-sample).\n'
            + yaml.safe_dump({'/**': {'ros__parameters': {'topics': {
                'image': TOPICS['image'], 'compressed_image': '', 'camera_info': TOPICS['camera_info'],
                'depth': TOPICS['depth']}}}}, sort_keys=False))


def goals_text() -> str:
    lines = ['# Goals for the sample scene (brain_replay --make-sample): at = seconds from the bag\'s start.']
    for goal in SAMPLE_GOALS:
        lines.append(f"- {{at: {goal['at']}, action: {goal['action']}, instruction: \"{goal['instruction']}\"}}")
    return '\n'.join(lines) + '\n'


class _Messages:
    """Builds the scene's messages as rosbags objects of one distribution's typestore."""

    def __init__(self, store) -> None:
        self.store = store
        self.t = store.types

    def header(self, stamp_ns: int, frame_id: str):
        time = self.t['builtin_interfaces/msg/Time'](sec=stamp_ns // NS, nanosec=stamp_ns % NS)
        return self.t['std_msgs/msg/Header'](stamp=time, frame_id=frame_id)

    def image(self, stamp_ns: int, rgb: np.ndarray):
        return self.t['sensor_msgs/msg/Image'](
            header=self.header(stamp_ns, OPTICAL_FRAME), height=HEIGHT, width=WIDTH, encoding='rgb8',
            is_bigendian=0, step=WIDTH * 3, data=np.frombuffer(rgb.tobytes(), np.uint8))

    def compressed(self, stamp_ns: int, rgb: np.ndarray):
        ok, jpeg = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        return self.t['sensor_msgs/msg/CompressedImage'](header=self.header(stamp_ns, OPTICAL_FRAME), format='jpeg',
                                                         data=np.frombuffer(jpeg.tobytes(), np.uint8))

    def depth(self, stamp_ns: int):
        depth = np.full((HEIGHT, WIDTH), DEPTH_MM, np.uint16)
        return self.t['sensor_msgs/msg/Image'](
            header=self.header(stamp_ns, OPTICAL_FRAME), height=HEIGHT, width=WIDTH, encoding='16UC1',
            is_bigendian=0, step=WIDTH * 2, data=np.frombuffer(depth.tobytes(), np.uint8))

    def camera_info(self, stamp_ns: int):
        roi = self.t['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        k = [FOCAL, 0.0, WIDTH / 2, 0.0, FOCAL, HEIGHT / 2, 0.0, 0.0, 1.0]
        p = [FOCAL, 0.0, WIDTH / 2, 0.0, 0.0, FOCAL, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
        return self.t['sensor_msgs/msg/CameraInfo'](
            header=self.header(stamp_ns, OPTICAL_FRAME), height=HEIGHT, width=WIDTH, distortion_model='plumb_bob',
            d=np.zeros(5), k=np.array(k), r=np.array([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]), p=np.array(p),
            binning_x=0, binning_y=0, roi=roi)

    def transform(self, stamp_ns: int, parent: str, child: str, xyz, xyzw):
        t = self.t
        return t['geometry_msgs/msg/TransformStamped'](
            header=self.header(stamp_ns, parent), child_frame_id=child,
            transform=t['geometry_msgs/msg/Transform'](
                translation=t['geometry_msgs/msg/Vector3'](x=xyz[0], y=xyz[1], z=xyz[2]),
                rotation=t['geometry_msgs/msg/Quaternion'](x=xyzw[0], y=xyzw[1], z=xyzw[2], w=xyzw[3])))

    def tf(self, transforms):
        return self.t['tf2_msgs/msg/TFMessage'](transforms=transforms)


def make_sample(directory: str | Path, storage: str = 'mcap', distro: str = 'kilted') -> SampleScene:
    """Write the sample scene into directory (created; it must not hold a scene already)."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if distro not in STORES:
        raise ValueError(f"distro must be one of {', '.join(STORES)}, got {distro!r}")
    directory = Path(directory)
    bag = directory / 'scene'
    if bag.exists():
        raise FileExistsError(f'{bag} exists already: choose another folder or delete it')
    directory.mkdir(parents=True, exist_ok=True)
    store = get_typestore(STORES[distro])
    build = _Messages(store)
    records: list[tuple[int, str, str, object]] = []   # (log time, topic, msgtype, message)
    statics = [build.transform(START_NS, 'base_link', 'camera_link', (0.2, 0.0, 0.5), (0.0, 0.0, 0.0, 1.0)),
               # REP 103: optical z forward, x right, y down.
               build.transform(START_NS, 'camera_link', OPTICAL_FRAME, (0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5))]
    records.append((START_NS, '/tf_static', 'tf2_msgs/msg/TFMessage', build.tf(statics)))
    for index in range(FRAMES):
        stamp = frame_stamp_ns(index)
        rgb = frame_rgb(index)
        logged = stamp + CAMERA_LATENCY_NS
        records += [(logged, TOPICS['image'], 'sensor_msgs/msg/Image', build.image(stamp, rgb)),
                    (logged, TOPICS['compressed_image'], 'sensor_msgs/msg/CompressedImage',
                     build.compressed(stamp, rgb)),
                    (logged, TOPICS['camera_info'], 'sensor_msgs/msg/CameraInfo', build.camera_info(stamp)),
                    (logged + 1_000_000, TOPICS['depth'], 'sensor_msgs/msg/Image', build.depth(stamp))]
    for index in range(int(round(FRAMES * FRAME_PERIOD / TF_PERIOD))):
        stamp = START_NS + int(round(index * TF_PERIOD * NS))
        x = SPEED * (stamp - START_NS) / NS
        records.append((stamp + 1_000_000, '/tf', 'tf2_msgs/msg/TFMessage',
                        build.tf([build.transform(stamp, 'odom', 'base_link', (x, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))])))
    records.sort(key=lambda record: record[0])
    writer = Writer(bag, version=8, storage_plugin=STORAGES[storage])
    writer.open()
    connections = {}
    try:
        for logged, topic, msgtype, message in records:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], logged, store.serialize_cdr(message, msgtype))
    finally:
        writer.close()
    if distro == 'humble':
        _as_humble_writes_it(bag, storage)
    else:
        _set_distro(bag, distro)
    (directory / 'goals.yaml').write_text(goals_text())
    (directory / 'params.yaml').write_text(params_text())
    return SampleScene(directory, bag, directory / 'goals.yaml', directory / 'params.yaml', records[0][0],
                       records[-1][0])


def _set_distro(bag: Path, distro: str) -> None:
    """The metadata names the distribution as `ros2 bag record` of that distribution does (rosbags says 'rosbags')."""
    meta_path = bag / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    meta['rosbag2_bagfile_information']['ros_distro'] = distro
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))


def _as_humble_writes_it(bag: Path, storage: str) -> None:
    """Humble's rosbag2: metadata version 5 (no type hashes, no ros_distro); its SQLite 3 storage (schema 3) keeps
    no message definitions."""
    meta_path = bag / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    info = meta['rosbag2_bagfile_information']
    info['version'] = 5
    info.pop('ros_distro', None)
    for topic in info.get('topics_with_message_count', []):
        topic['topic_metadata'].pop('type_description_hash', None)
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    if storage != 'sqlite3':
        return
    for database in bag.glob('*.db3'):
        with sqlite3.connect(database) as db:
            db.executescript("""
                DROP TABLE message_definitions;
                CREATE TABLE topics_humble(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                    serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
                INSERT INTO topics_humble SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics;
                DROP TABLE topics;
                ALTER TABLE topics_humble RENAME TO topics;
                UPDATE schema SET schema_version = 3, ros_distro = 'humble';
            """)
        db.close()
