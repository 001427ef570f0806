"""The tf2 adapter: TransformLookup over tf2_ros.Buffer + TransformListener. Thin on purpose: CI cannot import tf2
(no wheels), so everything else about frames is pure code tested without it.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from robobrain_ros.node.transform_lookup import TransformUnavailable
from robobrain_ros.protocol import RigidTransform

TF2_MISSING = ("tf2_ros is not installed, and target frames need it: install it with your ROS 2 "
               "(apt install ros-$ROS_DISTRO-tf2-ros-py; it comes with ros-$ROS_DISTRO-ros-base)")
BUFFER_SECONDS = 10.0   # [s] of transform history: goals look transforms up at their image's stamp, in the past


def tf2_missing() -> str:
    """'' when tf2_ros can be imported, else what to install."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return TF2_MISSING
    return ''


class Tf2TransformLookup:
    """tf2's view of /tf and /tf_static, through the node's own executor (no thread of its own)."""

    def __init__(self, node: Node) -> None:
        import tf2_ros
        self._errors = (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException,
                        tf2_ros.InvalidArgumentException, tf2_ros.TransformException)
        self._buffer = tf2_ros.Buffer(cache_time=Duration(seconds=BUFFER_SECONDS), node=node)
        self._listener = tf2_ros.TransformListener(self._buffer, node, spin_thread=False)

    def lookup(self, target_frame: str, source_frame: str, stamp: float, timeout: float) -> RigidTransform:
        try:
            stamped = self._buffer.lookup_transform(target_frame, source_frame,
                                                    Time(nanoseconds=int(round(stamp * 1e9))),
                                                    timeout=Duration(nanoseconds=int(timeout * 1e9)))
        except self._errors as exc:
            raise TransformUnavailable(f'{type(exc).__name__}: {str(exc).strip()}') from None
        t, q = stamped.transform.translation, stamped.transform.rotation
        return RigidTransform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    def close(self) -> None:
        self._listener.unregister()
