"""A camera of the node: its name, its topics and the frames received on them.

The node holds one or more cameras by name (cameras.names; none named = the one camera of topics.*, called
'default'). A goal names the camera it is about; everything after frame selection is camera-agnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from robobrain_ros.node.frame_cache import FrameCache

DEFAULT_CAMERA = 'default'
# A camera name becomes a topic namespace (~/<name>/markers) and a parameter prefix (cameras.<name>.image).
_NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')


@dataclass(frozen=True)
class CameraTopics:
    """Topic names of one camera ('' = not subscribed)."""

    image: str
    compressed_image: str
    camera_info: str
    depth: str

    @property
    def colour(self) -> str:
        """The topic a colour frame is expected on, for messages (raw first)."""
        return self.image or self.compressed_image


@dataclass
class Camera:
    name: str
    topics: CameraTopics
    frames: FrameCache = field(default_factory=FrameCache)
    colour_topic: str = ''         # fully resolved colour topic name (for messages a person reads)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_CAMERA

    def output_topic(self, name: str) -> str:
        """The camera's own output topic: ~/<name> for the topics.* camera (as with one camera), else
        ~/<camera>/<name>, so each camera's view shows its own latest answer."""
        return f'~/{name}' if self.is_default else f'~/{self.name}/{name}'


def camera_name_problem(names: list[str]) -> str:
    """'' when names are usable camera names (unique, a letter then letters, digits or _), else what is wrong."""
    for name in names:
        if not _NAME_RE.match(name):
            return (f"cameras.names has '{name}': a camera name starts with a letter and holds only letters, "
                    'digits and _ (it becomes a topic namespace and a parameter prefix)')
        if name == DEFAULT_CAMERA:
            return f"cameras.names has '{DEFAULT_CAMERA}', the name of the topics.* camera: choose another name"
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        return f"cameras.names lists {', '.join(duplicates)} more than once"
    return ''
