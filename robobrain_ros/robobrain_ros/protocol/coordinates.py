"""Reading coordinate lists and boxes out of answer text and mapping them to original pixels."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .answer import AnswerBox, AnswerPoint
from .tasks import ModelFamily

# A number as models write it: optional sign, integer or decimal (no exponent: never seen, and
# accepting it would let '1e9' in prose become a coordinate).
_NUMBER = r'[-+]?(?:\d+(?:\.\d*)?|\.\d+)'
# (x, y) / [x, y] / (x, y, d) / [x, y, d]: any bracket style, any spacing.
_TUPLE_RE = re.compile(
    rf'[(\[]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*(?:,\s*({_NUMBER})\s*)?[)\]]'
)
_BOX_RE = re.compile(
    rf'[(\[]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[)\]]'
)

# RoboBrain 2.5 coordinates are relative, 0..1000 across the image.
RELATIVE_SCALE = 1000.0


# (x, y, depth) as the model wrote them; depth is None for 2-tuples. A plain tuple, not a
# dataclass: this is the parser's hot loop and frozen dataclasses cost about 1 us each to build.
RawTuple = tuple[float, float, 'float | None']


def find_tuples(text: str) -> list[RawTuple]:
    """Every (x, y) or (x, y, d) group in the text, in order; non-finite numbers are skipped."""
    found = []
    isfinite = math.isfinite
    for x_text, y_text, depth_text in _TUPLE_RE.findall(text):
        x, y = float(x_text), float(y_text)
        depth = float(depth_text) if depth_text else None
        if isfinite(x) and isfinite(y) and (depth is None or isfinite(depth)):
            found.append((x, y, depth))
    return found


def find_box(text: str) -> tuple[float, float, float, float] | None:
    """The first [x1, y1, x2, y2] in the text, else two (x, y) corners, else None."""
    for match in _BOX_RE.finditer(text):
        values = tuple(float(group) for group in match.groups())
        if all(math.isfinite(value) for value in values):
            return values  # type: ignore[return-value]
    corners = find_tuples(text)
    if len(corners) == 2:
        return corners[0][0], corners[0][1], corners[1][0], corners[1][1]
    return None


@dataclass(frozen=True)
class CoordinateFrame:
    """Maps the model's coordinates to original-image pixels for one model family."""

    scale_x: float
    scale_y: float
    width: float
    height: float

    @classmethod
    def for_family(
        cls, model_family: ModelFamily, sent_size: tuple[int, int], original_size: tuple[int, int]
    ) -> CoordinateFrame:
        original_width, original_height = original_size
        if model_family is ModelFamily.ROBOBRAIN_2_5:
            # Relative coordinates do not depend on the size the model saw.
            return cls(original_width / RELATIVE_SCALE, original_height / RELATIVE_SCALE,
                       original_width, original_height)
        sent_width, sent_height = sent_size
        return cls(original_width / sent_width, original_height / sent_height, original_width, original_height)

    def _clip(self, value: float, limit: float) -> tuple[float, bool]:
        if value < 0.0:
            return 0.0, True
        if value > limit:
            return limit, True
        return value, False

    def point(self, x: float, y: float) -> AnswerPoint:
        """Map and clip onto [0, width] x [0, height]; clipped=True when the model's point was outside."""
        px, clipped_x = self._clip(x * self.scale_x, self.width)
        py, clipped_y = self._clip(y * self.scale_y, self.height)
        return AnswerPoint(px, py, clipped_x or clipped_y)

    def box(self, x1: float, y1: float, x2: float, y2: float) -> AnswerBox:
        a = self.point(x1, y1)
        b = self.point(x2, y2)
        return AnswerBox(
            min(a.x, b.x), min(a.y, b.y), max(a.x, b.x), max(a.y, b.y), a.clipped or b.clipped
        )


def valid_size(size: object) -> bool:
    """Whether size is a (width, height) pair of positive finite numbers."""
    try:
        width, height = size  # type: ignore[misc]
        return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (width, height))
    except (TypeError, ValueError):
        return False
