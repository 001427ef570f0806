"""brain_replay refuses bad input before it starts anything, each with a clear message and its exit status
(docs/REPLAY.md), and never leaves OUT behind. In-process (cli.main): no node process is started by these."""

from __future__ import annotations

import socket

import pytest
from replay_support import replay_params

from robobrain_ros.replay import exit_codes, sample
from robobrain_ros.replay.cli import main


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    return sample.make_sample(tmp_path_factory.mktemp('bad_input') / 'sample')


@pytest.fixture
def params(tmp_path):
    return replay_params(tmp_path / 'params.yaml')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def replay(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def assert_no_output(out) -> None:
    assert not out.exists() and not out.with_name(out.name + '.partial').exists()


def test_a_missing_bag(capsys, tmp_path, scene):
    out = tmp_path / 'out'
    code, said = replay(capsys, tmp_path / 'nothing', '--goals', scene.goals, '--out', out)
    assert code == exit_codes.BAD_BAG == 3
    assert f'brain_replay: error: no bag at {tmp_path}/nothing: give a rosbag2 folder (with metadata.yaml) or one ' \
           '.mcap or .db3 file' in said
    assert_no_output(out)


def test_a_corrupt_bag(capsys, tmp_path, scene):
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 8}\n')
    out = tmp_path / 'out'
    code, said = replay(capsys, tmp_path / 'broken', '--goals', scene.goals, '--out', out)
    assert code == exit_codes.BAD_BAG
    assert f'error: cannot read the bag {tmp_path}/broken: ' in said
    (tmp_path / 'garbage.mcap').write_bytes(b'\x00' * 1000)
    code, said = replay(capsys, tmp_path / 'garbage.mcap', '--goals', scene.goals, '--out', out)
    assert code == exit_codes.BAD_BAG and 'File magic is invalid' in said
    assert_no_output(out)


def test_goals_past_the_bags_end_are_refused_with_its_duration(capsys, tmp_path, scene):
    goals = tmp_path / 'goals.yaml'
    goals.write_text('- {at: 1.0, action: point, instruction: a}\n- {at: 4.5, action: ask, instruction: b}\n')
    out = tmp_path / 'out'
    code, said = replay(capsys, scene.bag, '--goals', goals, '--out', out)
    assert code == exit_codes.BAD_INPUT == 2
    assert ('error: goal 2 at 4.5 s: past the end of the bag, which lasts 2.901 s (at is in seconds from its first '
            'message)') in said
    assert_no_output(out)


def test_an_unknown_action(capsys, tmp_path, scene):
    goals = tmp_path / 'goals.yaml'
    goals.write_text('- {at: 1.0, action: wave, instruction: a}\n')
    code, said = replay(capsys, scene.bag, '--goals', goals, '--out', tmp_path / 'out')
    assert code == exit_codes.BAD_INPUT
    assert f"error: {goals}: goal 1: unknown action 'wave' (actions: point, affordance, trajectory, ground, plan, " \
           'ask)' in said


def test_a_bag_without_any_camera_topic_of_the_node(capsys, tmp_path, scene):
    params = replay_params(tmp_path / 'params.yaml', **{'topics.image': '/front/image', 'topics.camera_info': '',
                                                        'topics.depth': ''})
    out = tmp_path / 'out'
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--params-file', params, '--out', out)
    assert code == exit_codes.NO_CAMERA_TOPIC == 4
    assert ('error: the bag has no colour topic the node listens to (/front/image). The bag has: '
            '/camera/aligned_depth_to_color/image_raw (sensor_msgs/msg/Image), ') in said
    assert 'Map the node to the bag with --params-file' in said
    assert_no_output(out)


def test_the_nodes_default_topics_are_not_the_bags(capsys, tmp_path, scene):
    # Without a params file the node listens to image, image/compressed, ...: none of them is in the sample.
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--out', tmp_path / 'out')
    assert code == exit_codes.NO_CAMERA_TOPIC
    assert 'the bag has no colour topic the node listens to (/image, /image/compressed)' in said


def test_a_model_server_that_does_not_answer_at_the_start(capsys, tmp_path, scene, params):
    out = tmp_path / 'out'
    url = f'http://127.0.0.1:{free_port()}/v1'
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--params-file', params, '--out', out,
                        '--server-url', url)
    assert code == exit_codes.SERVER_FAILED == 5
    assert f'error: no model server answers: {url}: ' in said and 'give --server-url URL' in said
    assert_no_output(out)


def test_brain_naming_no_running_node(capsys, tmp_path, scene):
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--out', tmp_path / 'out', '--brain',
                        '/nobody/here')
    assert code == exit_codes.NODE_FAILED == 6
    assert 'error: no brain node answers at /nobody/here (its parameter services): is it running, in this ' \
           'ROS_DOMAIN_ID?' in said


@pytest.mark.parametrize('args, message', [
    (['--rate', '0'], '--rate must be > 0, got 0'),
    (['--server-url', 'ftp://x'], "--server-url 'ftp://x': URL 1 of 1 ('ftp://x')"),
])
def test_bad_options(capsys, tmp_path, scene, params, args, message):
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--params-file', params, '--out', tmp_path / 'o',
                        *args)
    assert code == exit_codes.BAD_INPUT and message in said, said


def test_an_existing_output_is_not_overwritten(capsys, tmp_path, scene):
    (tmp_path / 'out').mkdir()
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--out', tmp_path / 'out')
    assert code == exit_codes.BAD_INPUT
    assert f'{tmp_path}/out exists already: give a new --out' in said


def test_a_params_file_without_the_node(capsys, tmp_path, scene):
    params = tmp_path / 'params.yaml'
    params.write_text('/camera_driver:\n  ros__parameters: {fps: 30}\n')
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--params-file', params, '--out', tmp_path / 'o')
    assert code == exit_codes.BAD_INPUT and 'no section for the node /robobrain' in said


def test_a_replay_needs_bag_goals_and_out(capsys, scene):
    code, said = replay(capsys, scene.bag)
    assert code == exit_codes.BAD_INPUT and 'a replay needs --goals, --out' in said
    code, said = replay(capsys, scene.bag, '--goals', scene.goals, '--out', 'x', '--compare', 'a', 'b')
    assert code == exit_codes.BAD_INPUT and 'choose one' in said
