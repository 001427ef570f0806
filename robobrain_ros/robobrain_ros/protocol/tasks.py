"""The tasks RoboBrain knows, the model families whose answer conventions differ, and telling them apart."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


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


class ModelSize(str, enum.Enum):
    """Published parameter counts. For 2.0 the size decides the thinking prefill (3B has none)."""

    B3 = '3b'
    B4 = '4b'      # RoboBrain 2.5
    B7 = '7b'
    B8 = '8b'      # RoboBrain 2.5
    B32 = '32b'
    UNKNOWN = 'unknown'


# Where a ModelSpec came from: the served model's name, an explicit parameter, or the fallback.
SOURCE_NAME = 'name'
SOURCE_PARAMETER = 'parameter'
SOURCE_DEFAULT = 'default'


@dataclass(frozen=True)
class ModelSpec:
    """The model family and size the node talks to, and where that knowledge came from."""

    family: ModelFamily
    size: ModelSize
    source: str

    def describe(self) -> str:
        return f'{self.family.value} {self.size.value} (from the {self.source})'


# Tasks that ground their answer in one image: the answer's coordinates refer to it.
SINGLE_IMAGE_TASKS = frozenset({Task.POINTING, Task.AFFORDANCE, Task.TRAJECTORY, Task.GROUNDING})

AUTO = 'auto'

# BAAI's published names: RoboBrain2.0-3B/7B/32B, RoboBrain2.5-4B/8B-NV/8B-MT, and deployment variants that add a
# suffix (RoboBrain2.0-32B-ascend-flagos). Only the last path component counts ('BAAI/...', '/models/.../').
# Strict on purpose: any other name (Qwen2.5-VL-7B-Instruct, robobrain-tiny) is not recognised, because a wrong
# guess of the family moves every point.
_NAME_RE = re.compile(r'robobrain[-_ ]?v?(2\.0|2\.5)[-_ ](\d{1,3})b(?:[-_.][A-Za-z0-9._-]*)?', re.IGNORECASE)
_FAMILY_BY_VERSION = {'2.0': ModelFamily.ROBOBRAIN_2_0, '2.5': ModelFamily.ROBOBRAIN_2_5}


def detect_model(name: str) -> ModelSpec | None:
    """Family and size read from a RoboBrain model name (strict match), else None.

    A recognised family with an unpublished size gives ModelSize.UNKNOWN.
    """
    base = name.strip().rstrip('/').rsplit('/', 1)[-1]
    match = _NAME_RE.fullmatch(base)
    if match is None:
        return None
    try:
        size = ModelSize(match.group(2) + 'b')
    except ValueError:
        size = ModelSize.UNKNOWN
    return ModelSpec(_FAMILY_BY_VERSION[match.group(1)], size, SOURCE_NAME)


def _parse_setting(setting: str, kind: type[enum.Enum], what: str) -> enum.Enum | None:
    if setting == AUTO:
        return None
    try:
        value = kind(setting)
    except ValueError:
        value = None
    if value is None or value is getattr(kind, 'UNKNOWN', None):
        allowed = ', '.join([AUTO, *(v.value for v in kind if v.value != 'unknown')])
        raise ValueError(f'unknown model {what} setting {setting!r}; must be one of: {allowed}')
    return value


def resolve_model(family_setting: str, size_setting: str, model_name: str) -> ModelSpec:
    """The model spec from the parameters, falling back to the served name for each one left at 'auto'.

    An unrecognised name with both settings at 'auto' gives robobrain2.0 (Qwen2.5-VL's pixel convention, which
    any other Qwen2.5-VL model shares) of UNKNOWN size with source 'default'. source is 'parameter' when either
    setting was given, 'name' when both came from the name. Raises ValueError for an unknown setting.
    """
    family = _parse_setting(family_setting, ModelFamily, 'family')
    size = _parse_setting(size_setting, ModelSize, 'size')
    detected = detect_model(model_name)
    source = SOURCE_PARAMETER if family is not None or size is not None else (
        SOURCE_NAME if detected is not None else SOURCE_DEFAULT)
    if family is None:
        family = detected.family if detected is not None else ModelFamily.ROBOBRAIN_2_0
    if size is None:
        size = detected.size if detected is not None else ModelSize.UNKNOWN
    return ModelSpec(family, size, source)  # type: ignore[arg-type]


def as_model_spec(spec_or_family: ModelSpec | ModelFamily | str) -> ModelSpec:
    """A ModelSpec as given, or one of UNKNOWN size for a bare family (the 2.0 7B/32B conventions)."""
    if isinstance(spec_or_family, ModelSpec):
        return spec_or_family
    return ModelSpec(ModelFamily(spec_or_family), ModelSize.UNKNOWN, SOURCE_PARAMETER)

