"""The raw-subscription variant of the node that bench/frames.py measures: frames kept as serialized bytes, their
stamp and frame_id read from the CDR header, the message deserialised once when a query takes the frame."""

import struct
import threading

import pytest

from robobrain_ros.bench.raw_frames import HeaderUnreadable, SerializedFrame, raw_frame, read_cdr_header
from robobrain_ros.node.frame_cache import FrameCache


def serialized_image(sec: int = 1700000000, nanosec: int = 250000000, frame_id: str = 'head_camera',
                     width: int = 6, height: int = 4) -> bytes:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3, data=bytes(range(width * height * 3)))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return serialize_message(msg)


def test_stamp_and_frame_id_are_read_from_the_serialized_bytes():
    for frame_id in ('head_camera', '', 'x', 'kamera_ü'):   # lengths around the 4-byte alignment, UTF-8
        stamp, read_id = read_cdr_header(serialized_image(frame_id=frame_id))
        assert stamp == pytest.approx(1700000000.25) and read_id == frame_id


def test_big_endian_cdr_header():
    body = struct.pack('>iII', 12, 500000000, 4) + b'cam\x00' + b'\x00' * 32
    assert read_cdr_header(b'\x00\x00\x00\x00' + body) == (pytest.approx(12.5), 'cam')


@pytest.mark.parametrize('data, words', [
    (b'\x00\x07\x00\x00' + b'\x00' * 40, 'not plain CDR'),
    (b'\x00\x01\x00\x00' + b'\x00' * 8, 'too short'),
    (b'\x00\x01\x00\x00' + struct.pack('<iII', 1, 0, 1000) + b'\x00' * 8, 'runs past'),
])
def test_unreadable_headers_say_why(data, words):
    with pytest.raises(HeaderUnreadable, match=words):
        read_cdr_header(data)


def test_serialized_frame_is_deserialised_once_when_a_query_takes_it(monkeypatch):
    import rclpy.serialization
    from sensor_msgs.msg import Image
    calls = []
    real = rclpy.serialization.deserialize_message
    monkeypatch.setattr(rclpy.serialization, 'deserialize_message',
                        lambda data, kind: calls.append(kind) or real(data, kind))
    frame = raw_frame(serialized_image(), Image, compressed=False, topic='/image', received=5.0)
    assert (frame.stamp, frame.frame_id, frame.topic, frame.compressed) == (pytest.approx(1700000000.25),
                                                                          'head_camera', '/image', False)
    assert isinstance(frame, SerializedFrame) and calls == []     # receiving a frame builds no message
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
    frame = raw_frame(serialized_image(sec=0, nanosec=0), Image, compressed=False, topic='/image', received=42.0)
    assert frame.stamp == 42.0 and frame.received == 42.0


def test_other_encodings_are_deserialised_at_once(monkeypatch):
    # XCDR2 bytes (another middleware) are not parsed by offset: the message is deserialised instead.
    import rclpy.serialization
    from sensor_msgs.msg import Image
    sent = Image(encoding='rgb8')
    sent.header.stamp.sec, sent.header.frame_id = 7, 'xcdr2_camera'
    monkeypatch.setattr(rclpy.serialization, 'deserialize_message', lambda data, kind: sent)
    xcdr2 = b'\x00\x07\x00\x00' + serialized_image()[4:]
    frame = raw_frame(xcdr2, Image, compressed=False, topic='/image', received=1.0)
    assert (frame.stamp, frame.frame_id) == (7.0, 'xcdr2_camera') and frame.msg is sent
    assert not isinstance(frame, SerializedFrame)
