"""RViz markers always show the latest answer: an answer without 3D points clears the previous ones."""

from __future__ import annotations

from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from robobrain_interfaces.msg import BoxAnswer, LiftedPoint, PlanAnswer, PointsAnswer
from robobrain_ros.node.markers import answer_markers


def points_answer(*valid: bool) -> PointsAnswer:
    answer = PointsAnswer()
    answer.info.header = Header(frame_id='camera_color_optical_frame')
    answer.info.task = 'pointing'
    for index, ok in enumerate(valid):
        point = LiftedPoint(valid=ok, depth=1.0)
        point.position.x, point.position.z = 0.1 * index, 1.0
        answer.points_3d.append(point)
    return answer


def test_valid_points_come_after_a_deleteall():
    markers = answer_markers(points_answer(True, False, True), 0.0).markers
    assert markers[0].action == Marker.DELETEALL
    spheres = [m for m in markers if m.type == Marker.SPHERE_LIST]
    assert len(spheres) == 1 and len(spheres[0].points) == 2


def test_an_answer_without_3d_points_still_clears_the_previous_markers():
    for answer in (points_answer(), points_answer(False), BoxAnswer(), PlanAnswer()):
        array = answer_markers(answer, 0.0)
        assert [m.action for m in array.markers] == [Marker.DELETEALL], type(answer).__name__



def test_markers_are_in_the_frame_of_the_3d_part_stamped_as_the_image():
    answer = points_answer(True)
    answer.info.header.stamp.sec = 42
    answer.info.frame_3d = 'base_link'
    markers = answer_markers(answer, 0.0).markers
    assert {(m.header.frame_id, m.header.stamp.sec) for m in markers} == {('base_link', 42)}
