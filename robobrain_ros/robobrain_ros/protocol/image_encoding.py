"""Turning a camera frame into the data-URL image the model will see unchanged."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .jpeg_header import read_jpeg_header
from .resize import ImageBudget, model_input_size

_DATA_URL_PREFIX = 'data:image/jpeg;base64,'


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send, with the sizes needed to map the answer back (width, height)."""

    data_url: str
    original_size: tuple[int, int]
    sent_size: tuple[int, int]
    resize_ms: float
    encode_ms: float
    passed_through: bool = False   # the camera's own JPEG, sent unchanged (pass_jpeg_through)


# Below this shrink factor bilinear sampling still touches every source pixel, so it does not alias
# and is 5-10x faster than INTER_AREA, whose non-integer path is slow (10 ms for 1920x1080).
_AREA_FILTER_MIN_SHRINK = 2.0


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = max(rgb.shape[1] / width, rgb.shape[0] / height)
    interpolation = cv2.INTER_AREA if shrink >= _AREA_FILTER_MIN_SHRINK else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def prepare_image(rgb: np.ndarray, budget: ImageBudget, jpeg_quality: int = 90) -> PreparedImage:
    """Resize an HxWx3 uint8 RGB frame to exactly the size the server's processor would pick, JPEG it.

    Sending the processor's own size means the server leaves the image untouched, so the
    coordinates the model answers in are pixels of the image we know (sent_size).
    """
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f'expected a numpy array, got {type(rgb).__name__}')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, got shape {rgb.shape}')
    if rgb.dtype != np.uint8:
        raise ValueError(f'expected uint8 pixels, got {rgb.dtype}')
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'the image is empty (width={width}, height={height})')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must be in 1..100, got {jpeg_quality}')
    try:
        sent_width, sent_height = model_input_size((width, height), budget)
    except ValueError as error:
        raise ValueError(f'cannot send a {width}x{height} image: {error}') from None
    if sent_width <= 0 or sent_height <= 0:
        raise ValueError(f'a {width}x{height} image rounds to an empty {sent_width}x{sent_height} model input')
    if model_input_size((sent_width, sent_height), budget) != (sent_width, sent_height):
        # Happens only with min_pixels close to max_pixels: the server would resize our image again.
        raise ValueError(
            f'the budget {budget} has no stable size for a {width}x{height} image; raise max_pixels'
        )

    start = time.perf_counter()
    resized = _resize(rgb, (sent_width, sent_height))
    resized_at = time.perf_counter()
    # OpenCV encodes BGR. A contiguous cvtColor copy encodes about twice as fast as a
    # reversed-channel view (measured in scripts/bench_protocol.py).
    bgr = cv2.cvtColor(resized, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f'JPEG encoding failed for a {sent_width}x{sent_height} image')
    data_url = _DATA_URL_PREFIX + base64.b64encode(encoded).decode('ascii')
    encoded_at = time.perf_counter()
    return PreparedImage(
        data_url=data_url,
        original_size=(width, height),
        sent_size=(sent_width, sent_height),
        resize_ms=(resized_at - start) * 1e3,
        encode_ms=(encoded_at - resized_at) * 1e3,
    )


def pass_jpeg_through(data, budget: ImageBudget) -> PreparedImage | None:
    """A camera's JPEG (bytes-like) as the image to send, unchanged, when that is what prepare_image would send
    up to its resampling; None when the frame must be decoded and prepared.

    The budget must not shrink or enlarge the frame, only round its sides to multiples of the patch size:
    the server's processor then computes the same rounding (the same smart_resize under a budget that holds at
    least the node's), so the model sees exactly sent_size pixels and the answer maps back as for a prepared
    frame, without the decode, resize and re-encode (about 8 ms for a 1280x720 frame on one core). Only plain
    8-bit grey or colour JPEGs that every decoder reads the same way go through: one with an Exif segment may
    carry an orientation that some decoders apply and others ignore.
    """
    start = time.perf_counter()
    header = read_jpeg_header(data)
    if (header is None or header.exif or header.precision != 8 or header.components not in (1, 3)
            or not header.common_coding):
        return None
    size = (header.width, header.height)
    try:
        sent = model_input_size(size, budget)
    except ValueError:
        return None
    factor = budget.factor
    if sent != (round(size[0] / factor) * factor, round(size[1] / factor) * factor):
        return None
    data_url = _DATA_URL_PREFIX + base64.b64encode(data).decode('ascii')
    return PreparedImage(data_url=data_url, original_size=size, sent_size=sent, resize_ms=0.0,
                         encode_ms=(time.perf_counter() - start) * 1e3, passed_through=True)
