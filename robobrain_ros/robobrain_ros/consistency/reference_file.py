"""The reference saved to disk: its answers and its teacher-forcing numbers, to compare a candidate later.

Needed where two servers do not fit at once (two 32B servers on one GPU). The candidate still scores the
reference's answers itself, so the file keeps each answer's text and generation prompt length (to find the
answer's positions) besides the reference's own log-probabilities at those positions.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from robobrain_ros.protocol import ModelFamily, ModelSize, ModelSpec

from .collect import GenerationSettings, SampleAnswer
from .metrics import PositionLogprobs

FORMAT = 'robobrain_ros.consistency.reference/1'


class ReferenceFileError(ValueError):
    """A reference file that cannot be read or does not fit the comparison asked for."""


def save_reference(path: Path, model: str, spec: ModelSpec, settings: GenerationSettings,
                   answers: list[SampleAnswer]) -> None:
    data = {
        'format': FORMAT,
        'model': model,
        'family': spec.family.value,
        'size': spec.size.value,
        'settings': asdict(settings),
        'answers': [{
            'sample_id': answer.sample_id,
            'completion': answer.completion,
            'prompt_tokens': answer.prompt_tokens,
            'request_fingerprint': answer.request_fingerprint,
            'sent_size': list(answer.sent_size),
            'original_size': list(answer.original_size),
            # [token, logprob, {token: logprob of the top-k}] per answer position
            'forced': [[p.token, p.token_logprob, {str(k): v for k, v in p.top.items()}] for p in answer.forced],
        } for answer in answers],
    }
    Path(path).write_text(json.dumps(data) + '\n')


def load_reference(path: Path) -> tuple[str, ModelSpec, GenerationSettings, list[SampleAnswer]]:
    """(model name, spec, settings, answers) of a saved reference. Raises ReferenceFileError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceFileError(f'cannot read the reference file {path}: {exc}') from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise ReferenceFileError(f'{path} is not a reference file of format {FORMAT}')
    try:
        spec = ModelSpec(ModelFamily(data['family']), ModelSize(data['size']), 'parameter')
        settings = GenerationSettings(**data['settings'])
        answers = [SampleAnswer(
            sample_id=entry['sample_id'], completion=entry['completion'], prompt_tokens=int(entry['prompt_tokens']),
            request_fingerprint=entry['request_fingerprint'], sent_size=tuple(entry['sent_size']),
            original_size=tuple(entry['original_size']),
            forced=[PositionLogprobs(int(token), float(logprob), {int(k): float(v) for k, v in top.items()})
                    for token, logprob, top in entry['forced']],
        ) for entry in data['answers']]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFileError(f'{path} is damaged: {exc!r}') from None
    return str(data['model']), spec, settings, answers
