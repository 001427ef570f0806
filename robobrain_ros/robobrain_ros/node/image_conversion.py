"""sensor_msgs images <-> numpy arrays, with the checks a robot's camera drivers make necessary.

Why not cv_bridge: on a ROS 2 install it is fine, but the PyPI port used with the ROS wheels ignores
`step` (padded rows come out sheared), calls numpy's removed `tostring()` and maps 16UC1 to 8-bit types,
which corrupts depth. The conversions needed here are few and are done directly on the message buffer
(no copy for the common encodings), honouring step and endianness, with an error that says what is wrong.
The functions read message fields only, so any object with the same fields works (tests use plain ones).
Compressed images are decoded only after their header says how large they are: a few hundred bytes of a
crafted PNG can claim a size whose decoding would allocate gigabytes.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from robobrain_ros.protocol.jpeg_header import read_jpeg_header

# encoding -> (channels, numpy dtype, cv2 conversion to RGB or None)
_COLOUR_ENCODINGS: dict[str, tuple[int, str, int | None]] = {
    'rgb8': (3, 'u1', None),
    'bgr8': (3, 'u1', cv2.COLOR_BGR2RGB),
    'rgba8': (4, 'u1', cv2.COLOR_RGBA2RGB),
    'bgra8': (4, 'u1', cv2.COLOR_BGRA2RGB),
    'mono8': (1, 'u1', cv2.COLOR_GRAY2RGB),
    '8uc1': (1, 'u1', cv2.COLOR_GRAY2RGB),
    '8uc3': (3, 'u1', cv2.COLOR_BGR2RGB),   # OpenCV's convention for untyped 3-channel images
}

# encoding -> (numpy dtype, metres per unit)
_DEPTH_ENCODINGS: dict[str, tuple[str, float]] = {
    '16uc1': ('u2', 0.001),    # REP 118: millimetres
    'mono16': ('u2', 0.001),
    '32fc1': ('f4', 1.0),      # REP 118: metres
}

SUPPORTED_COLOUR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
SUPPORTED_DEPTH_ENCODINGS = ('16UC1', '32FC1')

# The largest compressed image decoded, in pixels (8192x8192: 201 MB as RGB). Cameras stay far below it (4K is
# 8.3 Mpx); OpenCV's own limit (2^30 px) would let one message allocate 3 GB.
MAX_COMPRESSED_PIXELS = 8192 * 8192

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class ImageConversionError(ValueError):
    """An image message that cannot be turned into pixels; the message says why."""


def _pixel_view(msg, channels: int, dtype: str) -> np.ndarray:
    """An (H, W[, C]) array of msg.data honouring step (row padding) and is_bigendian; no copy when unpadded."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image: {width}x{height} pixels')
    item = np.dtype(dtype).itemsize
    row_bytes = width * channels * item
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than a row of {width} pixels x {channels} channel(s) x {item} byte(s) '
            f'= {row_bytes}')
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if raw.size < step * height:
        raise ImageConversionError(
            f'data holds {raw.size} bytes, a {width}x{height} image with step {step} needs {step * height}')
    rows = raw[:step * height].reshape(height, step)[:, :row_bytes]
    wire = np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(wire) if item > 1 else rows
    pixels = pixels.reshape((height, width, channels) if channels > 1 else (height, width))
    if item > 1 and not wire.isnative:
        pixels = pixels.astype(wire.newbyteorder('='))
    return pixels


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> contiguous HxWx3 uint8 RGB."""
    encoding = str(msg.encoding).lower()
    if encoding not in _COLOUR_ENCODINGS:
        raise ImageConversionError(
            f"unsupported colour encoding '{msg.encoding}': use one of {', '.join(SUPPORTED_COLOUR_ENCODINGS)}")
    channels, dtype, conversion = _COLOUR_ENCODINGS[encoding]
    view = _pixel_view(msg, channels, dtype)
    if conversion is None:
        return np.ascontiguousarray(view)
    return cv2.cvtColor(np.ascontiguousarray(view), conversion)


def compressed_image_size(data) -> tuple[int, int] | None:
    """(width, height) read from a PNG's or JPEG's header (bytes-like) without decoding it; None when neither or
    unreadable."""
    data = memoryview(data).cast('B')
    if data[:8] == _PNG_SIGNATURE:
        # The first chunk is IHDR: length (4), type (4), width (4), height (4), big-endian.
        if len(data) < 24 or data[12:16] != b'IHDR':
            return None
        width, height = struct.unpack('>II', data[16:24])
        return width, height
    header = read_jpeg_header(data)
    return (header.width, header.height) if header else None


def compressed_to_rgb(msg, max_pixels: int = MAX_COMPRESSED_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, at most max_pixels pixels) -> HxWx3 uint8 RGB."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageConversionError('empty compressed image')
    size = compressed_image_size(data)
    if size is None:
        raise ImageConversionError(
            f"could not decode the compressed image (format '{msg.format}', {data.size} bytes): not JPEG or PNG, "
            'or its header is corrupt')
    width, height = size
    if width * height > max_pixels:
        raise ImageConversionError(
            f'compressed image of {width}x{height} pixels is larger than the limit of {max_pixels} pixels: '
            'refused before decoding')
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(
            f"could not decode the compressed image (format '{msg.format}', {data.size} bytes): "
            'corrupt or not JPEG/PNG')
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def depth_to_array(msg) -> tuple[np.ndarray, float]:
    """sensor_msgs/Image depth (16UC1 mm or 32FC1 m) -> (HxW array in the message's units, metres per unit)."""
    encoding = str(msg.encoding).lower()
    if encoding not in _DEPTH_ENCODINGS:
        raise ImageConversionError(
            f"unsupported depth encoding '{msg.encoding}': use {' or '.join(SUPPORTED_DEPTH_ENCODINGS)}")
    dtype, unit = _DEPTH_ENCODINGS[encoding]
    return _pixel_view(msg, 1, dtype), unit


def rgb_to_image_msg(rgb: np.ndarray, header):
    """HxWx3 uint8 RGB -> sensor_msgs/Image rgb8 with the given header."""
    from sensor_msgs.msg import Image  # imported here so the decoding functions stay usable without ROS

    msg = Image()
    msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg
