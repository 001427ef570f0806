"""Standard-message views of an answer message, for planners that consume no robobrain_interfaces:
geometry_msgs/PoseArray of its valid 3D points (~/poses) and vision_msgs/Detection2DArray of its box
(~/detections). The trajectory's nav_msgs/Path is built with the answer (answer_messages.path_3d).

Same stamp as the answer; the poses are in info.frame_3d (the goal's target frame or the optical frame), the
detections in the image's pixels (info.header). vision_msgs has no wheels: it is imported here only, and its
absence leaves ~/detections out.
"""

from __future__ import annotations

from dataclasses import dataclass

from geometry_msgs.msg import Pose, PoseArray

from robobrain_interfaces.msg import BoxAnswer, PointsAnswer, TrajectoryAnswer
from robobrain_ros.node.answer_messages import header_3d

VISION_MSGS_MISSING = ('vision_msgs is not installed: ~/detections (vision_msgs/Detection2DArray) is not '
                       'published; install ros-$ROS_DISTRO-vision-msgs to get it')
# RoboBrain gives no confidence with its boxes: a consumer that filters on score keeps them.
DETECTION_SCORE = 1.0


def pose_array(answer) -> PoseArray | None:
    """The answer's valid 3D points (or box centre) as poses with identity orientation; None when there are none."""
    if isinstance(answer, (PointsAnswer, TrajectoryAnswer)):
        positions = [p.position for p in answer.points_3d if p.valid]
    elif isinstance(answer, BoxAnswer) and answer.has_box and answer.center_3d.valid:
        positions = [answer.center_3d.position]
    else:
        positions = []
    if not positions:
        return None
    poses = PoseArray(header=header_3d(answer.info))
    for position in positions:
        pose = Pose(position=position)
        pose.orientation.w = 1.0
        poses.poses.append(pose)
    return poses


@dataclass(frozen=True)
class DetectionBox:
    """A box answer as vision_msgs describes boxes: centre and size [px], the instruction as the class."""

    center_x: float
    center_y: float
    size_x: float
    size_y: float
    class_id: str
    task: str
    score: float = DETECTION_SCORE


def detection_box(answer) -> DetectionBox | None:
    """The box of an affordance or grounding answer; None for other answers and answers without a box."""
    if not isinstance(answer, BoxAnswer) or not answer.has_box:
        return None
    box = answer.box
    return DetectionBox(center_x=(box.x_min + box.x_max) / 2.0, center_y=(box.y_min + box.y_max) / 2.0,
                        size_x=box.x_max - box.x_min, size_y=box.y_max - box.y_min,
                        class_id=answer.info.instruction, task=answer.info.task)


class DetectionPublisher:
    """~/detections when vision_msgs is importable; `missing` says why not otherwise."""

    def __init__(self, create_publisher) -> None:
        """create_publisher(msg_type) -> publisher (the node chooses topic and QoS)."""
        try:
            from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose
        except ImportError:
            self.missing = VISION_MSGS_MISSING
            self.publisher = None
            return
        self.missing = ''
        self._types = (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose)
        self.publisher = create_publisher(Detection2DArray)

    def publish(self, answer) -> None:
        box = detection_box(answer)
        if self.publisher is None or box is None:
            return
        bounding_box_type, detection_type, array_type, hypothesis_type = self._types
        detection = detection_type(header=answer.info.header, id=box.task)
        detection.bbox = bounding_box_type(size_x=box.size_x, size_y=box.size_y)
        detection.bbox.center.position.x = box.center_x
        detection.bbox.center.position.y = box.center_y
        hypothesis = hypothesis_type()
        hypothesis.hypothesis.class_id = box.class_id
        hypothesis.hypothesis.score = box.score
        detection.results.append(hypothesis)
        self.publisher.publish(array_type(header=answer.info.header, detections=[detection]))
