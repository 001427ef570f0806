"""The thinking switch as the interfaces spell it, mapped to what a request takes: True on, False off, None nothing.

Three spellings, each an interface that stays: the goals' uint8 `thinking` field (THINKING_DEFAULT, THINKING_OFF,
THINKING_ON in every action), the node's model.thinking parameter ('off', 'on', 'none') and the words of
brain_query --thinking and replay goal files ('default', 'off', 'on'). No ROS imports: the goal values repeat the
actions' constants (a test checks they agree).
"""

from __future__ import annotations

THINKING_DEFAULT, THINKING_OFF, THINKING_ON = 0, 1, 2     # a goal's `thinking`: 0 = the node's model.thinking

# model.thinking -> the switch ('none' appends no prefill whatever the model)
PARAMETER_WORDS: dict[str, bool | None] = {'off': False, 'on': True, 'none': None}
# brain_query --thinking and replay goal files -> a goal's `thinking`
GOAL_WORDS: dict[str, int] = {'default': THINKING_DEFAULT, 'off': THINKING_OFF, 'on': THINKING_ON}


def thinking_for_goal(value: int, default: bool | None) -> bool | None:
    """The switch a goal asks for: its own, or the node's default for THINKING_DEFAULT.

    Raises ValueError for a value that is none of the three."""
    if value == THINKING_DEFAULT:
        return default
    if value in (THINKING_OFF, THINKING_ON):
        return value == THINKING_ON
    raise ValueError(f'unknown thinking value {value}: use THINKING_DEFAULT (0), THINKING_OFF (1) or THINKING_ON (2)')

