"""Remove the Fast DDS shared-memory files in /dev/shm that belong to processes that are gone.

Fast DDS's shared-memory transport gives every participant (one per rclpy process) a segment
`fastdds_<16 hex digits>` (Fast DDS 2: `fastrtps_...`), with the large-frame profile 68,612 KiB of /dev/shm each,
and every port it listens on a file `fastdds_port<N>` (and a semaphore `sem.fastdds_port<N>_mutex`). Beside each
it keeps a lock file, `<name>_el` (a port several listeners share: `<name>_sl`), that the owner holds flock()ed for
as long as it lives; it takes that lock before it creates the segment. A process that ends without closing its
participant (SIGKILL, os._exit, a crash) leaves the files behind, but not the lock: the kernel drops flock locks
with the process. So a lock file that can be locked is the sign of a dead owner: Fast DDS's own `fastdds shm clean`
works by the same rule. This module does the same with no Fast DDS tool installed, with the standard library only
(scripts/test.sh runs it as a plain script), and:
- removes a segment only while holding its lock file's lock, and the lock file last: a process that creates a
  segment locks the name first, so it cannot create one that is being removed;
- leaves a name alone when any of its lock files is held, when it has no lock file at all, or when its lock file
  is younger than `min_age` seconds;
- never touches other files in /dev/shm (other programs' segments, Python's semaphores) nor Fast DDS's
  data-sharing segments (`fast_datasharing_*`: they have no lock file to tell a dead owner by).

    python robobrain_ros/robobrain_ros/harness/shm_cleanup.py [--dry-run] [--min-age SECONDS] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import sys
import time
from dataclasses import dataclass, field

SHM_DIR = '/dev/shm'
# <name>_el / <name>_sl, where name is a segment (fastdds_<16 hex>) or a port (fastdds_port<N>); Fast DDS 2: fastrtps_.
LOCK_FILE = re.compile(r'^(?P<name>(?:fastdds|fastrtps)_(?:[0-9a-f]{16}|port\d{1,5}))_(?:el|sl)$')
MIN_AGE = 1.0   # [s] a lock file younger than this is left alone (its owner may be taking the lock just now)


@dataclass
class CleanResult:
    removed: list[str] = field(default_factory=list)     # file names removed (or, dry run, that would be)
    kept: list[str] = field(default_factory=list)        # names left: a live owner holds a lock (or too young)
    freed_bytes: int = 0                                  # /dev/shm space the removed files took

    def summary(self) -> str:
        names = sorted({LOCK_FILE.match(n)['name'] for n in self.removed if LOCK_FILE.match(n)})
        return (f'{len(names)} Fast DDS segments/ports of dead processes removed from /dev/shm '
                f'({self.freed_bytes / 2**20:.0f} MiB), {len(self.kept)} of live processes kept')


def _try_lock(path: str) -> int | None:
    """An fd holding an exclusive flock on `path`, or None when a live process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clean(shm_dir: str = SHM_DIR, min_age: float = MIN_AGE, dry_run: bool = False) -> CleanResult:
    """Remove the Fast DDS segments and ports in `shm_dir` whose owners are dead (see the module docstring)."""
    result = CleanResult()
    try:
        entries = os.listdir(shm_dir)
    except OSError:
        return result
    locks: dict[str, list[str]] = {}
    for entry in entries:
        match = LOCK_FILE.match(entry)
        if match:
            locks.setdefault(match['name'], []).append(entry)
    now = time.time()
    for name, lock_files in sorted(locks.items()):
        held: list[int] = []
        try:
            for lock_file in lock_files:
                path = os.path.join(shm_dir, lock_file)
                try:
                    stat = os.lstat(path)
                except OSError:
                    break
                if now - max(stat.st_mtime, stat.st_ctime) < min_age:
                    break
                fd = _try_lock(path)
                if fd is None:
                    break
                held.append(fd)
            if len(held) != len(lock_files):
                result.kept.append(name)
                continue
            # Every lock of this name is ours now: its owner is dead. Data files first, the lock files last.
            victims = [name] + ([f'sem.{name}_mutex'] if '_port' in name else []) + sorted(lock_files)
            for victim in victims:
                path = os.path.join(shm_dir, victim)
                try:
                    size = os.lstat(path).st_blocks * 512
                    if not dry_run:
                        os.unlink(path)
                except OSError:      # gone already, or another user's file
                    continue
                result.removed.append(victim)
                result.freed_bytes += size
        finally:
            for fd in held:
                os.close(fd)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dir', default=SHM_DIR, help='shared-memory directory (default %(default)s)')
    parser.add_argument('--min-age', type=float, default=MIN_AGE,
                        help='leave lock files younger than this many seconds (default %(default)s)')
    parser.add_argument('--dry-run', action='store_true', help='only list what would be removed')
    parser.add_argument('-v', '--verbose', action='store_true', help='list the files removed')
    args = parser.parse_args(argv)
    result = clean(args.dir, args.min_age, args.dry_run)
    if args.verbose or args.dry_run:
        for name in result.removed:
            print(('would remove ' if args.dry_run else 'removed ') + os.path.join(args.dir, name))
    print(('dry run: ' if args.dry_run else '') + result.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
