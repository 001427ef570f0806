"""brain_replay's exit statuses, one per kind of outcome (docs/REPLAY.md lists them), and the error that carries one."""

from __future__ import annotations

OK = 0                 # replay: complete and every goal succeeded; --compare: the gate passed; --make-sample: written
GOALS_FAILED = 1       # replay: complete (OUT written), but a goal did not succeed; --compare: the gate failed
BAD_INPUT = 2          # command line, goals file, params file, a goal past the bag's end, OUT exists; --compare:
                       # the two outputs cannot be compared
BAD_BAG = 3            # the bag is missing, not a rosbag2, or corrupt (also when found corrupt mid-replay)
NO_CAMERA_TOPIC = 4    # the bag has no topic the node's cameras listen to (or none of them can be replayed)
SERVER_FAILED = 5      # the model server was unreachable at the start (OUT not created), or failed during the
                       # replay: goals ended SERVER_UNREACHABLE or SERVER_ERROR (OUT written, with those goals)
NODE_FAILED = 6        # the brain node did not come up, died during the replay, or --brain names no running node
INTERRUPTED = 130      # Ctrl-C

DESCRIPTIONS = {
    OK: 'complete, every goal succeeded',
    GOALS_FAILED: 'complete, some goals did not succeed',
    BAD_INPUT: 'bad input',
    BAD_BAG: 'bad bag',
    NO_CAMERA_TOPIC: 'no camera topic of the node in the bag',
    SERVER_FAILED: 'model server failed',
    NODE_FAILED: 'brain node failed',
    INTERRUPTED: 'interrupted',
}


class ReplayError(Exception):
    """A replay that cannot go on: the message says why, in words a person can act on; code is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
