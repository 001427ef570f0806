"""RoboBrain protocol: prompts, requests, parsing, coordinates, 3D lifting. No ROS imports here."""

from .annotate import draw_annotations
from .answer import Answer, AnswerBox, AnswerPoint, AnswerStep
from .camera_model import CameraModel
from .image_encoding import PreparedImage, pass_jpeg_through, prepare_image
from .lift import DepthSource, LiftedPoint, lift_points, lift_with_model_depth, prefer_measured
from .parse import parse_completion
from .prompts import PROMPT_TEMPLATES, assistant_prefill, has_thinking_switch, render_prompt, supported_tasks
from .request import BuiltRequest, build_request
from .resize import ImageBudget, model_input_size, smart_resize
from .rigid_transform import RigidTransform, lookup_stamp, transform_lifted
from .structured_outputs import ConstraintDialect, completion_pattern, constraint_fields
from .tasks import ModelFamily, ModelSize, ModelSpec, Task, as_model_spec, detect_model, resolve_model

__all__ = [
    'Answer',
    'BuiltRequest',
    'CameraModel',
    'ConstraintDialect',
    'DepthSource',
    'ImageBudget',
    'LiftedPoint',
    'ModelFamily',
    'ModelSize',
    'ModelSpec',
    'PROMPT_TEMPLATES',
    'AnswerBox',
    'AnswerPoint',
    'AnswerStep',
    'PreparedImage',
    'RigidTransform',
    'Task',
    'as_model_spec',
    'assistant_prefill',
    'build_request',
    'completion_pattern',
    'constraint_fields',
    'detect_model',
    'draw_annotations',
    'has_thinking_switch',
    'lift_points',
    'lift_with_model_depth',
    'lookup_stamp',
    'model_input_size',
    'parse_completion',
    'pass_jpeg_through',
    'prefer_measured',
    'prepare_image',
    'render_prompt',
    'resolve_model',
    'smart_resize',
    'supported_tasks',
    'transform_lifted',
]
