"""ROS image messages -> pixels: every supported encoding, padded rows, byte order, 16-bit depth, bad input."""

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from robobrain_ros.node.image_conversion import (
    MAX_COMPRESSED_PIXELS,
    ImageConversionError,
    compressed_image_size,
    compressed_to_rgb,
    depth_to_array,
    image_to_rgb,
)

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 3


def message(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False):
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1)
    wire = row.astype(row.dtype.newbyteorder('>' if big_endian else '<')).view(np.uint8)
    padded = np.zeros((height, wire.shape[1] + padding), np.uint8)
    padded[:, :wire.shape[1]] = wire
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                           step=padded.shape[1], data=padded.tobytes())


@pytest.mark.parametrize('padding', [0, 3, 16])
@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', RGB),
    ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_with_padded_rows(encoding, pixels, padding):
    rgb = image_to_rgb(message(np.ascontiguousarray(pixels), encoding, padding))
    assert rgb.dtype == np.uint8 and rgb.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(rgb, RGB)


def test_mono8_becomes_grey_rgb():
    grey = RGB[..., 0]
    rgb = image_to_rgb(message(np.ascontiguousarray(grey), 'mono8', padding=2))
    np.testing.assert_array_equal(rgb, np.dstack([grey] * 3))


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 4])
def test_16uc1_depth_keeps_all_16_bits(big_endian, padding):
    # The PyPI cv_bridge port maps 16UC1 to 8 bits: values above 255 mm would wrap. They must not.
    depth = np.array([[0, 255, 256, 1000], [4095, 40000, 65535, 1]], dtype=np.uint16)
    values, unit = depth_to_array(message(depth, '16UC1', padding, big_endian))
    assert unit == 0.001 and values.dtype.kind == 'u' and values.dtype.itemsize == 2
    np.testing.assert_array_equal(values, depth)


def test_32fc1_depth_in_metres_with_nan():
    depth = np.array([[0.5, np.nan], [np.inf, 2.25]], dtype=np.float32)
    values, unit = depth_to_array(message(depth, '32FC1', padding=8, big_endian=True))
    assert unit == 1.0
    np.testing.assert_array_equal(values, depth)


@pytest.mark.parametrize('change, words', [
    ({'width': 0}, 'empty image'),
    ({'height': 0}, 'empty image'),
    ({'step': 5}, 'step 5 is smaller'),
    ({'data': b'\x00' * 10}, 'data holds 10 bytes'),
    ({'encoding': 'yuv422'}, "unsupported colour encoding 'yuv422'"),
])
def test_bad_colour_images_say_why(change, words):
    msg = message(RGB, 'rgb8')
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=words):
        image_to_rgb(msg)


def test_wrong_depth_encoding_says_which():
    with pytest.raises(ImageConversionError, match="unsupported depth encoding 'rgb8'"):
        depth_to_array(message(RGB, 'rgb8'))


def test_compressed_jpeg_and_png():
    bgr = cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR)
    png = SimpleNamespace(format='png', data=cv2.imencode('.png', bgr)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(png), RGB)
    jpeg = SimpleNamespace(format='jpeg', data=cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes())
    assert np.abs(compressed_to_rgb(jpeg).astype(int) - RGB).max() < 12


@pytest.mark.parametrize('data', [b'', b'not an image at all', b'\xff\xd8\xff\xe0' + b'\x00' * 64])
def test_corrupt_compressed_images_say_why(data):
    with pytest.raises(ImageConversionError, match='empty compressed image|could not decode'):
        compressed_to_rgb(SimpleNamespace(format='jpeg', data=data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header (signature, IHDR with correct CRC) claiming width x height, and one tiny IDAT.

    A few hundred bytes: what an attacker (or a broken driver) can put on the camera topic.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\x00' * 64))
            + chunk(b'IEND', b''))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame segment is rewritten to claim width x height."""
    data = bytearray(cv2.imencode('.jpg', RGB)[1].tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


def test_compressed_size_is_read_from_the_header():
    bgr = cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR)
    for ext in ('.png', '.jpg'):
        assert compressed_image_size(cv2.imencode(ext, bgr)[1].tobytes()) == (5, 4)
    progressive = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert compressed_image_size(progressive) == (5, 4)
    assert compressed_image_size(png_claiming(30000, 30000)) == (30000, 30000)
    assert compressed_image_size(b'GIF89a') is None


@pytest.mark.parametrize('data', [png_claiming(30000, 30000), png_claiming(8193, 8192),
                                  jpeg_claiming(30000, 30000), jpeg_claiming(65000, 65000)])
def test_compressed_image_claiming_a_huge_size_is_refused_before_decoding(data):
    # 30000x30000 is under OpenCV's own limit (2^30 px): before this check, the 700-byte JPEG decoded to a
    # 30000x30000 image (5.3 GB peak RSS for one message).
    assert MAX_COMPRESSED_PIXELS == 8192 * 8192
    with pytest.raises(ImageConversionError, match='larger than the limit of 67108864 pixels'):
        compressed_to_rgb(SimpleNamespace(format='png', data=data))


def test_compressed_pixel_limit_given_by_the_caller():
    png = SimpleNamespace(format='png', data=cv2.imencode('.png', RGB)[1].tobytes())
    with pytest.raises(ImageConversionError, match='5x4 pixels is larger than the limit of 19 pixels'):
        compressed_to_rgb(png, max_pixels=19)
    assert compressed_to_rgb(png, max_pixels=20).shape == (4, 5, 3)
