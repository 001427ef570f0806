"""Image budget: prompt tokens and time to first token at the default budget vs the full frame.

The bodies are the node's (prepare_image + build_request), posted directly; prompt tokens come from the
server's usage figures, time to first token from the stream (client side; each request's frame differs in a few
pixels, so no server cache hides the prefill) and from the server's
`vllm:time_to_first_token_seconds` histogram (difference of its sum/count around each request). The
coordinate round trip maps every pixel of a grid to the sent image (rounded to whole pixels, as the model
answers) and back with the protocol's CoordinateFrame; its worst error is in original pixels.
"""

from __future__ import annotations

import itertools
import random
import urllib.request
from typing import Any

from robobrain_ros.bench.common import INSTRUCTION, bench_frame, load, summary
from robobrain_ros.bench.direct import DirectClient, node_request_body
from robobrain_ros.protocol import ImageBudget, ModelFamily, model_input_size
from robobrain_ros.protocol.coordinates import CoordinateFrame

# The tiny model's processor accepts up to 16384 * 28 * 28 pixels: a budget that large only rounds sides
# to multiples of 28, so the frame goes at (about) full resolution.
FULL_FRAME = ImageBudget(max_pixels=16384 * 28 * 28)
BUDGETS = {'default': ImageBudget(), 'full_frame': FULL_FRAME}
FRAMES = ((1280, 720), (1920, 1080))
_TTFT = 'vllm:time_to_first_token_seconds'


def round_trip_error(original: tuple[int, int], sent: tuple[int, int], step: int = 1) -> dict[str, float]:
    """Worst and mean |pixel -> sent pixel (rounded) -> original| over a grid, in original pixels."""
    width, height = original
    frame = CoordinateFrame.for_family(ModelFamily.ROBOBRAIN_2_0, sent, original)
    sx, sy = sent[0] / width, sent[1] / height
    worst, total, count = 0.0, 0.0, 0
    for y in range(0, height, step):
        for x in range(0, width, step):
            back = frame.point(round(x * sx), round(y * sy))
            error = max(abs(back.x - x), abs(back.y - y))
            worst = max(worst, error)
            total += error
            count += 1
    return {'max_px': worst, 'mean_px': total / count}


def _server_ttft(root_url: str) -> tuple[float, float]:
    from robobrain_ros.harness.tiny_server import parse_metrics
    with urllib.request.urlopen(root_url + '/metrics', timeout=10) as response:
        metrics = parse_metrics(response.read().decode())
    total = sum(v for k, v in metrics.items() if k.startswith(_TTFT + '_sum'))
    count = sum(v for k, v in metrics.items() if k.startswith(_TTFT + '_count'))
    return total, count


def run(base_url: str, model: str, tokens: int, repetitions: int = 10, seed: int = 5) -> dict[str, Any]:
    root_url = base_url.rstrip('/').removesuffix('/v1')
    cases = {}
    frames = {}
    salt = itertools.cycle(range(256))
    for width, height in FRAMES:
        rgb = frames[(width, height)] = bench_frame(width, height)
        for name, budget in BUDGETS.items():
            sent = model_input_size((width, height), budget)
            body = node_request_body(rgb, model, INSTRUCTION, tokens, budget)
            url = body['messages'][0]['content'][0]['image_url']['url']
            cases[f'{width}x{height} {name}'] = {
                'frame': [width, height], 'budget': name, 'max_pixels': budget.max_pixels, 'sent': list(sent),
                'image_tokens': (sent[0] // 28) * (sent[1] // 28), 'data_url_chars': len(url), 'body': body,
                'round_trip': round_trip_error((width, height), sent, step=1 if width * height < 1.5e6 else 2)}
    rng = random.Random(seed)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    load_before = load()
    with DirectClient(base_url) as direct:
        for name, case in cases.items():   # warm-up: the first request of a shape compiles/caches
            direct.post(case['body'])
        for _ in range(repetitions):
            names = list(cases)
            rng.shuffle(names)
            for name in names:
                # A frame never sent before: vLLM's prefix and multimodal caches would otherwise turn the
                # prefill of a repeated image into a cache hit and hide what the image costs.
                rgb = frames[tuple(cases[name]['frame'])].copy()
                rgb[:8, :8] = next(salt)
                body = node_request_body(rgb, model, INSTRUCTION, tokens, BUDGETS[cases[name]['budget']])
                before = _server_ttft(root_url)
                result = direct.post(body)
                after = _server_ttft(root_url)
                server_ttft = (after[0] - before[0]) / (after[1] - before[1]) if after[1] > before[1] else float('nan')
                samples[name].append({'seconds': result.seconds, 'first_token_s': result.first_token_s,
                                      'server_ttft_s': server_ttft, 'prompt_tokens': result.prompt_tokens,
                                      'completion_tokens': result.completion_tokens, 'error': result.error})
    out = {}
    for name, case in cases.items():
        rows = samples[name]
        out[name] = {k: v for k, v in case.items() if k != 'body'}
        out[name].update(
            prompt_tokens=sorted({r['prompt_tokens'] for r in rows}),
            errors=[r['error'] for r in rows if r['error']],
            first_token_ms=summary([r['first_token_s'] * 1e3 for r in rows if r['first_token_s']]),
            server_ttft_ms=summary([r['server_ttft_s'] * 1e3 for r in rows
                                    if r['server_ttft_s'] == r['server_ttft_s']]),
            total_ms=summary([r['seconds'] * 1e3 for r in rows]),
            samples=rows)
    return {'cases': out, 'repetitions': repetitions, 'load_before': load_before, 'load_after': load()}
