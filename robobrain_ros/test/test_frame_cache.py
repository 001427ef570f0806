"""The frame cache: the newest frame per topic, waiting for a fresh one, depth matched by stamp."""

import struct
import threading
import types

import pytest

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


# ---------------------------------------------------------------- frames kept serialized (raw subscriptions)
def serialized_image(sec: int = 1700000000, nanosec: int = 250000000, frame_id: str = 'head_camera',
                     width: int = 6, height: int = 4) -> bytes:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3, data=bytes(range(width * height * 3)))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return serialize_message(msg)


def test_stamp_and_frame_id_are_read_from_the_serialized_bytes():
    from robobrain_ros.node.frame_cache import read_cdr_header
    for frame_id in ('head_camera', '', 'x', 'kamera_ü'):   # lengths around the 4-byte alignment, UTF-8
        stamp, read_id = read_cdr_header(serialized_image(frame_id=frame_id))
        assert stamp == pytest.approx(1700000000.25) and read_id == frame_id


def test_big_endian_cdr_header():
    from robobrain_ros.node.frame_cache import read_cdr_header
    body = struct.pack('>iII', 12, 500000000, 4) + b'cam\x00' + b'\x00' * 32
    assert read_cdr_header(b'\x00\x00\x00\x00' + body) == (pytest.approx(12.5), 'cam')


@pytest.mark.parametrize('data, words', [
    (b'\x00\x07\x00\x00' + b'\x00' * 40, 'not plain CDR'),
    (b'\x00\x01\x00\x00' + b'\x00' * 8, 'too short'),
    (b'\x00\x01\x00\x00' + struct.pack('<iII', 1, 0, 1000) + b'\x00' * 8, 'runs past'),
])
def test_unreadable_headers_say_why(data, words):
    from robobrain_ros.node.frame_cache import HeaderUnreadable, read_cdr_header
    with pytest.raises(HeaderUnreadable, match=words):
        read_cdr_header(data)


def test_serialized_frame_is_deserialised_once_when_a_query_takes_it(monkeypatch):
    import rclpy.serialization
    from sensor_msgs.msg import Image
    calls = []
    real = rclpy.serialization.deserialize_message
    monkeypatch.setattr(rclpy.serialization, 'deserialize_message',
                        lambda data, kind: calls.append(kind) or real(data, kind))
    frame = CachedFrame.from_serialized(serialized_image(), Image, compressed=False, topic='/image', received=5.0)
    assert (frame.stamp, frame.frame_id, frame.topic, frame.compressed) == (pytest.approx(1700000000.25),
                                                                          'head_camera', '/image', False)
    assert calls == []     # receiving a frame builds no message
    cache = FrameCache()
    cache.put_colour(frame)
    taken = cache.latest_colour()
    threads = [threading.Thread(target=lambda: taken.msg) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [Image]    # four concurrent users, one deserialisation
    assert taken.msg.header.frame_id == 'head_camera' and bytes(taken.msg.data) == bytes(range(72))


def test_zero_stamp_means_the_receipt_time():
    from sensor_msgs.msg import Image
    frame = CachedFrame.from_serialized(serialized_image(sec=0, nanosec=0), Image, compressed=False,
                                        topic='/image', received=42.0)
    assert frame.stamp == 42.0 and frame.received == 42.0


def test_other_encodings_are_deserialised_at_once(monkeypatch):
    # XCDR2 bytes (another middleware) are not parsed by offset: the message is deserialised instead.
    import rclpy.serialization
    from sensor_msgs.msg import Image
    sent = Image(encoding='rgb8')
    sent.header.stamp.sec, sent.header.frame_id = 7, 'xcdr2_camera'
    monkeypatch.setattr(rclpy.serialization, 'deserialize_message', lambda data, kind: sent)
    xcdr2 = b'\x00\x07\x00\x00' + serialized_image()[4:]
    frame = CachedFrame.from_serialized(xcdr2, Image, compressed=False, topic='/image', received=1.0)
    assert (frame.stamp, frame.frame_id) == (7.0, 'xcdr2_camera') and frame.msg is sent
    with pytest.raises(ValueError, match='a message, or serialized bytes'):
        CachedFrame(compressed=False, topic='/image', stamp=1.0, received=1.0)


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
