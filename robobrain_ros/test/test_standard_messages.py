"""Standard-message views of an answer: ~/poses (geometry_msgs/PoseArray) and the fields of ~/detections
(vision_msgs/Detection2DArray; vision_msgs has no wheels, so its message is built by hand on a robot, docs/FRAMES.md);
and the per-camera parameters. Real messages, no node."""

import math

import pytest

from robobrain_interfaces.msg import (
    BoxAnswer,
    LiftedPoint,
    PixelBox,
    PlanAnswer,
    PointsAnswer,
    QueryInfo,
    TrajectoryAnswer,
)
from robobrain_ros.node import parameters
from robobrain_ros.node.camera import CameraTopics, camera_name_problem
from robobrain_ros.node.standard_messages import DetectionBox, detection_box, pose_array


def info(frame_3d: str = 'base_link') -> QueryInfo:
    result = QueryInfo(task='pointing', instruction='the red cup', frame_3d=frame_3d)
    result.header.frame_id, result.header.stamp.sec, result.header.stamp.nanosec = 'cam_optical', 12, 500
    return result


def lifted(x: float, valid: bool = True) -> LiftedPoint:
    point = LiftedPoint(valid=valid, depth=1.0 if valid else math.nan)
    point.position.x = x
    return point


def test_poses_are_the_valid_3d_points_in_the_3d_frame_at_the_images_stamp():
    answer = PointsAnswer(info=info(), points_3d=[lifted(1.0), lifted(0.0, valid=False), lifted(2.0)])
    poses = pose_array(answer)
    assert poses.header.frame_id == 'base_link' and (poses.header.stamp.sec, poses.header.stamp.nanosec) == (12, 500)
    assert [p.position.x for p in poses.poses] == [1.0, 2.0]
    assert all(p.orientation.w == 1.0 for p in poses.poses)


def test_a_box_centre_and_a_trajectory_are_poses_too():
    box = BoxAnswer(info=info(), has_box=True, center_3d=lifted(0.5))
    assert [p.position.x for p in pose_array(box).poses] == [0.5]
    trajectory = TrajectoryAnswer(info=info(), points_3d=[lifted(0.1), lifted(0.2)])
    assert len(pose_array(trajectory).poses) == 2


@pytest.mark.parametrize('answer', [PointsAnswer(info=info(''), points_3d=[lifted(0.0, valid=False)]),
                                    BoxAnswer(info=info(), has_box=True, center_3d=lifted(0.0, valid=False)),
                                    PlanAnswer(info=info())])
def test_nothing_to_publish_without_a_valid_3d_point(answer):
    assert pose_array(answer) is None


def test_a_box_as_vision_msgs_describes_it():
    answer = BoxAnswer(info=info(), has_box=True, box=PixelBox(x_min=10.0, y_min=20.0, x_max=50.0, y_max=80.0))
    answer.info.task = 'grounding'
    assert detection_box(answer) == DetectionBox(center_x=30.0, center_y=50.0, size_x=40.0, size_y=60.0,
                                                 class_id='the red cup', task='grounding', score=1.0)
    assert detection_box(BoxAnswer(info=info(), has_box=False)) is None
    assert detection_box(PointsAnswer(info=info())) is None


def test_named_cameras_get_their_topics_and_overrides():
    values = {name: spec.default for name, spec in parameters.PARAMETERS.items()}
    values.update({'cameras.names': ['head', 'wrist'], 'cameras.head.image': '/head/image_raw',
                   'cameras.head.compressed_image': '', 'cameras.head.depth': '',
                   'cameras.head.camera_info': '/head/camera_info', 'cameras.wrist.depth_registered': True,
                   'cameras.wrist.depth_wait': None})
    topics = parameters.camera_topics(values)
    assert list(topics) == ['head', 'wrist']
    assert topics['head'] == CameraTopics('/head/image_raw', '', '/head/camera_info', '')
    assert topics['wrist'] == CameraTopics('wrist/image', 'wrist/image/compressed', 'wrist/camera_info', 'wrist/depth')
    settings = parameters.pipeline_settings(values)
    assert settings.camera_lift['wrist'].depth_registered is True
    assert settings.camera_lift['wrist'].depth_wait == values['camera.depth_wait']    # unset: camera.*
    assert settings.camera_lift['head'] == settings.lift


def test_no_names_is_one_camera_on_topics():
    values = {name: spec.default for name, spec in parameters.PARAMETERS.items()}
    values['cameras.names'] = []
    assert parameters.camera_topics(values) == {'default': CameraTopics('image', 'image/compressed', 'camera_info',
                                                                        'depth')}


@pytest.mark.parametrize('names, problem', [(['head', 'head'], 'more than once'), (['2nd'], 'starts with a letter'),
                                            (['wrist cam'], 'starts with a letter'), (['default'], 'choose another'),
                                            (['head', 'wrist_2'], '')])
def test_camera_names_must_be_usable_as_namespaces(names, problem):
    found = camera_name_problem(names)
    assert (problem in found) if problem else found == ''
