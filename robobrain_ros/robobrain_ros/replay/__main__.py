"""python -m robobrain_ros.replay: the same as brain_replay."""

import sys

from robobrain_ros.replay.cli import main

sys.exit(main())
