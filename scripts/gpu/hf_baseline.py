#!/usr/bin/env python3
"""Path (a) of issue 8: RoboBrain's official inference path, HF transformers generate, one query at a time.

Mirrors FlagOpen/RoboBrain2.0 inference.py (UnifiedInference.inference): a chat message with the image
file and the pointing prompt, `processor.apply_chat_template(..., add_generation_prompt=True)` plus the
thinking prefill ('<think>', the 7B default), the image loaded and resized as qwen_vl_utils'
process_vision_info does (its own function when installed, else the same steps: PIL open, RGB,
smart_resize with factor 28 / min 3136 / max 12845056, PIL resize), `processor(text=[...], images=...,
padding=True, return_tensors='pt').to('cuda')`, `model.generate(...)`, trim, `batch_decode`.
Differences, all for the benchmark: greedy (do_sample=False) and exactly --tokens new tokens
(min_new_tokens = max_new_tokens), random bf16 weights made on the GPU from config.json (no checkpoint).

Timed per query, end to end (image file -> decoded text), like a caller of inference() sees it. Time to
first token: the same path with one new token. Queries run back to back, so N goals take N queries' time.

    python3 scripts/gpu/hf_baseline.py --model /tmp/robobrain2_7b_dummy --frame /tmp/frame.jpg --out a.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / 'robobrain_ros'))

# after the sys.path inserts above: scripts/gpu's common and the repository's package without installing it
from common import (  # noqa: E402
    machine_facts,
    make_frame,
    save_frame_jpeg,
    stats_ms,
    write_json,
)

from robobrain_ros.bench.common import GPU_FORCED_TOKENS, INSTRUCTION  # noqa: E402


def official_vision_info(messages):
    """qwen_vl_utils.process_vision_info for image-only messages (its code when installed)."""
    try:
        from qwen_vl_utils import process_vision_info
        return process_vision_info(messages)[0], 'qwen_vl_utils'
    except ImportError:
        pass
    from PIL import Image

    from robobrain_ros.protocol import smart_resize
    images = []
    for message in messages:
        for part in message['content']:
            if part.get('type') == 'image':
                path = part['image'].removeprefix('file://')
                image = Image.open(path).convert('RGB')
                w, h = image.size
                rh, rw = smart_resize(h, w, min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28, factor=28)
                images.append(image.resize((rw, rh)))
    return images, 'inline (qwen_vl_utils steps)'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, required=True, help='folder from make_model.py')
    parser.add_argument('--frame', type=Path, help='JPEG frame (default: the synthetic 1280x720 frame)')
    parser.add_argument('--queries', type=int, default=32, help='timed queries, back to back (>= 8)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--ttft-queries', type=int, default=5)
    parser.add_argument('--tokens', type=int, default=GPU_FORCED_TOKENS)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='bfloat16')
    parser.add_argument('--attn', default=None, help="attn_implementation (default: transformers' own, as "
                                                    'the official script)')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)

    import torch
    from transformers import (
        AutoConfig,
        AutoProcessor,
        Qwen2_5_VLForConditionalGeneration,
    )

    from robobrain_ros.protocol import ModelFamily, Task, render_prompt

    frame = args.frame or save_frame_jpeg(make_frame(), args.out.parent / 'frame_1280x720.jpg')
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    config = AutoConfig.from_pretrained(args.model)
    torch.manual_seed(0)
    kwargs = {'dtype': dtype}
    if args.attn:
        kwargs['attn_implementation'] = args.attn
    with torch.device(args.device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, **kwargs)
    model.eval()
    processor = AutoProcessor.from_pretrained(args.model)
    if args.device == 'cuda':
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    print(f'model built in {build_s:.1f} s: {n_params / 1e9:.2f} B params, {dtype}, '
          f'attn={model.config._attn_implementation}', flush=True)

    text = render_prompt(Task.POINTING, ModelFamily.ROBOBRAIN_2_0, INSTRUCTION)
    messages = [{'role': 'user', 'content': [{'type': 'image', 'image': f'file://{frame}'},
                                             {'type': 'text', 'text': text}]}]

    def sync():
        if args.device == 'cuda':
            torch.cuda.synchronize()

    def inference(new_tokens: int) -> dict:
        start = time.perf_counter()
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt = f'{prompt}<think>'                       # the official 7B default: thinking on
        image_inputs, _ = official_vision_info(messages)
        inputs = processor(text=[prompt], images=image_inputs, videos=None, padding=True,
                           return_tensors='pt').to(args.device)
        sync()
        prepared = time.perf_counter()
        with torch.inference_mode():
            generated = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                       do_sample=False)
        sync()
        generated_at = time.perf_counter()
        trimmed = [out[len(inp):] for inp, out in zip(inputs.input_ids, generated)]
        output = processor.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        end = time.perf_counter()
        return {'total_s': end - start, 'preprocess_s': prepared - start, 'generate_s': generated_at - prepared,
                'decode_s': end - generated_at, 'prompt_tokens': int(inputs.input_ids.shape[1]),
                'image_tokens': int((inputs.input_ids == config.image_token_id).sum()),
                'new_tokens': int(trimmed[0].shape[0]), 'chars': len(output[0])}

    vision_impl = official_vision_info(messages)[1]
    for _ in range(args.warmup):
        inference(args.tokens)
    ttft = [inference(1) for _ in range(args.ttft_queries)]
    runs = []
    wall_start = time.perf_counter()
    marks = {}
    for i in range(args.queries):
        runs.append(inference(args.tokens))
        if i + 1 in (8, 32):
            marks[i + 1] = time.perf_counter() - wall_start
    result = {
        'path': 'a: HF transformers generate, one query at a time (RoboBrain inference.py)',
        'machine': machine_facts(),
        'model': str(args.model), 'params_b': round(n_params / 1e9, 3), 'dtype': args.dtype,
        'attn_implementation': model.config._attn_implementation, 'vision_info': vision_impl,
        'build_s': round(build_s, 1), 'frame': str(frame), 'tokens': args.tokens,
        'prompt_tokens': runs[0]['prompt_tokens'], 'image_tokens': runs[0]['image_tokens'],
        'new_tokens': sorted({r['new_tokens'] for r in runs}),
        'single': stats_ms([r['total_s'] for r in runs]),
        'single_preprocess': stats_ms([r['preprocess_s'] for r in runs]),
        'single_generate': stats_ms([r['generate_s'] for r in runs]),
        'ttft': stats_ms([r['total_s'] for r in ttft]),
        'wall_s': {str(k): round(v, 3) for k, v in marks.items()},
        'goals_per_s': {str(k): round(k / v, 3) for k, v in marks.items()},
        'peak_gpu_mem_gib': (round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == 'cuda' else None),
        'runs': [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in runs],
    }
    write_json(args.out, result)
    print(f"(a) single median {result['single'].get('median_ms')} ms p95 {result['single'].get('p95_ms')} ms; "
          f"ttft {result['ttft'].get('median_ms')} ms; walls {result['wall_s']}; prompt {result['prompt_tokens']} "
          f"tokens ({result['image_tokens']} image); new tokens {result['new_tokens']}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
