"""queries.prepare_ahead: after a goal took a camera's frame, the camera's next frame is prepared before a goal asks.

The pipeline runs for real up to the request; the request loop is a stand-in that refuses every request (the
node's own behaviour when it is stopping), since what is checked here ends before any HTTP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from std_msgs.msg import Header

from robobrain_ros.model_client import ServerUnreachable
from robobrain_ros.node import query_pipeline
from robobrain_ros.node.camera import DEFAULT_CAMERA, Camera, CameraTopics
from robobrain_ros.node.frame_cache import CachedFrame
from robobrain_ros.node.image_conversion import rgb_to_image_msg
from robobrain_ros.node.parameters import PARAMETERS, pipeline_settings
from robobrain_ros.node.query_pipeline import CancelToken, QueryCode, QueryPipeline, QueryRequest
from robobrain_ros.node.server_profile import ServerProfile
from robobrain_ros.protocol import ConstraintDialect, Task, resolve_model

NOW = 100.0   # [s] the node clock of every frame and goal here


class StoppedRequestLoop:
    """Stand-in for the GenerationRunner of a stopping node: every submit fails, so no request is sent."""

    def submit(self, *args):
        raise RuntimeError('the request loop is stopped')


def profile() -> ServerProfile:
    return ServerProfile(base_url='http://127.0.0.1:9/v1', version='0.11.0', model='robobrain-tiny',
                         models=('robobrain-tiny',), max_model_len=None,
                         spec=resolve_model('auto', 'auto', 'robobrain-tiny'), constraint=ConstraintDialect.NONE,
                         constraint_note='', server_max_pixels=None, image_limit_note='', vision_note='not checked',
                         vision_ok=None)


def no_transforms():
    raise AssertionError('no target frame here')


@pytest.fixture
def preparations(monkeypatch) -> list:
    """Every frame the pipeline prepares (resize + encode), in order."""
    prepared = []
    original = query_pipeline._prepare_frame

    def counting(frame, budget, settings):
        prepared.append(frame.msg)
        return original(frame, budget, settings)
    monkeypatch.setattr(query_pipeline, '_prepare_frame', counting)
    return prepared


def make(prepare_ahead: float) -> tuple[QueryPipeline, Camera]:
    settings = replace(pipeline_settings({name: spec.default for name, spec in PARAMETERS.items()}),
                       prepare_ahead=prepare_ahead)
    camera = Camera(DEFAULT_CAMERA, CameraTopics('image', '', '', ''))
    pipeline = QueryPipeline(settings, {DEFAULT_CAMERA: camera}, StoppedRequestLoop(), now=lambda: NOW,
                             server=profile, transforms=no_transforms)
    return pipeline, camera


def new_frame(camera: Camera, shade: int):
    msg = rgb_to_image_msg(np.full((480, 640, 3), shade, np.uint8), Header(frame_id='camera_optical_frame'))
    camera.frames.put_colour(CachedFrame(msg, compressed=False, topic='/image', stamp=NOW, received=NOW))
    return msg


def topic_goal(pipeline: QueryPipeline):
    return pipeline.run(QueryRequest(task=Task.POINTING, instruction='the cup'), lambda *_: None, CancelToken())


def test_after_a_goal_took_a_frame_the_next_frame_is_prepared_once_before_the_goal(preparations):
    pipeline, camera = make(prepare_ahead=10.0)
    first = new_frame(camera, 10)
    assert not pipeline.wants_frames_ahead(DEFAULT_CAMERA)   # no goal yet: frames are not prepared on arrival

    outcome = topic_goal(pipeline)
    assert outcome.code is QueryCode.NODE_STOPPING, outcome.message   # prepared, then refused by the stand-in
    assert preparations == [first] and pipeline.wants_frames_ahead(DEFAULT_CAMERA)

    second = new_frame(camera, 20)
    pipeline.prepare_newest_frame(DEFAULT_CAMERA)   # what the node's prepare thread does when the frame arrives
    assert preparations == [first, second]
    outcome = topic_goal(pipeline)
    assert outcome.code is QueryCode.NODE_STOPPING and outcome.sent_size != (0, 0)
    assert preparations == [first, second]   # the goal took the frame prepared ahead: no second preparation


def test_prepare_ahead_zero_prepares_only_at_the_goal(preparations):
    pipeline, camera = make(prepare_ahead=0.0)
    new_frame(camera, 10)
    topic_goal(pipeline)
    assert not pipeline.wants_frames_ahead(DEFAULT_CAMERA)


def test_a_goal_with_its_own_image_does_not_start_preparing_camera_frames(preparations):
    pipeline, camera = make(prepare_ahead=10.0)
    new_frame(camera, 10)
    image = rgb_to_image_msg(np.zeros((480, 640, 3), np.uint8), Header())
    pipeline.run(QueryRequest(task=Task.POINTING, instruction='the cup', image=image), lambda *_: None,
                 CancelToken())
    assert not pipeline.wants_frames_ahead(DEFAULT_CAMERA)


def test_preparing_without_a_frame_or_a_server_does_nothing(preparations):
    pipeline, camera = make(prepare_ahead=10.0)
    pipeline.prepare_newest_frame(DEFAULT_CAMERA)   # no frame yet
    new_frame(camera, 10)

    def unreachable():
        raise ServerUnreachable('no model server answered (test)')
    pipeline._server = unreachable
    pipeline.prepare_newest_frame(DEFAULT_CAMERA)   # no budget without a server: the goal will report it
    assert preparations == []
