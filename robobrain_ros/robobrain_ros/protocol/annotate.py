"""Drawing an Answer onto its image for humans (RViz image display, debugging, demos)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .answer import Answer, AnswerPoint
from .tasks import Task

# RGB, saturated and distinct from one another so each kind of mark is recognisable (and testable).
POINT_COLOUR = (255, 0, 0)
BOX_COLOUR = (0, 255, 0)
TRAJECTORY_LINE_COLOUR = (0, 255, 255)
TRAJECTORY_POINT_COLOUR = (255, 0, 255)
TITLE_BAND_COLOUR = (24, 24, 24)
TEXT_COLOUR = (255, 255, 255)
TEXT_OUTLINE_COLOUR = (0, 0, 0)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def mark_radius(image_size: tuple[int, int]) -> int:
    """Radius of a point mark for an image of (width, height): visible at any resolution."""
    return max(4, round(min(image_size) / 80))


def title_band_height(image_size: tuple[int, int]) -> int:
    return max(16, round(image_size[1] * 0.05))


def _pixel(point: AnswerPoint, width: int, height: int) -> tuple[int, int]:
    """The pixel containing a continuous-coordinate point (pixel i covers [i, i + 1))."""
    # Clipped points sit on the border (x == width): draw them on the last pixel.
    return min(max(math.floor(point.x), 0), width - 1), min(max(math.floor(point.y), 0), height - 1)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(image, text, origin, _FONT, scale, TEXT_OUTLINE_COLOUR, thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, TEXT_COLOUR, thickness, cv2.LINE_AA)


def _fit_text(text: str, scale: float, max_width: int) -> str:
    """text, or its longest prefix + '...' that fits max_width px (a binary search: instructions can be long)."""
    def width(candidate: str) -> int:
        return cv2.getTextSize(candidate, _FONT, scale, 1)[0][0]

    if width(text) <= max_width:
        return text
    low, high = 0, len(text)      # the longest fitting prefix length lies in [low, high)
    while low + 1 < high:
        middle = (low + high) // 2
        if width(text[:middle] + '...') <= max_width:
            low = middle
        else:
            high = middle
    return text[:low] + '...' if low or width('...') <= max_width else ''


def _draw_title(image: np.ndarray, title: str) -> None:
    height_px, width_px = image.shape[:2]
    band = title_band_height((width_px, height_px))
    cv2.rectangle(image, (0, 0), (width_px - 1, band - 1), TITLE_BAND_COLOUR, thickness=cv2.FILLED)
    # Hershey fonts draw only ASCII; say so visibly instead of drawing garbage.
    text = ''.join(ch if 32 <= ord(ch) < 127 else '?' for ch in ' '.join(title.split()))
    scale = band * 0.6 / 22.0  # FONT_HERSHEY_SIMPLEX is about 22 px tall at scale 1
    margin = max(2, band // 5)
    text = _fit_text(text, scale, width_px - 2 * margin)
    cv2.putText(image, text, (margin, band - margin), _FONT, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def _draw_point(image: np.ndarray, centre: tuple[int, int], radius: int, colour, clipped: bool, label: str) -> None:
    # Clipped points are hollow: the model pointed outside the image and we moved the point.
    cv2.circle(image, centre, radius, colour, 2 if clipped else cv2.FILLED, cv2.LINE_8)
    # The number sits beside the mark, so the mark's centre keeps its colour.
    _text(image, label, (centre[0] + radius + 2, centre[1] - radius - 2), max(0.5, radius / 8))


def draw_annotations(rgb: np.ndarray, answer: Answer, title: str) -> np.ndarray:
    """A new RGB image with the answer's points, box or trajectory drawn and a title band on top.

    The input is not modified. The output has the input's size: the band covers the top rows and
    the marks are drawn over it, so nothing the model pointed at is hidden.
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got {getattr(rgb, "shape", type(rgb))}')
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError('the image is empty')
    image = np.ascontiguousarray(rgb).copy()
    _draw_title(image, title)
    radius = mark_radius((width, height))
    line_thickness = max(2, radius // 2)

    if answer.box is not None:
        box = answer.box
        top_left = _pixel(AnswerPoint(box.x_min, box.y_min), width, height)
        bottom_right = _pixel(AnswerPoint(box.x_max, box.y_max), width, height)
        cv2.rectangle(image, top_left, bottom_right, BOX_COLOUR, line_thickness, cv2.LINE_8)

    centres = [_pixel(point, width, height) for point in answer.points]
    if answer.task is Task.TRAJECTORY:
        if len(centres) >= 2:
            cv2.polylines(image, [np.array(centres[:-1], dtype=np.int32)], False, TRAJECTORY_LINE_COLOUR,
                          line_thickness, cv2.LINE_8)
            cv2.arrowedLine(image, centres[-2], centres[-1], TRAJECTORY_LINE_COLOUR, line_thickness, cv2.LINE_8,
                            tipLength=0.3)
        colour = TRAJECTORY_POINT_COLOUR
    else:
        colour = POINT_COLOUR
    for number, (point, centre) in enumerate(zip(answer.points, centres), start=1):
        _draw_point(image, centre, radius, colour, point.clipped, str(number))
    return image
