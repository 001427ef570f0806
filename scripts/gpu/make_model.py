#!/usr/bin/env python3
"""Write a model folder with RoboBrain2.0-7B's or -32B's architecture (Qwen2.5-VL dimensions) and no weights.

vLLM serves it with `--load-format robobrain_seeded` (the project's plugin: seeded realistic-scale weights
made on the GPU, the same in every server) or `dummy`; the HF baseline (scripts/gpu/hf_baseline.py) builds the
model from config.json with random bf16 weights on the GPU. Nothing is downloaded. Files: config.json,
generation_config.json, a stand-in tokenizer and the processor.

--arch 7b: Qwen2.5-VL-7B-Instruct's published config.json (RoboBrain 2.0 7B is its fine-tune): LLM hidden
3584, 28 layers, 28 heads, 4 KV heads, MLP 18944, vocab 152064, RoPE theta 1e6 with mRoPE sections
[16, 24, 24]; vision tower 32 blocks of width 1280 (16 heads), MLP 3420, patch 14, merge 2, window 112 with
full attention in blocks 7/15/23/31, projecting to 3584. About 8.3 B parameters (16.6 GB in bf16).
--arch 32b: Qwen2.5-VL-32B-Instruct's config.json (RoboBrain 2.0 32B, the seed's model, is its fine-tune):
LLM hidden 5120, 64 layers, 40 heads, 8 KV heads (head_dim 128, the same mRoPE sections), MLP 27648,
vocab 152064, untied lm_head; vision tower as the 7B's but MLP 3456, projecting to 5120 (the merger's
out_hidden_size). About 33.5 B parameters (67 GB in bf16).
--arch tiny: the same structure, small sizes, for exercising the scripts on a CPU.

The tokenizer: a byte-level BPE trained on a small fixed corpus (robobrain_ros.harness.tiny_model), its
vocabulary padded with filler tokens to Qwen2.5's size so that Qwen's special tokens sit at their real ids
(<|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645, ..., <|image_pad|> 151655) and every id a
random-weight model can emit (< 151657) decodes to text. Prompts tokenize into somewhat more tokens than
with Qwen's real 151k-merge BPE (tens of tokens; images dominate: 1196 tokens for a 1280x720 frame).

    python3 scripts/gpu/make_model.py --arch 7b --out /tmp/robobrain2_7b           # 7B dimensions
    python3 scripts/gpu/make_model.py --arch 32b --out /tmp/robobrain2_32b         # 32B dimensions
    python3 scripts/gpu/make_model.py --arch tiny --out /tmp/tiny --weights        # CPU test of the scripts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'robobrain_ros'))

# after the sys.path insert above: the repository's package without installing it
from robobrain_ros.harness.tiny_model import (  # noqa: E402
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    _build_tokenizer,
)

QWEN_FIRST_SPECIAL_ID = 151643
VOCAB = 152064
MIN_PIXELS = 56 * 56            # 3136, as Qwen2.5-VL / RoboBrain 2.0
MAX_PIXELS = 16384 * 28 * 28    # 12845056, RoboBrain 2.0's processor default

TEXT_7B = {
    'vocab_size': VOCAB, 'hidden_size': 3584, 'intermediate_size': 18944, 'num_hidden_layers': 28,
    'num_attention_heads': 28, 'num_key_value_heads': 4, 'hidden_act': 'silu', 'max_position_embeddings': 128000,
    'rms_norm_eps': 1e-6, 'use_sliding_window': False, 'sliding_window': 32768, 'max_window_layers': 28,
    'attention_dropout': 0.0, 'initializer_range': 0.02, 'tie_word_embeddings': False, 'use_cache': True,
    'rope_parameters': {'rope_type': 'default', 'rope_theta': 1000000.0, 'mrope_section': [16, 24, 24]},
}
VISION_7B = {
    'depth': 32, 'hidden_size': 1280, 'intermediate_size': 3420, 'num_heads': 16, 'in_channels': 3,
    'hidden_act': 'silu', 'out_hidden_size': 3584, 'patch_size': 14, 'spatial_merge_size': 2, 'temporal_patch_size': 2,
    'window_size': 112, 'fullatt_block_indexes': [7, 15, 23, 31], 'tokens_per_second': 2, 'initializer_range': 0.02,
}
TEXT_32B = dict(TEXT_7B, hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                num_key_value_heads=8, max_window_layers=64)
VISION_32B = dict(VISION_7B, intermediate_size=3456, out_hidden_size=5120)
# Same structure, small sizes: for exercising the scripts on a CPU.
TEXT_TINY = dict(TEXT_7B, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, max_window_layers=2,
                 rope_parameters={'rope_type': 'default', 'rope_theta': 1000000.0, 'mrope_section': [8, 12, 12]})
VISION_TINY = dict(VISION_7B, depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                   fullatt_block_indexes=[1])


def build_tokenizer(tmp: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    trained = _build_tokenizer(tmp)
    model = json.loads(trained.to_str())['model']
    vocab: dict[str, int] = {t: i for t, i in model['vocab'].items() if t not in SPECIAL_TOKENS}
    merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in model['merges']]
    # Filler tokens up to Qwen's first special id: 'Ġw<n>' decodes to ' w<n>' (Ġ is the byte-level space).
    n = 0
    while len(vocab) < QWEN_FIRST_SPECIAL_ID:
        token = f'Ġw{n}'
        n += 1
        if token not in vocab:
            vocab[token] = len(vocab)
    assert sorted(vocab.values()) == list(range(QWEN_FIRST_SPECIAL_ID))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    assert ids['<|endoftext|>'] == QWEN_FIRST_SPECIAL_ID and ids['<|image_pad|>'] == 151655, ids
    return tok, ids


ARCHS = {'7b': (TEXT_7B, VISION_7B), '32b': (TEXT_32B, VISION_32B), 'tiny': (TEXT_TINY, VISION_TINY)}


def parameter_count(text: dict, vision: dict) -> int:
    """Parameters of Qwen2_5_VLForConditionalGeneration with these dimensions (biases included)."""
    h, m, n, v = text['hidden_size'], text['intermediate_size'], text['num_hidden_layers'], text['vocab_size']
    hd = h // text['num_attention_heads']
    kv = text['num_key_value_heads'] * hd
    attn = h * h + h + 2 * (h * kv + kv) + h * h
    llm = n * (attn + 3 * h * m + 2 * h) + h + 2 * v * h
    vh, vm, vd = vision['hidden_size'], vision['intermediate_size'], vision['depth']
    block = 3 * vh * vh + 3 * vh + vh * vh + vh + 3 * (vh * vm) + 2 * vm + vh + 2 * vh
    merge = vh * 4
    vit = 3 * 2 * 14 * 14 * vh + vd * block + vh + merge * merge + merge + merge * vision['out_hidden_size'] \
        + vision['out_hidden_size']
    return llm + vit


def build(out: Path, dims: str = '7b', weights: bool = False) -> dict:
    import tempfile

    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw, ids = build_tokenizer(Path(tmp))
    tokenizer = Qwen2Tokenizer(tokenizer_object=raw, bos_token=None, eos_token='<|im_end|>',
                               pad_token='<|endoftext|>', unk_token=None,
                               additional_special_tokens=SPECIAL_TOKENS[1:], model_max_length=131072,
                               clean_up_tokenization_spaces=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
                                            size={'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS})
    video_processor = Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
                                            size={'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS})
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=video_processor, chat_template=CHAT_TEMPLATE)
    text, vision = ARCHS[dims]
    assert vision['out_hidden_size'] == text['hidden_size'], (dims, 'the merger projects to the LLM width')
    special = {'bos_token_id': ids['<|endoftext|>'], 'eos_token_id': ids['<|im_end|>'],
                   'pad_token_id': ids['<|endoftext|>']}
    config = Qwen2_5_VLConfig(
        text_config=dict(text, **special), vision_config=dict(vision),
        image_token_id=ids['<|image_pad|>'], video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'], vision_end_token_id=ids['<|vision_end|>'],
        tie_word_embeddings=False, **special)
    config.architectures = ['Qwen2_5_VLForConditionalGeneration']
    config.dtype = 'bfloat16'
    generation = GenerationConfig(bos_token_id=ids['<|endoftext|>'], pad_token_id=ids['<|endoftext|>'],
                                  eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']], do_sample=False)
    if weights:   # small models only (CPU tests): a real checkpoint
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
        model.generation_config = generation
        model.save_pretrained(out, safe_serialization=True)
    else:
        config.save_pretrained(out)
        generation.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {'arch': dims, 'parameters': parameter_count(text, vision),
               'hidden_size': text['hidden_size'], 'layers': text['num_hidden_layers'], 'tokenizer_len': len(tokenizer),
               'vocab_size': VOCAB, 'special_ids': ids,
               'max_pixels': MAX_PIXELS, 'min_pixels': MIN_PIXELS, 'weights': weights}
    (out / 'robobrain_gpu_model.json').write_text(json.dumps(summary, indent=1) + '\n')
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--arch', '--dims', dest='arch', choices=sorted(ARCHS), default='7b')
    parser.add_argument('--weights', action='store_true', help='also save random weights (tiny only)')
    args = parser.parse_args(argv)
    if args.weights and args.arch != 'tiny':
        parser.error(f'{args.arch} weights are made on the GPU (vLLM --load-format robobrain_seeded or dummy; '
                     'hf_baseline.py), not saved')
    print(json.dumps(build(args.out, args.arch, args.weights)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
