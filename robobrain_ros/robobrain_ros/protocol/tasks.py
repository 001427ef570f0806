"""The tasks RoboBrain knows and the model families whose answer conventions differ."""

from __future__ import annotations

import enum


class Task(str, enum.Enum):
    """What the caller asks the model to do; decides the prompt and how the answer is read."""

    GENERAL = 'general'
    POINTING = 'pointing'
    AFFORDANCE = 'affordance'
    TRAJECTORY = 'trajectory'
    GROUNDING = 'grounding'
    PLANNING = 'planning'


class ModelFamily(str, enum.Enum):
    """Model generations with different prompts and coordinate conventions.

    robobrain2.0 answers in absolute pixels of the image it saw; robobrain2.5 answers in
    relative 0..1000 coordinates and adds a depth to trajectory waypoints.
    """

    ROBOBRAIN_2_0 = 'robobrain2.0'
    ROBOBRAIN_2_5 = 'robobrain2.5'


# Tasks that ground their answer in one image: the answer's coordinates refer to it.
SINGLE_IMAGE_TASKS = frozenset({Task.POINTING, Task.AFFORDANCE, Task.TRAJECTORY, Task.GROUNDING})

AUTO_MODEL_FAMILY = 'auto'


def resolve_model_family(setting: str, model_name: str) -> ModelFamily:
    """Pick the model family from a setting; only 'auto' looks at the model name.

    The coordinate convention must not be guessed silently: a wrong guess moves every point,
    so the name is consulted only when the operator explicitly asked for that.
    """
    if setting == AUTO_MODEL_FAMILY:
        return ModelFamily.ROBOBRAIN_2_5 if '2.5' in model_name else ModelFamily.ROBOBRAIN_2_0
    try:
        return ModelFamily(setting)
    except ValueError:
        allowed = ', '.join([AUTO_MODEL_FAMILY, *(family.value for family in ModelFamily)])
        raise ValueError(f'unknown model family setting {setting!r}; must be one of: {allowed}') from None
