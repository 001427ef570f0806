"""Build a tiny random-weight Qwen2.5-VL model (RoboBrain 2.0's architecture) for tests.

Run with the Python that has torch + transformers + tokenizers (the vLLM venv)::

    python -m robobrain_ros.harness.tiny_model --out DIR

The build is offline and deterministic: a byte-level BPE tokenizer trained on a fixed corpus
with Qwen's special tokens, Qwen2.5-VL's own chat template, a Qwen2_5_VLProcessor with a small
``max_pixels`` and random weights from a fixed seed. The same builder version writes the same
files; a folder that already holds a complete build of this version is left alone (see
``MARKER``). The weights are random: the model produces garbage text unless a request forces
a format (vLLM structured outputs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Bump when anything below changes what is written.
BUILDER_VERSION = 3
MARKER = 'robobrain_tiny_model.json'
SEED = 20250

# Qwen2.5's special tokens, in Qwen's order (ids follow the trained vocabulary here).
SPECIAL_TOKENS = [
    '<|endoftext|>', '<|im_start|>', '<|im_end|>',
    '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>',
    '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>',
    '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
]
VOCAB_SIZE = 1024           # trained BPE size (incl. the 256 byte symbols), before special tokens
# Processor defaults as in Qwen2.5-VL / RoboBrain 2.0: the server must not resize what the client already sized
# to its budget, or the answers' pixel coordinates would refer to an image the client does not know.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 16384 * 28 * 28

# Qwen2.5-VL's chat template, verbatim (chat_template.json of Qwen/Qwen2.5-VL-7B-Instruct, which RoboBrain 2.0
# ships unchanged): the thinking prefill (an assistant message continued with continue_final_message) is then
# rendered exactly as for the real model. The template closes every message with <|im_end|>; for a continued
# final message the server (transformers' apply_chat_template) cuts the prompt after that message's text.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

# Deterministic training text: the answer formats RoboBrain uses and JSON/number syntax.
_CORPUS_LINES = [
    'You are a helpful assistant.',
    '<think>Let me look at the image.</think><answer>[(120, 45), (130, 60)]</answer>',
    '<think></think><answer>[[10, 20, 110, 220]]</answer>',
    '{"point": [12, 34], "label": "cup", "bbox_2d": [1, 2, 3, 4]}',
    'Please provide the bounding box coordinate of the region this sentence describes: the red cup.',
    'Point to the free space on the table. Answer with a list of (x, y) points.',
    'The robot arm should grasp the handle, then move to the shelf.',
    'affordance trajectory pointing grounding navigation planning',
    '0 1 2 3 4 5 6 7 8 9 10 11 12 99 100 123 256 512 1000 1024 0.5 -1.25',
    '( ) [ ] { } , . : ; " \' - _ / \\ + * = < > ! ? @ # $ % & | ~ `',
    'The quick brown fox jumps over the lazy dog.\nA second line.\n\nA paragraph.\t tab',
]


def _corpus():
    for repeat in range(20):
        for line in _CORPUS_LINES:
            yield line
        yield ' '.join(str(n) for n in range(repeat * 50, repeat * 50 + 50))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def is_complete(out: Path) -> bool:
    """True when ``out`` holds a complete build of this BUILDER_VERSION (files checked by size)."""
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get('builder_version') != BUILDER_VERSION:
        return False
    files = marker.get('files') or {}
    for name, info in files.items():
        p = out / name
        if not p.is_file() or p.stat().st_size != info.get('size'):
            return False
    return bool(files)


def _build_tokenizer(tmp: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # Special tokens after the BPE vocabulary, as in Qwen (ids 151643+ there).
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def build(out: Path) -> Path:
    """Write the model to ``out`` (atomically: build next to it, then rename)."""
    os.environ.setdefault('RAYON_NUM_THREADS', '1')  # deterministic BPE training
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
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

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + '.tmp-', dir=out.parent))
    try:
        raw = _build_tokenizer(tmp)
        tokenizer = Qwen2Tokenizer(
            tokenizer_object=raw,
            bos_token=None,
            eos_token='<|im_end|>',
            pad_token='<|endoftext|>',
            unk_token=None,
            additional_special_tokens=SPECIAL_TOKENS[1:],
            model_max_length=32768,
            clean_up_tokenization_spaces=False,
        )
        tokenizer.chat_template = CHAT_TEMPLATE
        ids = {t: raw.token_to_id(t) for t in SPECIAL_TOKENS}
        vocab = ((len(tokenizer) + 63) // 64) * 64

        image_processor = Qwen2VLImageProcessor(
            min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
            size={'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS})
        video_processor = Qwen2VLVideoProcessor(
            min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
            size={'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS})
        processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                        video_processor=video_processor,
                                        chat_template=CHAT_TEMPLATE)

        config = Qwen2_5_VLConfig(
            text_config=dict(
                vocab_size=vocab, hidden_size=128, intermediate_size=256,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=32768, max_window_layers=2,
                rope_parameters={'rope_type': 'default', 'rope_theta': 1000000.0,
                                 'mrope_section': [8, 12, 12]},
                bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
                pad_token_id=ids['<|endoftext|>'], tie_word_embeddings=False,
            ),
            vision_config=dict(
                depth=2, hidden_size=64, intermediate_size=128, num_heads=2,
                out_hidden_size=128, window_size=112, fullatt_block_indexes=[1],
                patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
            ),
            image_token_id=ids['<|image_pad|>'], video_token_id=ids['<|video_pad|>'],
            vision_start_token_id=ids['<|vision_start|>'],
            vision_end_token_id=ids['<|vision_end|>'],
            bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
            pad_token_id=ids['<|endoftext|>'], tie_word_embeddings=False,
        )
        config.architectures = ['Qwen2_5_VLForConditionalGeneration']
        torch.manual_seed(SEED)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=ids['<|endoftext|>'], pad_token_id=ids['<|endoftext|>'],
            eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']],
            do_sample=False)
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        files = {}
        for p in sorted(tmp.rglob('*')):
            if p.is_file():
                os.chmod(p, 0o644)
                files[str(p.relative_to(tmp))] = {'size': p.stat().st_size, 'sha256': _sha256(p)}
        marker = {'builder_version': BUILDER_VERSION, 'seed': SEED,
                  'architecture': 'Qwen2_5_VLForConditionalGeneration', 'files': files}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + '\n')

        if out.exists():
            if is_complete(out):  # a concurrent build finished first
                return out
            shutil.rmtree(out)
        os.rename(tmp, out)
        return out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure(out: Path, force: bool = False) -> tuple[Path, bool]:
    """Build into ``out`` unless it already holds this version. Returns (path, built)."""
    out = Path(out).expanduser().resolve()
    if not force and is_complete(out):
        return out, False
    import fcntl
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / (out.name + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time per folder
        if not force and is_complete(out):
            return out, False
        if force and out.exists():
            shutil.rmtree(out)
        build(out)
    return out, True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m robobrain_ros.harness.tiny_model',
        description='Build a tiny random Qwen2.5-VL model (offline, deterministic).')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--force', action='store_true', help='rebuild even when up to date')
    args = parser.parse_args(argv)
    path, built = ensure(args.out, force=args.force)
    print(('built ' if built else 'up to date: ') + str(path))
    return 0


if __name__ == '__main__':
    sys.exit(main())
