"""The image budget and Qwen2.5-VL's resize rule, which decides the size the model sees."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Qwen2.5-VL refuses images more elongated than this.
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class ImageBudget:
    """Pixel budget of one image sent to the model (one visual token per factor x factor pixels).

    The default max_pixels (1280 * 28 * 28) keeps a 1280x720 frame at about 1200 tokens instead of
    the processor's default 12845056, which would let a 4K frame cost 16k tokens.
    """

    max_pixels: int = 1003520
    min_pixels: int = 3136
    factor: int = 28

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f'factor must be positive, got {self.factor}')
        if self.min_pixels < 1:
            raise ValueError(f'min_pixels must be positive, got {self.min_pixels}')
        if self.max_pixels < self.factor * self.factor:
            raise ValueError(f'max_pixels ({self.max_pixels}) must hold at least one {self.factor}x{self.factor} patch')
        if self.min_pixels > self.max_pixels:
            raise ValueError(f'min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})')


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = 28) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule; returns (height, width) like Qwen's own function.

    Each side is rounded to a multiple of factor; if the area then exceeds max_pixels both sides
    are scaled down (floor), if it falls below min_pixels scaled up (ceil), keeping the aspect
    ratio. Python's round() (half to even) is kept on purpose: it is what the server computes.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f'image sides must be positive, got height={height}, width={width}')
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f'absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, '
            f'got {max(height, width) / min(height, width)}'
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_input_size(original_size: tuple[int, int], budget: ImageBudget) -> tuple[int, int]:
    """The (width, height) the model sees for an image of original_size (width, height)."""
    width, height = original_size
    h_bar, w_bar = smart_resize(height, width, budget.min_pixels, budget.max_pixels, budget.factor)
    return w_bar, h_bar
