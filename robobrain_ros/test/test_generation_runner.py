"""The request loop's edges: a stopped runner refuses work instead of leaving its caller waiting forever."""

from __future__ import annotations

import pytest

from robobrain_ros.model_client import ChatClient, ClientConfig
from robobrain_ros.model_client.generation import GenerationRunner
from robobrain_ros.node.query_pipeline import CancelToken


def runner() -> GenerationRunner:
    # Port 9 (discard) on loopback: nothing is sent in these tests.
    return GenerationRunner(ChatClient(ClientConfig(base_urls=('http://127.0.0.1:9/v1',))), max_concurrent=1)


def test_submit_on_a_stopped_runner_raises_at_once():
    stopped = runner()
    stopped.start()
    stopped.stop()
    with pytest.raises(RuntimeError, match='stopped'):
        stopped.submit({'model': 'x', 'messages': []}, lambda *_: None, timeout=5.0)


def test_submit_on_a_runner_never_started_raises_at_once():
    with pytest.raises(RuntimeError, match='stopped'):
        runner().submit({'model': 'x', 'messages': []}, lambda *_: None, timeout=5.0)


def test_a_generation_canceled_through_the_token_before_it_started_never_reaches_the_server():
    live = runner()
    live.start()
    try:
        token = CancelToken()
        token.cancel()
        handle = live.submit({'model': 'x', 'messages': []}, lambda *_: None, timeout=5.0)
        token.attach(handle.cancel)
        generation = handle.result(timeout=5.0)
        assert generation.canceled and generation.error is None   # no connection attempt to port 9 was reported
    finally:
        live.stop()
