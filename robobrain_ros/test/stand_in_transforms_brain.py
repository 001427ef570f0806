"""The brain node with a STAND-IN for tf2, for the CI tests of target frames (test_node_frames.py).

tf2 has no PyPI wheels, so CI cannot run the node's tf2 adapter (node/tf2_transforms.py; it is run by hand, see
docs/FRAMES.md). This script runs the real node (brain_node.main) and hands it, through the node's own seam
(BrainNode's transform_lookup), a lookup that serves fixed transforms from $ROBOBRAIN_STAND_IN_TRANSFORMS and
writes every lookup (target, source, stamp) as a JSON line to the file that variable names, so the tests see
which frames and which time the node asked for. A frame it does not know fails as tf2 fails: TransformUnavailable
with tf2's text.

    ROBOBRAIN_STAND_IN_TRANSFORMS='{"transforms": {"base_link<-cam": {"translation": [x, y, z],
        "rotation": [qx, qy, qz, qw]}},
        "record": "/tmp/lookups.jsonl"}' python stand_in_transforms_brain.py --ros-args ...
"""

from __future__ import annotations

import json
import os
import sys

from robobrain_ros.node import brain_node
from robobrain_ros.node.transform_lookup import TransformUnavailable
from robobrain_ros.protocol import RigidTransform

ENVIRONMENT = 'ROBOBRAIN_STAND_IN_TRANSFORMS'


class StandInTransforms:
    """Fixed transforms by 'target<-source'; records every lookup."""

    def __init__(self, transforms: dict[str, dict], record: str) -> None:
        self._transforms = {key: RigidTransform(tuple(value['translation']), tuple(value['rotation']))
                            for key, value in transforms.items()}
        self._record = record

    def lookup(self, target_frame: str, source_frame: str, stamp: float, timeout: float) -> RigidTransform:
        with open(self._record, 'a', encoding='utf-8') as record:
            record.write(json.dumps({'target': target_frame, 'source': source_frame, 'stamp': stamp,
                                     'timeout': timeout}) + '\n')
        transform = self._transforms.get(f'{target_frame}<-{source_frame}')
        if transform is None:
            raise TransformUnavailable(f'LookupException (stand-in): "{target_frame}" passed to lookupTransform '
                                       'argument target_frame does not exist.')
        return transform

    def close(self) -> None:
        pass


def main() -> None:
    config = json.loads(os.environ[ENVIRONMENT])
    brain_node.main(sys.argv, transform_lookup=lambda node: StandInTransforms(config['transforms'], config['record']))


if __name__ == '__main__':
    main()
