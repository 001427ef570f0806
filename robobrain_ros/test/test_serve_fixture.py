"""The session vLLM server fixture: the tiny model answers, structured outputs shape it."""

import json
import urllib.request


def _post(server, path, body):
    req = urllib.request.Request(server.base_url + path, data=json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


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
    key = next(k for k in after if k.startswith('vllm:request_success_total'))
    assert after[key] >= before.get(key, 0.0)
    assert sum(v for k, v in after.items() if k.startswith('vllm:prompt_tokens_total')) > 0
