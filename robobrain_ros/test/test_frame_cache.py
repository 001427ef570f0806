"""The frame cache: the newest frame per topic, waiting for a fresh one, depth matched by stamp."""

import threading
import types

from robobrain_ros.node.frame_cache import CachedFrame, FrameCache


def frame(stamp: float, topic: str = '/image', compressed: bool = False) -> CachedFrame:
    return CachedFrame(msg=stamp, compressed=compressed, topic=topic, stamp=stamp, received=stamp)


def test_newest_frame_over_topics_and_replacement_within_a_topic():
    cache = FrameCache()
    cache.put_colour(frame(10.0, '/image'))
    cache.put_colour(frame(12.0, '/image/compressed', True))
    assert cache.latest_colour().topic == '/image/compressed'
    cache.put_colour(frame(13.0, '/image'))
    assert cache.latest_colour().stamp == 13.0
    # A restarted driver (older stamps) replaces its own topic's frame: it is not ignored forever.
    cache.put_colour(frame(1.0, '/image'))
    cache.put_colour(frame(2.0, '/image/compressed', True))
    assert cache.latest_colour().stamp == 2.0
    assert cache.diagnostic_values()['frames received'] == '5'


def test_wait_returns_a_fresh_frame_at_once():
    cache = FrameCache()
    cache.put_colour(frame(99.5))
    fresh, newest = cache.wait_for_colour(max_age=1.0, timeout=5.0, now=lambda: 100.0)
    assert fresh is newest and fresh.stamp == 99.5


def in_thread(function, *args, **kwargs) -> tuple[threading.Thread, list]:
    """Run function in a thread of its own; the list gets its return value."""
    returned: list = []
    thread = threading.Thread(target=lambda: returned.append(function(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, returned


def test_wait_for_a_frame_that_arrives_later():
    cache = FrameCache()
    cache.put_colour(frame(90.0))   # too old
    looked = threading.Event()

    def now() -> float:             # the waiter asks the time each time it looks at the newest frame
        looked.set()
        return 100.0
    waiter, returned = in_thread(cache.wait_for_colour, max_age=1.0, timeout=60.0, now=now)
    assert looked.wait(30.0)        # the waiter found only the stale frame and waits: now the fresh one comes
    cache.put_colour(frame(100.0))
    waiter.join(30.0)
    [(fresh, newest)] = returned
    assert fresh is newest and fresh.stamp == 100.0


def test_wait_gives_up_with_the_newest_stale_frame():
    cache = FrameCache()
    cache.put_colour(frame(90.0))
    fresh, newest = cache.wait_for_colour(max_age=1.0, timeout=0.2, now=lambda: 100.0)
    assert fresh is None and newest.stamp == 90.0
    assert FrameCache().wait_for_colour(1.0, 0.05, now=lambda: 0.0) == (None, None)


def test_wait_notices_a_cancel():
    # No frame ever comes and the timeout is an hour: only the cancel can end the wait.
    cache = FrameCache()
    cancel = threading.Event()
    waiter, returned = in_thread(cache.wait_for_colour, max_age=1.0, timeout=3600.0, now=lambda: 0.0,
                                 cancelled=cancel.is_set)
    cancel.set()
    waiter.join(30.0)
    assert returned == [(None, None)], 'the wait did not end on the cancel'


def test_depth_nearest_in_time_within_tolerance():
    cache = FrameCache()
    for stamp in (1.0, 1.1, 1.2):
        cache.put_depth(frame(stamp, '/depth'))
    assert cache.depth_near(1.12, tolerance=0.05).stamp == 1.1
    assert cache.depth_near(1.5, tolerance=0.05) is None


def test_depth_that_arrives_after_the_colour_frame_is_waited_for():
    cache = FrameCache()
    waiting = threading.Event()

    class Condition(threading.Condition):   # the cache's lock, telling when a caller waits on it
        def wait(self, timeout=None):
            waiting.set()
            return super().wait(timeout)
    cache._lock = Condition()
    cache.put_depth(frame(0.9, '/depth'))
    # The matching depth frame comes while the query waits for it (a long wait: the frame, not the time, ends it).
    waiter, returned = in_thread(cache.depth_near, 1.0, tolerance=0.01, wait=60.0)
    assert waiting.wait(30.0)
    cache.put_depth(frame(1.0, '/depth'))
    waiter.join(30.0)
    assert [f.stamp for f in returned] == [1.0]
    # A depth frame newer than the window already arrived: nothing older will come, so no waiting (an hour's
    # wait that returns is one that did not wait).
    waiter, returned = in_thread(cache.depth_near, 0.5, tolerance=0.01, wait=3600.0)
    waiter.join(30.0)
    assert returned == [None], 'depth_near waited for a frame that cannot come'


def test_diagnostics_report_count_and_largest_gap(monkeypatch):
    from robobrain_ros.node import frame_cache
    clock = [1000.0]    # the cache's arrival clock, moved by the test
    monkeypatch.setattr(frame_cache, 'time', types.SimpleNamespace(monotonic=lambda: clock[0]))
    cache = FrameCache()
    assert cache.diagnostic_values() == {'frames received': '0', 'largest frame gap [s]': '0.000'}
    cache.put_colour(frame(1.0))
    clock[0] += 0.3
    cache.put_colour(frame(2.0))
    clock[0] += 0.1
    cache.put_colour(frame(3.0))
    assert cache.diagnostic_values() == {'frames received': '3', 'largest frame gap [s]': '0.300'}
