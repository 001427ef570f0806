"""Cheap checks at start of what a server really does, each one or two tiny requests to one base URL.

- check_constraint: is the answer constraint enforced, or silently ignored (a field the server does not know)?
- check_vision: does the server's vision work? A generated probe image with a known answer (FlagGems kernels
  have broken vision towers while text still looked fine).
- measure_image_limit: does the server shrink images itself (its processor's max_pixels below ours)? Then every
  pixel coordinate of an answer would refer to an image size the node does not know.
They raise ServerUnreachable / StreamStalled when the server cannot be asked; an error answer is a result.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from robobrain_ros.model_client.chat_client import ChatClient, ServerError
from robobrain_ros.protocol import (
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    ModelSpec,
    Task,
    build_request,
    model_input_size,
    parse_completion,
    prepare_image,
)
from robobrain_ros.protocol.structured_outputs import regex_fields

# A text no model writes by chance, and short enough to fit max_tokens even one character per token.
CONSTRAINT_PROBE_REGEX = r'(qx){3}[0-9]{3}'
_CONSTRAINT_PROBE_TOKENS = 16


@dataclass
class ConstraintCheck:
    enforced: bool
    detail: str
    raw: str            # the completion, or the error answer


@dataclass
class VisionCheck:
    passed: bool
    detail: str
    raw: str


@dataclass
class ImageLimit:
    max_pixels: int | None      # the server's own limit when it shrank the probe; None when it kept it
    detail: str


def _content(data: Any) -> str:
    """The message text of a non-streamed chat completion; ServerError when the answer is not one."""
    try:
        content = data['choices'][0]['message']['content']
    except (KeyError, IndexError, TypeError):
        raise ServerError(f'the answer is not a chat completion: {str(data)[:300]!r}') from None
    return content if isinstance(content, str) else ''


async def check_constraint(client: ChatClient, base_url: str, model: str,
                           dialect: ConstraintDialect) -> ConstraintCheck:
    """One request constrained to CONSTRAINT_PROBE_REGEX (temperature 0); an answer outside it = not enforced.

    With dialect NONE nothing is sent and enforced is False. An error answer (e.g. HTTP 400 for a field the
    server rejects) gives enforced=False with the error in detail.
    """
    dialect = ConstraintDialect(dialect)
    if dialect is ConstraintDialect.NONE:
        return ConstraintCheck(False, 'no constraint is sent to this server', '')
    body = {'model': model, 'messages': [{'role': 'user', 'content': 'Reply with one short word.'}],
            'max_tokens': _CONSTRAINT_PROBE_TOKENS, 'temperature': 0.0, 'stream': False,
            **regex_fields(CONSTRAINT_PROBE_REGEX, dialect)}
    try:
        text = _content(await client.post_json(base_url, '/chat/completions', body))
    except ServerError as exc:
        return ConstraintCheck(False, f'{dialect.value}: the server refused the constrained request: {exc}',
                               exc.body or str(exc))
    if re.fullmatch(CONSTRAINT_PROBE_REGEX, text):
        return ConstraintCheck(True, f'{dialect.value}: enforced (answered {text!r}, which only the constraint '
                                     f'produces)', text)
    return ConstraintCheck(False, f'{dialect.value}: NOT enforced: the server answered {text[:80]!r}, which breaks '
                                  f'the regex {CONSTRAINT_PROBE_REGEX!r} it was sent; it ignores the field', text)


# The vision probe: a light grey 448x336 image (a multiple of 28 per side, so no budget resizes it unevenly)
# with one black disk of radius 48 px centred at (308, 112), off the centre and the diagonals so that a model
# answering "the middle" or a corner fails. The answer passes when every point lies in the disk (+25% margin).
PROBE_SIZE = (448, 336)
PROBE_CENTER = (308, 112)
PROBE_RADIUS = 48
PROBE_INSTRUCTION = 'the black circle'
_PROBE_MARGIN = 1.25


def vision_probe_image() -> np.ndarray:
    """The probe as an HxWx3 uint8 RGB array (deterministic: no randomness, no file)."""
    width, height = PROBE_SIZE
    ys, xs = np.mgrid[0:height, 0:width]
    inside = (xs + 0.5 - PROBE_CENTER[0]) ** 2 + (ys + 0.5 - PROBE_CENTER[1]) ** 2 <= PROBE_RADIUS ** 2
    image = np.full((height, width, 3), 220, np.uint8)
    image[inside] = 0
    return image


async def check_vision(client: ChatClient, base_url: str, model: str, spec: ModelSpec | ModelFamily,
                       budget: ImageBudget, *,
                       constraint: ConstraintDialect = ConstraintDialect.NONE) -> VisionCheck:
    """Ask where the black circle of the probe image is (pointing, thinking off, temperature 0).

    Passes when the answer has points and all lie inside the disk. constraint: the dialect negotiated for the
    server (the answer then has the pointing format even from a weak model).
    """
    prepared = prepare_image(vision_probe_image(), budget)
    built = build_request(Task.POINTING, PROBE_INSTRUCTION, [prepared], False, spec, model=model, budget=budget,
                          constraint=constraint, max_tokens=96, temperature=0.0, stream=False)
    try:
        text = _content(await client.post_json(base_url, '/chat/completions', built.body))
    except ServerError as exc:
        return VisionCheck(False, f'the server refused the probe image: {exc}', exc.body or str(exc))
    answer = parse_completion(Task.POINTING, text, False, prepared.sent_size, prepared.original_size, spec)
    where = f'the disk at {PROBE_CENTER} r={PROBE_RADIUS} of the {PROBE_SIZE[0]}x{PROBE_SIZE[1]} probe'
    if answer.error is not None:
        return VisionCheck(False, f'the answer to the probe did not parse ({answer.error})', text)
    if answer.not_found:
        return VisionCheck(False, f'the model saw no black circle ({where})', text)
    outside = [(round(p.x), round(p.y)) for p in answer.points
               if math.dist((p.x, p.y), PROBE_CENTER) > PROBE_RADIUS * _PROBE_MARGIN]
    if outside:
        return VisionCheck(False, f'points {outside} lie outside {where}: the vision looks broken', text)
    return VisionCheck(True, f'all {len(answer.points)} points lie inside {where}', text)


# The small image of measure_image_limit: 112x112 = 16 visual tokens, above any min_pixels a server uses.
_SMALL_PROBE = (112, 112)
# The large one has the aspect of a 4:3 camera frame and the largest size the budget allows.
_LARGE_PROBE_ASPECT = (4000, 3000)


def _gradient(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    row = np.linspace(0, 255, width, dtype=np.float32)
    column = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    gray = ((row + column) / 2).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


async def _prompt_tokens(client: ChatClient, base_url: str, model: str, size: tuple[int, int],
                         budget: ImageBudget) -> int:
    prepared = prepare_image(_gradient(size), budget)
    body = {'model': model, 'max_tokens': 1, 'temperature': 0.0, 'stream': False,
            'messages': [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': prepared.data_url}},
                                                      {'type': 'text', 'text': 'x'}]}]}
    data = await client.post_json(base_url, '/chat/completions', body)
    tokens = data.get('usage', {}).get('prompt_tokens') if isinstance(data, dict) else None
    if not isinstance(tokens, int) or tokens <= 0:
        raise ServerError(f'the answer reports no usage.prompt_tokens: {str(data)[:300]!r}')
    return tokens


async def measure_image_limit(client: ChatClient, base_url: str, model: str, *,
                              budget: ImageBudget = ImageBudget()) -> ImageLimit:
    """Whether the server shrinks images of the budget's size, and to how many pixels if it does.

    Two requests (max_tokens=1): a small image and the largest one the budget allows, both already at a size
    smart_resize keeps. The difference of their prompt tokens is compared with the expected difference of visual
    tokens (one per factor x factor pixels). Fewer tokens mean the server resized the large image: its limit is
    about the pixels of the tokens it counted, which the returned max_pixels is (a lower bound: images sized to
    it are kept). Raises ServerError when the server reports no prompt tokens.
    """
    per_token = budget.factor * budget.factor
    small = model_input_size(_SMALL_PROBE, budget)
    large = model_input_size(_LARGE_PROBE_ASPECT, budget)
    expected_small = small[0] * small[1] // per_token
    expected_large = large[0] * large[1] // per_token
    small_tokens = await _prompt_tokens(client, base_url, model, small, budget)
    large_tokens = await _prompt_tokens(client, base_url, model, large, budget)
    counted_large = large_tokens - small_tokens + expected_small
    what = f'a {large[0]}x{large[1]} image ({expected_large} visual tokens expected, {counted_large} counted)'
    if counted_large >= expected_large:
        return ImageLimit(None, f'the server keeps {what}: no server-side resize within the budget')
    if counted_large <= 0:
        raise ServerError(f'the server counted no tokens for {what}: cannot infer its image limit')
    return ImageLimit(counted_large * per_token,
                      f'the server shrank {what}: its image limit is about {counted_large * per_token} pixels')
