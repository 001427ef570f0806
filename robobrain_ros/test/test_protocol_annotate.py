"""draw_annotations, checked by reading pixel colours where marks must be."""

import numpy as np
import pytest

from robobrain_ros.protocol import Answer, AnswerBox, AnswerPoint, Task, draw_annotations
from robobrain_ros.protocol.annotate import (
    BOX_COLOUR,
    POINT_COLOUR,
    TITLE_BAND_COLOUR,
    TRAJECTORY_LINE_COLOUR,
    TRAJECTORY_POINT_COLOUR,
    mark_radius,
    title_band_height,
)

WIDTH, HEIGHT = 320, 240
GREY = (128, 128, 128)


@pytest.fixture
def image():
    return np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)


def _colour(image, x, y):
    return tuple(int(c) for c in image[y, x])


def test_points_are_filled_and_clipped_points_hollow(image):
    answer = Answer(Task.POINTING, raw='', points=[AnswerPoint(100.5, 150.5), AnswerPoint(320.0, 120.0, clipped=True)])
    out = draw_annotations(image, answer, 'pointing: the mug')
    radius = mark_radius((WIDTH, HEIGHT))
    assert _colour(out, 100, 150) == POINT_COLOUR
    assert _colour(out, 100 - radius + 1, 150) == POINT_COLOUR  # filled to the rim
    assert _colour(out, 319, 120) == GREY  # hollow centre (on the last column)
    assert _colour(out, 319 - radius, 120) == POINT_COLOUR  # ring
    assert _colour(out, 200, 200) == GREY  # nothing drawn elsewhere


def test_point_numbers_are_drawn_beside_the_points(image):
    answer = Answer(Task.POINTING, raw='', points=[AnswerPoint(100.0, 150.0)])
    out = draw_annotations(image, answer, 't')
    radius = mark_radius((WIDTH, HEIGHT))
    label = out[150 - radius - 14:150 - radius - 1, 100 + radius + 2:100 + radius + 14]
    assert (label.max(axis=2) > 200).any() and (label.max(axis=2) < 60).any()  # white text, black outline


def test_box_is_a_rectangle(image):
    answer = Answer(Task.GROUNDING, raw='', box=AnswerBox(40.0, 60.0, 200.0, 180.0))
    out = draw_annotations(image, answer, 'grounding: the cup')
    for x, y in [(40, 120), (200, 120), (120, 60), (120, 180)]:
        assert _colour(out, x, y) == BOX_COLOUR
    assert _colour(out, 120, 120) == GREY  # not filled


def test_trajectory_is_a_polyline_with_numbered_points(image):
    answer = Answer(Task.TRAJECTORY, raw='',
                    points=[AnswerPoint(50.0, 100.0), AnswerPoint(150.0, 200.0), AnswerPoint(250.0, 100.0)])
    out = draw_annotations(image, answer, 'trajectory: reach')
    for x, y in [(50, 100), (150, 200), (250, 100)]:
        assert _colour(out, x, y) == TRAJECTORY_POINT_COLOUR
    assert _colour(out, 100, 150) == TRAJECTORY_LINE_COLOUR  # first segment
    assert _colour(out, 200, 150) == TRAJECTORY_LINE_COLOUR  # last segment (the arrow)
    assert len({POINT_COLOUR, BOX_COLOUR, TRAJECTORY_LINE_COLOUR, TRAJECTORY_POINT_COLOUR}) == 4


def test_title_band_covers_the_top_and_holds_text(image):
    out = draw_annotations(image, Answer(Task.GENERAL, raw=''), 'general: what is on the table? ünïcode')
    band = title_band_height((WIDTH, HEIGHT))
    assert _colour(out, WIDTH - 1, 0) == TITLE_BAND_COLOUR
    assert _colour(out, WIDTH - 1, band - 1) == TITLE_BAND_COLOUR
    assert _colour(out, WIDTH - 1, band) == GREY
    assert (out[:band, : WIDTH // 2].max(axis=2) > 200).any()  # text is drawn


def test_long_title_is_truncated_to_fit(image):
    out = draw_annotations(image, Answer(Task.GENERAL, raw=''), 'x' * 500)
    band = title_band_height((WIDTH, HEIGHT))
    assert (out[:band, -3:] == TITLE_BAND_COLOUR).all()


def test_marks_are_drawn_over_the_title_band(image):
    answer = Answer(Task.POINTING, raw='', points=[AnswerPoint(300.0, 2.0)])
    out = draw_annotations(image, answer, 'a')
    assert _colour(out, 300, 2) == POINT_COLOUR


def test_input_is_untouched_and_output_deterministic(image):
    before = image.copy()
    answer = Answer(Task.POINTING, raw='', points=[AnswerPoint(10.0, 20.0)], box=AnswerBox(1, 2, 30, 40))
    first = draw_annotations(image, answer, 'title')
    second = draw_annotations(image, answer, 'title')
    assert np.array_equal(image, before)
    assert first is not image and first.shape == image.shape and first.dtype == np.uint8
    assert np.array_equal(first, second)


@pytest.mark.parametrize('bad', [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((0, 10, 3), np.uint8)])
def test_rejects_non_rgb_input(bad):
    with pytest.raises(ValueError):
        draw_annotations(bad, Answer(Task.GENERAL, raw=''), 't')


def test_a_long_title_is_shortened_with_a_logarithmic_number_of_measurements(monkeypatch):
    import cv2

    from robobrain_ros.protocol import annotate as annotate_module
    calls = []
    real = cv2.getTextSize

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(annotate_module.cv2, 'getTextSize', counting)
    rgb = np.zeros((240, 320, 3), np.uint8)
    annotate_module.draw_annotations(rgb, Answer(task=Task.GENERAL, raw='x', answer='x'), 'pick ' * 4000)
    # Shortening one character at a time measured the text about 5000 times for this 20000-character title.
    assert len(calls) < 40, len(calls)


def test_the_shortened_title_is_the_longest_prefix_that_fits():
    import cv2

    from robobrain_ros.protocol.annotate import _FONT, _fit_text
    text, scale, width = 'point at the red handle of the mug on the left', 0.5, 150

    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, _FONT, scale, 1)[0][0] <= width

    fitted = _fit_text(text, scale, width)
    assert fitted.endswith('...') and fits(fitted)
    prefix = fitted[:-3]
    assert text.startswith(prefix) and not fits(text[:len(prefix) + 1] + '...')
    assert _fit_text('short', scale, width) == 'short'
