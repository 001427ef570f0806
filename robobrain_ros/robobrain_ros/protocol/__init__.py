"""RoboBrain protocol: prompts, requests, parsing, coordinates, 3D lifting. No ROS imports here."""

from .annotate import draw_annotations
from .answer import Answer, PixelBox, PixelPoint, PlanStep
from .image_encoding import PreparedImage, prepare_image
from .lift import CameraIntrinsics, LiftedPoint, lift_to_3d
from .parse import parse_completion
from .prompts import PROMPT_TEMPLATES, assistant_prefill, render_prompt, supported_tasks
from .request import BuiltRequest, build_request
from .resize import ImageBudget, model_input_size, smart_resize
from .structured_outputs import structured_output_constraint
from .tasks import ModelFamily, Task, resolve_model_family

__all__ = [
    'Answer',
    'BuiltRequest',
    'CameraIntrinsics',
    'ImageBudget',
    'LiftedPoint',
    'ModelFamily',
    'PROMPT_TEMPLATES',
    'PixelBox',
    'PixelPoint',
    'PlanStep',
    'PreparedImage',
    'Task',
    'assistant_prefill',
    'build_request',
    'draw_annotations',
    'lift_to_3d',
    'model_input_size',
    'parse_completion',
    'prepare_image',
    'render_prompt',
    'resolve_model_family',
    'smart_resize',
    'structured_output_constraint',
    'supported_tasks',
]
