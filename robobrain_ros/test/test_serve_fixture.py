"""The session vLLM server fixture: the tiny model answers, structured outputs shape it."""

import json
import urllib.request

import pytest

from robobrain_ros.protocol.prompts import THINKING_OFF_PREFILL, THINKING_ON_PREFILL


def _post(server, path, body, base=None):
    req = urllib.request.Request((base or server.base_url) + path, data=json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _post_root(server, path, body):
    """vLLM's /tokenize and /detokenize live at the root, not under /v1."""
    return _post(server, path, body, base=server.root_url)


def metric_total(metrics: dict, name: str) -> float:
    """Sum of a counter over all its label sets (vllm:request_success_total has one per finish reason)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + '{'))


def test_models_lists_served_name(vllm_server):
    data = json.loads(vllm_server.get('/v1/models'))
    assert [m['id'] for m in data['data']] == [vllm_server.model]
    assert vllm_server.base_url == f'http://127.0.0.1:{vllm_server.port}/v1'


def test_prefill_and_regex_with_image(vllm_server):
    img = ('data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8'
           'z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')
    before = vllm_server.metrics()
    out = _post(vllm_server, '/chat/completions', {
        'model': vllm_server.model, 'max_tokens': 40, 'temperature': 0,
        'messages': [
            {'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': img}},
                                         {'type': 'text', 'text': 'Where is the cup?'}]},
            {'role': 'assistant', 'content': '<think></think><answer>'}],
        'continue_final_message': True, 'add_generation_prompt': False,
        'structured_outputs': {'regex': r'\[\(\d{1,3}, \d{1,3}\)\]</answer>'}})
    text = out['choices'][0]['message']['content']
    import re
    assert re.fullmatch(r'(<think></think><answer>)?\[\(\d{1,3}, \d{1,3}\)\]</answer>', text), text
    after = vllm_server.metrics()
    # Exactly this request shows in the counters (the session server runs nothing else meanwhile).
    assert metric_total(after, 'vllm:request_success_total') == metric_total(before, 'vllm:request_success_total') + 1
    assert (metric_total(after, 'vllm:prompt_tokens_total') - metric_total(before, 'vllm:prompt_tokens_total')
            == out['usage']['prompt_tokens'])


def test_tiny_model_carries_qwen2_5_vl_chat_template():
    """The template is Qwen2.5-VL's own (chat_template.json of Qwen/Qwen2.5-VL-7B-Instruct, which RoboBrain 2.0
    ships): its sha256. Before, a modified copy left <|im_end|> out of a continued final message itself, so the
    server's handling of the thinking prefill was never tested against the real template."""
    import hashlib

    from robobrain_ros.harness import tiny_model
    digest = hashlib.sha256(tiny_model.CHAT_TEMPLATE.encode()).hexdigest()
    assert digest == 'a0bc6f6fc7a29a80017a433e8f03a1cc1236e838a944a2d034295a60c4f2fddb'
    assert tiny_model.BUILDER_VERSION >= 3   # models built with the modified template are rebuilt


@pytest.mark.parametrize('prefill', [THINKING_OFF_PREFILL, THINKING_ON_PREFILL], ids=['thinking-off', 'thinking-on'])
def test_served_prompt_ends_with_the_thinking_prefill(vllm_server, prefill):
    """vLLM renders the real template and cuts the prompt right after the prefill (continue_final_message): the
    model continues the assistant turn, with no <|im_end|> closing it and no second assistant header."""
    messages = [{'role': 'user', 'content': [{'type': 'text', 'text': 'Where is the cup?'}]},
                {'role': 'assistant', 'content': prefill}]
    tokens = _post_root(vllm_server, '/tokenize', {
        'model': vllm_server.model, 'messages': messages, 'continue_final_message': True,
        'add_generation_prompt': False})['tokens']
    prompt = _post_root(vllm_server, '/detokenize', {'model': vllm_server.model, 'tokens': tokens})['prompt']
    assert prompt == ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                      '<|im_start|>user\nWhere is the cup?<|im_end|>\n'
                      '<|im_start|>assistant\n' + prefill)
