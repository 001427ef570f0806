"""Separating a completion into its thinking text and its answer text."""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = '<think>'
THINK_CLOSE = '</think>'
ANSWER_OPEN = '<answer>'
ANSWER_CLOSE = '</answer>'

STILL_THINKING_ERROR = 'the model was still thinking when generation stopped (no </think>)'


@dataclass(frozen=True)
class SplitCompletion:
    thinking: str
    answer: str
    error: str | None = None


def _strip_prefix(text: str, prefix: str) -> str:
    stripped = text.lstrip()
    return stripped[len(prefix):] if stripped.startswith(prefix) else text


def split_completion(completion: str, thinking: bool | None) -> SplitCompletion:
    """Split THINKING</think><answer>ANSWER</answer> and its variants.

    Tags may be present or absent in any mode (servers and templates differ in what they echo).
    With thinking on, text without '</think>' is thinking cut short: it is not read as an answer,
    because coordinates mentioned mid-reasoning are not the model's answer.
    """
    think_end = completion.find(THINK_CLOSE)
    if think_end >= 0:
        thinking_text = _strip_prefix(completion[:think_end], THINK_OPEN).strip()
        rest = completion[think_end + len(THINK_CLOSE):]
    else:
        answer_start = completion.find(ANSWER_OPEN)
        opens_thinking = completion.lstrip().startswith(THINK_OPEN)
        if (thinking or opens_thinking) and answer_start < 0:
            return SplitCompletion(_strip_prefix(completion, THINK_OPEN).strip(), '', STILL_THINKING_ERROR)
        if answer_start >= 0:
            thinking_text = _strip_prefix(completion[:answer_start], THINK_OPEN).strip()
            rest = completion[answer_start:]
        else:
            thinking_text = ''
            rest = completion
    answer_start = rest.find(ANSWER_OPEN)
    if answer_start >= 0:
        rest = rest[answer_start + len(ANSWER_OPEN):]
    answer_end = rest.find(ANSWER_CLOSE)
    if answer_end >= 0:
        rest = rest[:answer_end]
    return SplitCompletion(thinking_text, rest.strip())
