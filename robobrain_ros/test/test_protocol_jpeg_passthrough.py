"""A camera's JPEG goes to the server unchanged exactly when the node's own preparation would only round its size."""

from __future__ import annotations

import base64
import struct

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robobrain_ros.protocol import ImageBudget, model_input_size, pass_jpeg_through, prepare_image
from robobrain_ros.protocol.jpeg_header import read_jpeg_header

DEFAULT = ImageBudget()


def jpeg(width: int, height: int, *flags: int, grey: bool = False) -> bytes:
    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    if grey:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    ok, encoded = cv2.imencode('.jpg', pixels, list(flags))
    assert ok
    return encoded.tobytes()


def with_exif(data: bytes) -> bytes:
    """data with an Exif APP1 segment (orientation 6: rotate 90 degrees) after its SOI marker."""
    tiff = b'MM\x00\x2a\x00\x00\x00\x08' + b'\x00\x01' + b'\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00' + \
        b'\x00\x00\x00\x00'
    payload = b'Exif\x00\x00' + tiff
    return data[:2] + b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload + data[2:]


def sent_bytes(data_url: str) -> bytes:
    prefix = 'data:image/jpeg;base64,'
    assert data_url.startswith(prefix)
    return base64.b64decode(data_url[len(prefix):])


@pytest.mark.parametrize('size', [(1280, 720), (640, 480), (320, 240), (1288, 728), (1024, 768)])
def test_a_jpeg_the_budget_only_rounds_is_sent_unchanged(size):
    data = jpeg(*size)
    prepared = pass_jpeg_through(data, DEFAULT)
    assert prepared is not None and prepared.passed_through
    assert sent_bytes(prepared.data_url) == data
    assert prepared.original_size == size
    # The size the model sees is the node's own: the server's processor rounds the sides the same way.
    assert prepared.sent_size == model_input_size(size, DEFAULT)
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert prepared.sent_size == prepare_image(decoded, DEFAULT).sent_size


@pytest.mark.parametrize('size, budget', [
    ((1920, 1080), DEFAULT),                          # shrunk to the budget
    ((3840, 2160), DEFAULT),
    ((1280, 720), ImageBudget(max_pixels=500_000)),   # a smaller budget (or a server limit) shrinks it
    ((40, 30), DEFAULT),                              # enlarged to min_pixels
])
def test_a_jpeg_the_budget_resizes_is_prepared_by_the_node(size, budget):
    assert pass_jpeg_through(jpeg(*size), budget) is None


def test_the_full_frame_budget_passes_a_1080p_jpeg():
    assert pass_jpeg_through(jpeg(1920, 1080), ImageBudget(max_pixels=12845056)).sent_size == (1932, 1092)


def test_progressive_and_grey_jpegs_pass_and_exif_ones_do_not():
    assert pass_jpeg_through(jpeg(640, 480, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), DEFAULT) is not None
    assert pass_jpeg_through(jpeg(640, 480, grey=True), DEFAULT) is not None
    # An Exif orientation is applied by some decoders (OpenCV) and not by others (PIL, unless asked): decode it here.
    exif = with_exif(jpeg(640, 480))
    assert read_jpeg_header(exif).exif and read_jpeg_header(exif).width == 640
    assert pass_jpeg_through(exif, DEFAULT) is None


def test_uncommon_codings_and_non_jpegs_are_prepared_by_the_node():
    data = bytearray(jpeg(640, 480))
    sof = data.index(b'\xff\xc0')
    arithmetic = bytes(data[:sof + 1]) + b'\xc9' + bytes(data[sof + 2:])     # SOF9: arithmetic coding
    assert read_jpeg_header(arithmetic).common_coding is False
    assert pass_jpeg_through(arithmetic, DEFAULT) is None
    twelve_bit = bytes(data[:sof + 4]) + b'\x0c' + bytes(data[sof + 5:])
    assert read_jpeg_header(twelve_bit).precision == 12
    assert pass_jpeg_through(twelve_bit, DEFAULT) is None
    png = cv2.imencode('.png', np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    for data in (png, b'', b'\xff\xd8\xff', b'not an image'):
        assert pass_jpeg_through(data, DEFAULT) is None


@settings(max_examples=200, deadline=None)
@given(width=st.integers(8, 4000), height=st.integers(8, 3000),
       max_pixels=st.sampled_from([200_704, 1003520, 12845056]))
def test_pass_through_only_when_the_node_would_send_the_same_size(width, height, max_pixels):
    if max(width, height) / min(width, height) > 200:
        return
    budget = ImageBudget(max_pixels=max_pixels)
    header = jpeg(16, 16)
    # A header claiming width x height: only the size matters before decoding.
    sof = header.index(b'\xff\xc0')
    claimed = header[:sof + 5] + struct.pack('>HH', height, width) + header[sof + 9:]
    prepared = pass_jpeg_through(claimed, budget)
    sent = model_input_size((width, height), budget)
    rounded = (round(width / 28) * 28, round(height / 28) * 28)
    assert (prepared is not None) == (sent == rounded)
    if prepared is not None:
        assert prepared.sent_size == sent and model_input_size(sent, budget) == sent
