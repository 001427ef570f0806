"""RViz markers for an answer's 3D points, in the frame of its 3D part (info.frame_3d: the target frame or the
camera optical frame), stamped as the image the answer is about.

Each array starts with DELETEALL, so the markers on screen are always those of the latest answer.
Namespaces: robobrain/points, robobrain/box_centre, robobrain/trajectory, robobrain/labels.
"""

from __future__ import annotations

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from robobrain_interfaces.msg import BoxAnswer, PointsAnswer, TrajectoryAnswer
from robobrain_ros.node.answer_messages import header_3d
from robobrain_ros.protocol import annotate


def _rgba(rgb: tuple[int, int, int]) -> ColorRGBA:
    return ColorRGBA(r=rgb[0] / 255.0, g=rgb[1] / 255.0, b=rgb[2] / 255.0, a=1.0)


# The annotated image's colours (protocol.annotate), so a point in RViz matches the picture.
POINT_COLOUR = _rgba(annotate.POINT_COLOUR)
BOX_COLOUR = _rgba(annotate.BOX_COLOUR)
TRAJECTORY_COLOUR = _rgba(annotate.TRAJECTORY_POINT_COLOUR)
LABEL_COLOUR = _rgba(annotate.TEXT_COLOUR)
POINT_DIAMETER = 0.03   # [m]
LINE_WIDTH = 0.01       # [m]


def answer_markers(answer, lifetime_s: float) -> MarkerArray:
    """Markers for an answer: DELETEALL, then its valid 3D points (PointsAnswer, BoxAnswer, TrajectoryAnswer).

    An answer without 3D points (no depth, a plan, a failed goal) still clears the previous answer's markers:
    RViz must never show points the latest answer did not give.
    """
    # No valid 3D point: no frame_3d, and the DELETEALL goes out in the image's frame.
    header = header_3d(answer.info) if answer.info.frame_3d else answer.info.header
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    if isinstance(answer, (PointsAnswer, TrajectoryAnswer)):
        valid = [(i, p.position) for i, p in enumerate(answer.points_3d) if p.valid]
    elif isinstance(answer, BoxAnswer):
        valid = [(0, answer.center_3d.position)] if answer.has_box and answer.center_3d.valid else []
    else:
        valid = []

    array = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header = header
    array.markers.append(clear)
    if not valid:
        return array

    def marker(ns: str, marker_id: int, kind: int, colour: ColorRGBA) -> Marker:
        m = Marker(ns=ns, id=marker_id, type=kind, action=Marker.ADD, lifetime=lifetime, color=colour)
        m.header = header
        m.pose.orientation.w = 1.0
        return m

    if isinstance(answer, BoxAnswer):
        ns, colour = 'robobrain/box_centre', BOX_COLOUR
    elif isinstance(answer, TrajectoryAnswer):
        ns, colour = 'robobrain/trajectory', TRAJECTORY_COLOUR
    else:
        ns, colour = 'robobrain/points', POINT_COLOUR

    spheres = marker(ns, 0, Marker.SPHERE_LIST, colour)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = POINT_DIAMETER
    spheres.points = [Point(x=p.x, y=p.y, z=p.z) for _, p in valid]
    array.markers.append(spheres)

    if isinstance(answer, TrajectoryAnswer) and len(valid) > 1:
        line = marker(ns, 1, Marker.LINE_STRIP, colour)
        line.scale.x = LINE_WIDTH
        line.points = [Point(x=p.x, y=p.y, z=p.z) for _, p in valid]
        array.markers.append(line)

    for index, position in valid:
        label = marker('robobrain/labels', index, Marker.TEXT_VIEW_FACING, LABEL_COLOUR)
        label.scale.z = POINT_DIAMETER * 1.5
        label.pose.position = Point(x=position.x, y=position.y - POINT_DIAMETER * 1.5, z=position.z)
        label.text = f'{answer.info.task} {index + 1}' if not isinstance(answer, BoxAnswer) else answer.info.task
        array.markers.append(label)
    return array
