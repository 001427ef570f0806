"""smart_resize (Qwen2.5-VL's rule), ImageBudget and prepare_image."""

import base64
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robobrain_ros.protocol import (
    ImageBudget,
    ModelFamily,
    Task,
    model_input_size,
    parse_completion,
    prepare_image,
    smart_resize,
)

# (height, width, min_pixels, max_pixels) -> (height, width), computed with transformers 5.19's
# Qwen2-VL smart_resize (the function vLLM's processor calls).
QWEN_REFERENCE = [
    ((720, 1280, 3136, 1003520), (728, 1288)),
    ((720, 1280, 3136, 12845056), (728, 1288)),
    ((2160, 3840, 3136, 1003520), (728, 1316)),
    ((10, 10, 3136, 1003520), (56, 56)),
    ((426, 640, 3136, 1003520), (420, 644)),
    ((240, 424, 3136, 1003520), (252, 420)),
    ((480, 640, 3136, 1003520), (476, 644)),
    ((1220, 732, 3136, 12845056), (1232, 728)),
    ((100, 19000, 3136, 1003520), (56, 13804)),
    ((1080, 1920, 3136, 200704), (336, 588)),
    ((14, 14, 3136, 1003520), (56, 56)),
    ((70, 70, 3136, 1003520), (56, 56)),
    ((1000, 1000, 3136, 250000), (476, 476)),
]


@pytest.mark.parametrize(('args', 'expected'), QWEN_REFERENCE)
def test_smart_resize_matches_qwen(args, expected):
    height, width, min_pixels, max_pixels = args
    assert smart_resize(height, width, min_pixels, max_pixels) == expected


def test_smart_resize_rejects_extreme_aspect_ratio():
    with pytest.raises(ValueError, match='aspect ratio'):
        smart_resize(10, 2010, 3136, 1003520)
    assert smart_resize(10, 2000, 3136, 1003520)  # exactly 200 is allowed, as in Qwen


def test_smart_resize_rejects_empty_sides():
    with pytest.raises(ValueError, match='positive'):
        smart_resize(0, 100, 3136, 1003520)


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 5000),
    width=st.integers(1, 5000),
    max_patches=st.integers(64, 16384),  # below this, min and max budgets collide
)
def test_smart_resize_properties(height, width, max_patches):
    budget = ImageBudget(max_pixels=max_patches * 28 * 28)
    if max(height, width) / min(height, width) > 200:
        with pytest.raises(ValueError):
            smart_resize(height, width, budget.min_pixels, budget.max_pixels)
        return
    h, w = smart_resize(height, width, budget.min_pixels, budget.max_pixels)
    assert h % 28 == 0 and w % 28 == 0
    assert h >= 28 and w >= 28
    assert h * w >= budget.min_pixels
    if h * w <= budget.max_pixels:
        # Idempotent: an image sent at this size is left unchanged by the server's processor.
        assert smart_resize(h, w, budget.min_pixels, budget.max_pixels) == (h, w)
    else:
        # Only very elongated images overflow (a side floored to the 28 minimum), as in Qwen.
        assert h == 28 or w == 28


def test_prepare_image_rejects_a_budget_without_a_stable_size():
    with pytest.raises(ValueError, match='no stable size'):
        prepare_image(np.zeros((1, 5, 3), np.uint8), ImageBudget(max_pixels=3136, min_pixels=3136))


def test_image_budget_validation():
    with pytest.raises(ValueError, match='min_pixels'):
        ImageBudget(max_pixels=5000, min_pixels=6000)
    with pytest.raises(ValueError, match='factor'):
        ImageBudget(factor=0)
    with pytest.raises(ValueError, match='max_pixels'):
        ImageBudget(max_pixels=100)


def _decode(data_url: str) -> np.ndarray:
    prefix = 'data:image/jpeg;base64,'
    assert data_url.startswith(prefix)
    buffer = np.frombuffer(base64.b64decode(data_url[len(prefix):]), np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    assert bgr is not None
    return bgr[:, :, ::-1]


def test_prepare_image_sends_exactly_the_processor_size_as_rgb_jpeg():
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[:, :, 0] = 200  # pure-ish red: a channel swap would show as blue
    prepared = prepare_image(rgb, ImageBudget())
    assert prepared.original_size == (1280, 720)
    assert prepared.sent_size == (1288, 728)
    decoded = _decode(prepared.data_url)
    assert decoded.shape == (728, 1288, 3)
    mean = decoded.reshape(-1, 3).mean(axis=0)
    assert abs(mean[0] - 200) < 3 and mean[1] < 3 and mean[2] < 3
    assert prepared.resize_ms >= 0 and prepared.encode_ms > 0


def test_prepare_image_downsizes_to_the_budget():
    rgb = np.full((2160, 3840, 3), 128, np.uint8)
    prepared = prepare_image(rgb, ImageBudget(max_pixels=200704))
    assert prepared.sent_size == model_input_size((3840, 2160), ImageBudget(max_pixels=200704))
    assert prepared.sent_size[0] * prepared.sent_size[1] <= 200704
    assert _decode(prepared.data_url).shape[:2] == (prepared.sent_size[1], prepared.sent_size[0])


@pytest.mark.parametrize(
    ('image', 'message'),
    [
        (np.zeros((0, 10, 3), np.uint8), 'empty'),
        (np.zeros((10, 10), np.uint8), 'HxWx3'),
        (np.zeros((10, 10, 4), np.uint8), 'HxWx3'),
        (np.zeros((10, 10, 3), np.float32), 'uint8'),
        (np.zeros((1, 500, 3), np.uint8), 'aspect ratio'),
        ([[1, 2, 3]], 'numpy'),
    ],
)
def test_prepare_image_rejects_degenerate_input(image, message):
    with pytest.raises(ValueError, match=message):
        prepare_image(image, ImageBudget())


def _dot_image(size, centre, radius=6):
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    cv2.circle(rgb, (round(centre[0]), round(centre[1])), radius, (255, 255, 255), cv2.FILLED)
    return rgb


def _centroid(gray: np.ndarray) -> tuple[float, float]:
    """Intensity centroid in continuous pixel coordinates (pixel i covers [i, i + 1))."""
    weights = gray.astype(np.float64)
    ys, xs = np.indices(gray.shape) + 0.5
    return float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())


@pytest.mark.parametrize(
    ('size', 'centre', 'max_pixels'),
    [
        ((1280, 720), (900.0, 200.0), 200704),
        ((1920, 1080), (100.0, 1000.0), 401408),
        ((640, 480), (320.0, 240.0), 1003520),  # slightly enlarged to 644x476
        ((3840, 2160), (2000.0, 1500.0), 1003520),
    ],
)
def test_downsized_round_trip_maps_back_within_one_pixel(size, centre, max_pixels):
    """Send at a budget, answer in sent pixels (as the model does), map back: within 1 px."""
    rgb = _dot_image(size, centre, radius=max(6, size[0] // 100))
    prepared = prepare_image(rgb, ImageBudget(max_pixels=max_pixels))
    sent = _decode(prepared.data_url)
    x_sent, y_sent = _centroid(sent[:, :, 0])
    completion = f'[({x_sent:.3f}, {y_sent:.3f})]</answer>'
    answer = parse_completion(Task.POINTING, completion, False, prepared.sent_size, prepared.original_size,
                              ModelFamily.ROBOBRAIN_2_0)
    assert answer.ok, answer.error
    x_true, y_true = _centroid(rgb[:, :, 0])
    (point,) = answer.points
    assert math.hypot(point.x - x_true, point.y - y_true) <= 1.0
