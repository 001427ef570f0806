"""Reading plan steps from an answer: RoboOS-style JSON, numbered lists, or plain lines."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .answer import AnswerStep

_JSON_FENCE_RE = re.compile(r'```(?:json)?\s*(.*?)```', re.DOTALL | re.IGNORECASE)
# "1. do", "1) do", "Step 1: do", "**Step 1.** do", "- 1. do"; up to 3 digits so years are not steps.
_NUMBERED_RE = re.compile(
    r'^[\s>*#-]*(?:\*\*)?(?:step\s*)?(\d{1,3})\s*(?:[.):]|\s-)(?:\*\*)?\s*(\S.*)$', re.IGNORECASE
)
_BULLET_RE = re.compile(r'^\s*(?:[-*•]\s+)?(.*\S)\s*$')


@dataclass(frozen=True)
class ParsedPlan:
    steps: list[AnswerStep]
    reasoning: str = ''


def _as_text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ('' if value is None else str(value).strip())


# Step numbers travel in a uint32 field (the PlanStep message's order); RoboOS numbers from 1.
MAX_STEP_ORDER = 2**32 - 1


def _order_of(value: object, default: int) -> int:
    """The model's step number, or default when it is missing or not a number a plan can have (< 1, too large)."""
    try:
        order = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return default
    return order if 1 <= order <= MAX_STEP_ORDER else default


def _from_json_object(data: object) -> ParsedPlan | None:
    """RoboOS {"reasoning_explanation", "subtask_list": [{robot_name, subtask, subtask_order}]} or a list."""
    reasoning = ''
    items: object = data
    if isinstance(data, dict):
        reasoning = _as_text(data.get('reasoning_explanation', ''))
        items = data.get('subtask_list', data.get('steps'))
    if not isinstance(items, list):
        return None
    steps = []
    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            description = _as_text(item.get('subtask', item.get('description', item.get('step', ''))))
            order = _order_of(item.get('subtask_order', item.get('order')), index)
            robot = _as_text(item.get('robot_name', ''))
        else:
            description, order, robot = _as_text(item), index, ''
        if description:
            steps.append(AnswerStep(order, description, robot))
    if not steps:
        return None
    # subtask_order may repeat (parallel subtasks for several robots): a stable sort keeps them in text order.
    steps.sort(key=lambda step: step.order)
    return ParsedPlan(steps, reasoning)


def _from_json(text: str) -> ParsedPlan | None:
    candidates = [match.group(1) for match in _JSON_FENCE_RE.finditer(text)]
    start, end = text.find('{'), text.rfind('}')
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    start, end = text.find('['), text.rfind(']')
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        plan = _from_json_object(data)
        if plan is not None:
            return plan
    return None


def _from_numbered_lines(lines: list[str]) -> list[AnswerStep]:
    steps = []
    for line in lines:
        match = _NUMBERED_RE.match(line)
        if match:
            description = match.group(2).strip().strip('*').strip()
            if description:
                steps.append(AnswerStep(int(match.group(1)), description))
    return steps


def parse_plan(text: str) -> ParsedPlan | None:
    """Steps in the order given, or None when the text has no non-empty line at all."""
    if '{' in text or '[' in text:
        plan = _from_json(text)
        if plan is not None:
            return plan
    lines = [line for line in text.splitlines() if line.strip()]
    # A numbered list wins when there is one: intro and outro sentences around it are not steps.
    numbered = _from_numbered_lines(lines)
    if numbered:
        return ParsedPlan(numbered)
    steps = []
    for line in lines:
        match = _BULLET_RE.match(line)
        if match and match.group(1).strip() not in ('```', '```json'):
            steps.append(AnswerStep(len(steps) + 1, match.group(1).strip()))
    return ParsedPlan(steps) if steps else None
