"""Where the node's transforms come from: one small interface, so the pipeline never imports tf2.

On a robot the lookup is tf2 (node/tf2_transforms.py). tf2 has no PyPI wheels, so the CI tests drive the frame
logic through a stand-in that implements the same interface.
"""

from __future__ import annotations

from typing import Protocol

from robobrain_ros.protocol import RigidTransform


class TransformUnavailable(Exception):
    """No transform between the two frames at that stamp within the timeout; the message says why (tf2's text)."""


class TransformLookup(Protocol):
    def lookup(self, target_frame: str, source_frame: str, stamp: float, timeout: float) -> RigidTransform:
        """The transform taking points of source_frame into target_frame at stamp [s] (node clock), waiting up to
        timeout [s] for it to become known. Raises TransformUnavailable."""

    def close(self) -> None:
        """Stop listening (the node is cleaned up)."""
