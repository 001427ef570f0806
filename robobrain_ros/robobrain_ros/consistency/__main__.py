"""python -m robobrain_ros.consistency"""

import sys

from .cli import main

sys.exit(main())
