"""brain_replay's pure parts: the goals file, the params file, topic names, which bag topics are replayed, and the
replay's clock. No ROS processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from robobrain_ros.replay.bag import BagInfo, BagTopic
from robobrain_ros.replay.goals import (
    GoalsError,
    GoalSpec,
    in_send_order,
    load_goals,
    parse_goals,
    past_the_end,
    unknown_cameras,
)
from robobrain_ros.replay.params import ParamsError, flatten, load_params_file, resolve_topic, split_full_name
from robobrain_ros.replay.schedule import ReplayClock, timeline
from robobrain_ros.replay.topics import CameraInputs, plan_topics

ACTIONS = ['point', 'affordance', 'trajectory', 'ground', 'plan', 'ask']
WITH_3D = {'point', 'affordance', 'trajectory', 'ground'}


def parse(data):
    return parse_goals(data, ACTIONS, WITH_3D, source='goals.yaml')


def test_a_goals_file_gives_every_field(tmp_path):
    path = tmp_path / 'goals.yaml'
    path.write_text('- {at: 0.5, action: point, instruction: the red cup}\n'
                    '- {at: 1, action: trajectory, instruction: move it, camera: wrist, target_frame: base_link,\n'
                    '   thinking: on, timeout: 30, max_image_age: 0.5}\n'
                    '- {at: 2, action: ask, instruction: "what is there?", thinking: off}\n')
    goals = load_goals(path, ACTIONS, WITH_3D)
    assert goals[0] == GoalSpec(1, 0.5, 'point', 'the red cup')
    assert goals[1] == GoalSpec(2, 1.0, 'trajectory', 'move it', 'wrist', 'base_link', 'on', 30.0, 0.5)
    # YAML 1.1 reads a bare on / off as booleans: they still mean the thinking switch.
    assert (goals[1].thinking_code, goals[2].thinking_code, goals[0].thinking_code) == (2, 1, 0)


def test_a_mapping_with_goals_is_accepted_too():
    assert parse({'goals': [{'at': 0, 'action': 'ask', 'instruction': 'hi'}]})[0].action == 'ask'


@pytest.mark.parametrize('data, message', [
    ([{'at': 0, 'action': 'wave', 'instruction': 'hi'}],
     "goals.yaml: goal 1: unknown action 'wave' (actions: point, affordance, trajectory, ground, plan, ask)"),
    ([{'at': 0, 'action': 'point'}], 'goals.yaml: goal 1: missing instruction'),
    ([{'at': -1, 'action': 'point', 'instruction': 'x'}], 'goals.yaml: goal 1: at must be a number of seconds >= 0'),
    ([{'at': 'soon', 'action': 'point', 'instruction': 'x'}], 'goals.yaml: goal 1: at must be a number'),
    ([{'at': 0, 'action': 'point', 'instruction': '  '}], 'goals.yaml: goal 1: instruction must be a non-empty'),
    ([{'at': 0, 'action': 'point', 'instruction': 'x', 'colour': 'red'}], 'goals.yaml: goal 1: unknown field colour'),
    ([{'at': 0, 'action': 'plan', 'instruction': 'x', 'target_frame': 'map'}],
     'goals.yaml: goal 1: target_frame is for point, affordance, trajectory, ground: plan answers have no 3D points'),
    ([{'at': 0, 'action': 'point', 'instruction': 'x', 'thinking': 'maybe'}],
     "goals.yaml: goal 1: thinking must be on, off or default, got 'maybe'"),
    ([{'at': 0, 'action': 'point', 'instruction': 'x'}, 'point at it'], 'goals.yaml: goal 2: expected a mapping'),
    ([], 'goals.yaml: expected a non-empty YAML list of goals'),
    (None, 'goals.yaml: expected a non-empty YAML list of goals ({at, action, instruction, ...} each), got nothing'),
])
def test_a_bad_goal_is_named_with_its_field(data, message):
    with pytest.raises(GoalsError) as error:
        parse(data)
    assert str(error.value).startswith(message), str(error.value)


def test_an_unreadable_goals_file_says_so(tmp_path):
    with pytest.raises(GoalsError, match='cannot read the goals file'):
        load_goals(tmp_path / 'none.yaml', ACTIONS, WITH_3D)
    (tmp_path / 'bad.yaml').write_text('- {at: 0, action: point\n')
    with pytest.raises(GoalsError, match='is not YAML'):
        load_goals(tmp_path / 'bad.yaml', ACTIONS, WITH_3D)


def test_goals_past_the_end_are_named_with_the_bags_duration():
    goals = parse([{'at': 1, 'action': 'ask', 'instruction': 'a'}, {'at': 3.5, 'action': 'ask', 'instruction': 'b'},
                   {'at': 2.901, 'action': 'ask', 'instruction': 'c'}])
    assert past_the_end(goals, 2.901) == ('goal 2 at 3.5 s: past the end of the bag, which lasts 2.901 s (at is in '
                                          'seconds from its first message); nothing would be replayed for them')
    assert past_the_end(goals[:1] + goals[2:], 2.901) == ''


def test_an_unknown_camera_is_warned_about_and_the_goal_still_goes():
    goals = parse([{'at': 0, 'action': 'point', 'instruction': 'a', 'camera': 'belly'},
                   {'at': 0, 'action': 'point', 'instruction': 'b', 'camera': 'wrist'},
                   {'at': 0, 'action': 'point', 'instruction': 'c'}])
    assert unknown_cameras(goals, ['head', 'wrist']) == [
        "goal 1 names camera 'belly', and the node has head, wrist: it will end BAD_GOAL (sent anyway, so that the "
        'report shows what the node said)']


def test_goals_go_in_time_order_then_file_order():
    goals = parse([{'at': 2, 'action': 'ask', 'instruction': 'a'}, {'at': 1, 'action': 'ask', 'instruction': 'b'},
                   {'at': 1, 'action': 'ask', 'instruction': 'c'}])
    assert [g.index for g in in_send_order(goals)] == [2, 3, 1]


# ---------------------------------------------------------------------- params file and names

def test_a_params_file_gives_the_nodes_section_flat(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    topics: {image: /cam/image, depth: ""}\n    queries:\n'
                    '      goal_timeout: 5.0\n'
                    '/other:\n  ros__parameters: {topics: {image: /nope}}\n'
                    'robobrain:\n  ros__parameters: {server: {base_urls: ["http://a:1/v1"]}}\n')
    assert load_params_file(path, '/robobrain') == {'topics.image': '/cam/image', 'topics.depth': '',
                                                    'queries.goal_timeout': 5.0,
                                                    'server.base_urls': ['http://a:1/v1']}
    assert flatten({'a': {'b': {'c': 1}}, 'd': 2}) == {'a.b.c': 1, 'd': 2}


def test_a_params_file_without_the_node_is_refused(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/other:\n  ros__parameters: {topics: {image: /nope}}\n')
    with pytest.raises(ParamsError, match=r"no section for the node /robobrain \(its keys: /other"):
        load_params_file(path, '/robobrain')
    with pytest.raises(ParamsError, match='cannot read the params file'):
        load_params_file(tmp_path / 'missing.yaml')


@pytest.mark.parametrize('topic, node, resolved', [
    ('image', '/robobrain', '/image'),
    ('camera/image', '/robot/robobrain', '/robot/camera/image'),
    ('/abs/image', '/robot/robobrain', '/abs/image'),
    ('~/points', '/robot/robobrain', '/robot/robobrain/points'),
    ('~/points', '/robobrain', '/robobrain/points'),
])
def test_topics_resolve_as_ros_resolves_them_for_the_node(topic, node, resolved):
    assert resolve_topic(topic, node) == resolved


def test_a_full_name_splits_into_namespace_and_name():
    assert split_full_name('/a/b/robobrain') == ('/a/b', 'robobrain')
    assert split_full_name('robobrain') == ('', 'robobrain')


# ---------------------------------------------------------------------- which topics are replayed

def bag_info(**topics: str) -> BagInfo:
    return BagInfo(Path('bag'), 'mcap', 0, 10, 3,
                   {name: BagTopic(name, kind, 1, True) for name, kind in topics.items()})


CAMERA = CameraInputs('default', '/cam/image', '/cam/image/compressed', '/cam/info', '/cam/depth')


def test_the_cameras_topics_and_tf_are_replayed_the_rest_is_not():
    info = bag_info(**{'/cam/image': 'sensor_msgs/msg/Image', '/cam/info': 'sensor_msgs/msg/CameraInfo',
                       '/cam/depth': 'sensor_msgs/msg/Image', '/tf': 'tf2_msgs/msg/TFMessage',
                       '/scan': 'sensor_msgs/msg/LaserScan'})
    plan = plan_topics(info, [CAMERA], lambda topic, kind: 'no tf2_msgs here' if kind.startswith('tf2') else '')
    assert plan.publish == {'/cam/depth': 'sensor_msgs/msg/Image', '/cam/image': 'sensor_msgs/msg/Image',
                            '/cam/info': 'sensor_msgs/msg/CameraInfo'}
    assert plan.skipped == {'/tf': 'no tf2_msgs here'}
    assert plan.warnings == ['/tf (tf2_msgs/msg/TFMessage) is not replayed: no tf2_msgs here']
    assert plan.ignored == ['/scan'] and plan.problem == ''


def test_an_unknown_type_on_the_depth_topic_is_skipped_with_a_warning_that_names_it():
    info = bag_info(**{'/cam/image': 'sensor_msgs/msg/Image', '/cam/depth': 'acme_msgs/msg/Depth'})
    plan = plan_topics(info, [CAMERA], lambda topic, kind: 'no acme_msgs here' if kind.startswith('acme') else '')
    assert plan.warnings == ['/cam/depth (acme_msgs/msg/Depth) is not replayed: no acme_msgs here',
                             'camera default: its depth topic /cam/depth is not replayed: answers will have no 3D '
                             'points']
    assert not plan.problem


def test_a_bag_without_the_cameras_colour_topics_has_nothing_to_replay():
    info = bag_info(**{'/other/image': 'sensor_msgs/msg/Image', '/cam/depth': 'sensor_msgs/msg/Image'})
    plan = plan_topics(info, [CAMERA], lambda topic, kind: '')
    assert plan.problem.startswith('the bag has no colour topic the node listens to (/cam/image, '
                                   '/cam/image/compressed). The bag has: /cam/depth (sensor_msgs/msg/Image), '
                                   '/other/image (sensor_msgs/msg/Image). Map the node to the bag with --params-file')


def test_a_second_camera_without_frames_is_warned_about():
    wrist = CameraInputs('wrist', '/wrist/image', '', '', '')
    plan = plan_topics(bag_info(**{'/cam/image': 'sensor_msgs/msg/Image'}), [CAMERA, wrist], lambda t, k: '')
    assert 'camera wrist: none of its colour topics (/wrist/image) is replayed: its goals will end NO_IMAGE' \
        in plan.warnings and not plan.problem


# ---------------------------------------------------------------------- the replay's clock and order

def test_bag_time_runs_at_the_rate_and_stops_at_both_ends():
    clock = ReplayClock(start_ns=1_000_000_000, end_ns=3_000_000_000, rate=0.5)
    assert clock.bag_now_ns(50.0) == 1_000_000_000          # before it begins
    clock.begin(100.0)
    assert clock.wall_at(2_000_000_000) == pytest.approx(102.0)
    assert clock.bag_now_ns(101.0) == 1_500_000_000
    assert clock.bag_now_ns(99.0) == 1_000_000_000 and clock.bag_now_ns(200.0) == 3_000_000_000
    with pytest.raises(ValueError, match='rate must be > 0'):
        ReplayClock(0, 1, rate=0.0)


def test_a_goal_comes_after_the_messages_of_its_instant():
    clock = ReplayClock(start_ns=0, end_ns=3_000_000_000)
    goals = parse([{'at': 1.0, 'action': 'ask', 'instruction': 'a'}, {'at': 3.0, 'action': 'ask', 'instruction': 'b'},
                   {'at': 0.0, 'action': 'ask', 'instruction': 'c'}])
    messages = [(0, 'm0'), (1_000_000_000, 'm1'), (2_000_000_000, 'm2')]
    order = [(e.kind, e.payload if e.kind == 'message' else e.payload.instruction)
             for e in timeline(messages, goals, clock)]
    assert order == [('message', 'm0'), ('goal', 'c'), ('message', 'm1'), ('goal', 'a'), ('message', 'm2'),
                     ('goal', 'b')]


def test_the_pure_parts_of_the_replay_import_no_ros():
    """Goals, params, bag, definitions, topics, schedule, output bag, report, compare, sample: no rclpy, no messages."""
    import subprocess
    import sys
    pure = ['exit_codes', 'goals', 'params', 'bag', 'definitions', 'topics', 'schedule', 'output_bag', 'report',
            'compare', 'sample']
    code = ('import sys\n'
            + ''.join(f'import robobrain_ros.replay.{name}\n' for name in pure)
            + "ros = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'robobrain_interfaces')\n"
              "             or m.split('.')[0].endswith('_msgs'))\n"
              'print(ros)\n')
    found = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == '[]'
