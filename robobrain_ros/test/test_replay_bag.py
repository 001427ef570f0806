"""brain_replay's recordings without ROS processes: the sample scene (both storages, Humble and Kilted
definitions), reading bags and refusing bad ones, converting their messages to rclpy's types, and the output bag
(read back with rosbags and with the independent mcap reader)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from replay_support import corrupt_chunk, write_bag_with_unknown_depth_type
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from robobrain_ros.replay import sample
from robobrain_ros.replay.bag import Bag, BagError
from robobrain_ros.replay.cli import main
from robobrain_ros.replay.convert import Converter, message_class
from robobrain_ros.replay.definitions import installed_typestore
from robobrain_ros.replay.output_bag import OutputBag


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    return {(storage, distro): sample.make_sample(root / f'{storage}_{distro}', storage, distro)
            for storage in ('mcap', 'sqlite3') for distro in ('humble', 'kilted')}


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('distro', ['humble', 'kilted'])
def test_the_sample_scene_reads_back_in_both_storages_and_distributions(scenes, storage, distro):
    scene = scenes[(storage, distro)]
    with Bag(scene.bag) as bag:
        info = bag.info
        assert info.storage == storage
        assert info.start_ns == sample.START_NS and info.duration == pytest.approx(2.901)
        counts = {name: topic.count for name, topic in info.topics.items()}
        assert counts == {'/tf_static': 1, '/tf': 30, '/camera/color/image_raw': 15,
                          '/camera/color/image_raw/compressed': 15, '/camera/color/camera_info': 15,
                          '/camera/aligned_depth_to_color/image_raw': 15}
        # Humble's SQLite 3 storage keeps no message definitions; every other bag carries them.
        assert bag.definitions_in_bag is not (storage == 'sqlite3' and distro == 'humble')
    metadata = yaml.safe_load((scene.bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert metadata['version'] == (5 if distro == 'humble' else 8)
    assert metadata.get('ros_distro') == (None if distro == 'humble' else distro)


def test_the_scene_has_rgb_d_frames_camera_info_and_a_moving_camera(scenes):
    scene = scenes[('mcap', 'kilted')]
    converter = Converter(None, False)
    by_topic: dict[str, list] = {}
    with Bag(scene.bag) as bag:
        for topic, msgtype, stamp, raw in bag.messages({'/camera/color/image_raw', '/camera/color/camera_info',
                                                        '/camera/aligned_depth_to_color/image_raw',
                                                        '/camera/color/image_raw/compressed'}):
            by_topic.setdefault(topic, []).append((stamp, converter.convert(msgtype, raw)))
    first_stamp, image = by_topic['/camera/color/image_raw'][0]
    assert first_stamp == sample.START_NS + sample.CAMERA_LATENCY_NS
    assert (image.width, image.height, image.encoding, image.header.frame_id) == (640, 480, 'rgb8',
                                                                                  sample.OPTICAL_FRAME)
    assert (image.header.stamp.sec, image.header.stamp.nanosec) == (1_750_000_000, 0)
    assert np.array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(480, 640, 3), sample.frame_rgb(0))
    # The camera pans: frame 5 is frame 0 slid left by 5 * 4 px.
    later = np.frombuffer(bytes(by_topic['/camera/color/image_raw'][5][1].data), np.uint8).reshape(480, 640, 3)
    assert np.array_equal(later[:, :600], sample.frame_rgb(0)[:, 20:620])
    depth = by_topic['/camera/aligned_depth_to_color/image_raw'][0][1]
    assert depth.encoding == '16UC1' and set(np.frombuffer(bytes(depth.data), np.uint16)) == {1000}
    info = by_topic['/camera/color/camera_info'][0][1]
    assert list(info.k) == [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    assert by_topic['/camera/color/image_raw/compressed'][0][1].format == 'jpeg'


def test_the_robot_drives_forward_on_tf(scenes):
    scene = scenes[('mcap', 'kilted')]
    with Bag(scene.bag) as bag:
        tf = [bag.typestore.deserialize_cdr(raw, msgtype) for _, msgtype, _, raw in bag.messages({'/tf'})]
        static = [bag.typestore.deserialize_cdr(raw, msgtype) for _, msgtype, _, raw in bag.messages({'/tf_static'})]
    assert [t.transforms[0].transform.translation.x for t in tf][::10] == pytest.approx([0.0, 0.1, 0.2])
    assert [(t.header.frame_id, t.child_frame_id) for t in static[0].transforms] == [
        ('base_link', 'camera_link'), ('camera_link', sample.OPTICAL_FRAME)]


def test_humble_and_kilted_camera_definitions_are_the_installed_ones(scenes):
    for key in (('mcap', 'humble'), ('mcap', 'kilted'), ('sqlite3', 'kilted')):
        with Bag(scenes[key].bag) as bag:
            converter = Converter(bag.typestore, bag.definitions_in_bag)
            for topic in ('/camera/color/image_raw', '/camera/color/camera_info', '/camera/color/image_raw/compressed'):
                assert converter.unusable(topic, bag.info.topics[topic].msgtype) == '', (key, topic)


def test_a_type_without_a_python_package_here_says_which():
    converter = Converter(get_typestore(Stores.ROS2_KILTED), True)
    assert converter.unusable('/x', 'acme_msgs/msg/DepthImage').startswith('no Python message package acme_msgs')
    try:
        import tf2_msgs  # noqa: F401
    except ImportError:
        assert converter.unusable('/tf', 'tf2_msgs/msg/TFMessage') == (
            'tf2_msgs is not installed here (the ROS 2 PyPI wheels have none); target frames need a ROS 2 install '
            'with tf2 (apt install ros-$ROS_DISTRO-tf2-msgs)')


def test_a_definition_that_differs_from_the_installed_one_is_named():
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg('std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n'
                                      'uint8[] data', 'sensor_msgs/msg/Image'))
    store.register({k: v for k, v in get_typestore(Stores.ROS2_KILTED).fielddefs.items()
                    if k == 'std_msgs/msg/Header'})
    why = Converter(store, True).unusable('/camera/image', 'sensor_msgs/msg/Image')
    assert why.startswith("the bag's definition of sensor_msgs/msg/Image is not the installed one: "
                          'sensor_msgs/msg/Image has fields (header, height, width, encoding, data) against '
                          '(header, height, width, encoding, is_bigendian, step, data)'), why


def test_type_names_import_the_rclpy_classes():
    from sensor_msgs.msg import CameraInfo, Image
    assert message_class('sensor_msgs/msg/Image') is Image and message_class('sensor_msgs/CameraInfo') is CameraInfo


# ---------------------------------------------------------------------- bad bags

def test_missing_and_unreadable_bags_are_refused_with_what_to_give(tmp_path, scenes):
    with pytest.raises(BagError, match=f'no bag at {tmp_path}/none: give a rosbag2 folder'):
        Bag(tmp_path / 'none').open()
    with pytest.raises(BagError, match='is a folder without metadata.yaml: not a rosbag2 recording'):
        Bag(tmp_path).open()
    (tmp_path / 'garbage.mcap').write_bytes(b'not a bag' * 100)
    with pytest.raises(BagError, match=r'cannot read the bag .*garbage.mcap: AnyReaderError: File magic is invalid'):
        Bag(tmp_path / 'garbage.mcap').open()
    truncated = tmp_path / 'truncated'
    shutil.copytree(scenes[('mcap', 'kilted')].bag, truncated)
    data = (truncated / 'scene.mcap').read_bytes()
    (truncated / 'scene.mcap').write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError, match='cannot read the bag .*truncated: AnyReaderError: File end magic is invalid'):
        Bag(truncated).open()


def test_a_bag_damaged_in_the_middle_fails_while_it_is_read(scenes):
    damaged = corrupt_chunk(scenes[('mcap', 'kilted')].bag)
    with Bag(damaged) as bag:
        with pytest.raises(BagError, match='is corrupt: reading its messages failed: ReaderError: Chunk checksum'):
            for _ in bag.messages(set(bag.info.topics)):
                pass


def test_a_single_mcap_file_is_a_bag_too(scenes):
    with Bag(scenes[('mcap', 'kilted')].bag / 'scene.mcap') as bag:
        assert bag.info.storage == 'mcap' and bag.info.message_count == 91


# ---------------------------------------------------------------------- the output bag

def test_the_output_bag_carries_the_installed_definitions_and_type_hashes(tmp_path):
    from rclpy.serialization import serialize_message

    from robobrain_interfaces.msg import PixelPoint, PointsAnswer
    answer = PointsAnswer(points=[PixelPoint(x=1.5, y=2.5)])
    answer.info.instruction = 'the mug'
    bag = OutputBag(tmp_path / 'bag', ['robobrain_interfaces/msg/PointsAnswer', 'sensor_msgs/msg/Image'])
    bag.add_topic('/replay/results/point', 'robobrain_interfaces/msg/PointsAnswer')
    bag.write('/replay/results/point', 5, serialize_message(answer))
    bag.close()
    # rosbags reads it from the bag's own definitions (no robobrain_interfaces code needed).
    from rosbags.highlevel import AnyReader
    with AnyReader([tmp_path / 'bag']) as reader:
        (connection, stamp, raw), = list(reader.messages())
        read = reader.deserialize(raw, connection.msgtype)
        assert (connection.msgtype, stamp, read.info.instruction, read.points[0].x) == (
            'robobrain_interfaces/msg/PointsAnswer', 5, 'the mug', 1.5)
        # The type hash in the metadata is the one ROS computed when it built robobrain_interfaces.
        installed = json.loads(next(Path(p) for p in (
            Path(prefix) / 'share/robobrain_interfaces/msg/PointsAnswer.json'
            for prefix in __import__('os').environ['AMENT_PREFIX_PATH'].split(':')) if p.is_file()).read_text())
        expected = next(h['hash_string'] for h in installed['type_hashes']
                        if h['type_name'] == 'robobrain_interfaces/msg/PointsAnswer')
        assert connection.digest == expected
    # An independent MCAP reader (what Foxglove reads): ros2msg schemas, CDR messages, a summary.
    from mcap.reader import make_reader
    with open(tmp_path / 'bag' / 'bag.mcap', 'rb') as f:
        summary = make_reader(f).get_summary()
    (schema,) = summary.schemas.values()
    (channel,) = summary.channels.values()
    assert (schema.name, schema.encoding, channel.message_encoding) == (
        'robobrain_interfaces/msg/PointsAnswer', 'ros2msg', 'cdr')
    assert b'MSG: robobrain_interfaces/QueryInfo' in schema.data
    assert summary.statistics.message_count == 1


def test_an_installed_typestore_resolves_every_nested_type():
    store = installed_typestore(['robobrain_interfaces/msg/TrajectoryAnswer'])
    assert {'nav_msgs/msg/Path', 'geometry_msgs/msg/PoseStamped', 'robobrain_interfaces/msg/QueryInfo',
            'std_msgs/msg/Header'} <= set(store.fielddefs)


# ---------------------------------------------------------------------- --make-sample

def test_make_sample_on_the_command_line(tmp_path, capsys):
    assert main(['--make-sample', str(tmp_path / 's'), '--storage', 'sqlite3', '--distro', 'humble']) == 0
    printed = capsys.readouterr().out
    assert f"replay it: brain_replay {tmp_path / 's' / 'scene'} --goals {tmp_path / 's' / 'goals.yaml'}" in printed
    assert sorted(p.name for p in (tmp_path / 's').iterdir()) == ['goals.yaml', 'params.yaml', 'scene']
    assert list((tmp_path / 's' / 'scene').glob('*.db3'))
    # The goals file is the tool's own format, one goal per action.
    from robobrain_ros.replay.goals import load_goals
    goals = load_goals(tmp_path / 's' / 'goals.yaml', ['point', 'affordance', 'trajectory', 'ground', 'plan', 'ask'],
                       set())
    assert [g.action for g in goals] == ['point', 'affordance', 'trajectory', 'ground', 'plan', 'ask']
    assert main(['--make-sample', str(tmp_path / 's')]) == 2
    assert 'exists already' in capsys.readouterr().err


def test_a_bag_written_with_a_custom_type_keeps_it(tmp_path):
    """The helper the process tests use: a bag whose depth topic has a type nobody here knows."""
    path = write_bag_with_unknown_depth_type(tmp_path / 'odd', sample.make_sample(tmp_path / 'base').bag)
    with Bag(path) as bag:
        assert bag.info.topics['/camera/aligned_depth_to_color/image_raw'].msgtype == 'acme_msgs/msg/DepthImage'
