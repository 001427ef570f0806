"""The frame cache: the newest frame per topic, waiting for a fresh one, depth matched by stamp."""

import threading
import time

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
    assert cache.colour_count == 5


def test_wait_returns_a_fresh_frame_at_once():
    cache = FrameCache()
    cache.put_colour(frame(99.5))
    fresh, newest = cache.wait_for_colour(max_age=1.0, timeout=5.0, now=lambda: 100.0)
    assert fresh is newest and fresh.stamp == 99.5


def test_wait_for_a_frame_that_arrives_later():
    cache = FrameCache()
    cache.put_colour(frame(90.0))   # too old
    threading.Timer(0.2, cache.put_colour, [frame(100.0)]).start()
    start = time.monotonic()
    fresh, _ = cache.wait_for_colour(max_age=1.0, timeout=5.0, now=lambda: 100.0)
    assert fresh is not None and fresh.stamp == 100.0 and 0.15 < time.monotonic() - start < 4.0


def test_wait_gives_up_with_the_newest_stale_frame():
    cache = FrameCache()
    cache.put_colour(frame(90.0))
    fresh, newest = cache.wait_for_colour(max_age=1.0, timeout=0.2, now=lambda: 100.0)
    assert fresh is None and newest.stamp == 90.0
    assert FrameCache().wait_for_colour(1.0, 0.05, now=lambda: 0.0) == (None, None)


def test_wait_notices_a_cancel():
    cache = FrameCache()
    start = time.monotonic()
    fresh, _ = cache.wait_for_colour(max_age=1.0, timeout=10.0, now=lambda: 0.0, cancelled=lambda: True)
    assert fresh is None and time.monotonic() - start < 1.0


def test_depth_nearest_in_time_within_tolerance():
    cache = FrameCache()
    for stamp in (1.0, 1.1, 1.2):
        cache.put_depth(frame(stamp, '/depth'))
    assert cache.depth_near(1.12, tolerance=0.05).stamp == 1.1
    assert cache.depth_near(1.5, tolerance=0.05) is None


def test_depth_that_arrives_after_the_colour_frame_is_waited_for():
    cache = FrameCache()
    cache.put_depth(frame(0.9, '/depth'))
    threading.Timer(0.1, cache.put_depth, [frame(1.0, '/depth')]).start()
    assert cache.depth_near(1.0, tolerance=0.01, wait=2.0).stamp == 1.0
    # A depth frame newer than the window already arrived: nothing older will come, so no waiting.
    start = time.monotonic()
    assert cache.depth_near(0.5, tolerance=0.01, wait=2.0) is None
    assert time.monotonic() - start < 0.5
