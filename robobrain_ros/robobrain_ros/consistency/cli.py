"""`robobrain-consistency` (also `ros2 run robobrain_ros robobrain-consistency`): does a candidate server answer
like a reference?

    robobrain-consistency --reference http://127.0.0.1:9010/v1 --candidate http://127.0.0.1:9011/v1 --json out.json
    robobrain-consistency --reference http://127.0.0.1:9010/v1 --save-reference ref.json     # no candidate yet
    robobrain-consistency --reference-file ref.json --candidate http://127.0.0.1:9011/v1
    robobrain-consistency --reference-file ref.json --candidate URL --baseline-file eager.json   # deep models
    robobrain-consistency --reference URL --reference-api-key-env REF_KEY --candidate URL --candidate-api-key-file k

Each server's API key comes from an environment variable or a file of its own, never from the command line.

Exit status: 0 the gate passed, 1 it failed (the failing rows are printed), 2 the comparison could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from robobrain_ros.model_client import ChatClient, ChatClientError, ClientConfig
from robobrain_ros.model_client.api_key import insecure_key_urls, load_api_key
from robobrain_ros.protocol import ModelSpec, parse_completion

from .baseline import BaselineError, calibrated_gate, check_same_reference, load_baseline
from .collect import GenerationSettings, SampleAnswer, answer_sample, discover_target
from .reference_file import ReferenceFileError, load_reference, save_reference
from .report import GateThresholds, SampleResult, build_report, markdown_table
from .samples import SHIPPED_SAMPLES, Sample, SampleError, load_samples
from .scoring import Tolerances

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
SERVERS = ('reference', 'candidate')


class _RemovedApiKey(argparse.Action):
    """--api-key put the key in every process list and sent the reference's key to the candidate too."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser.error('--api-key is gone (a command line is visible to every user of the machine): give each server '
                     'its own key with --reference-api-key-env NAME or --reference-api-key-file PATH, and '
                     '--candidate-api-key-env NAME or --candidate-api-key-file PATH')


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    keys = parser.add_argument_group('API keys', 'sent as Bearer tokens; a server without either gets no key')
    for server in SERVERS:
        keys.add_argument(f'--{server}-api-key-env', metavar='NAME', default='',
                          help=f'environment variable holding the {server} server\'s API key')
        keys.add_argument(f'--{server}-api-key-file', metavar='PATH', default='',
                          help=f'file holding the {server} server\'s API key (first line); wins over the variable')
    parser.add_argument('--api-key', nargs='?', action=_RemovedApiKey, help=argparse.SUPPRESS)


def _parser() -> argparse.ArgumentParser:
    gate, tol, settings = GateThresholds(), Tolerances(), GenerationSettings()
    parser = argparse.ArgumentParser(
        prog='robobrain-consistency', description=__doc__.split('\n\n')[0],
        epilog='Metrics, thresholds and the sample format: docs/CONSISTENCY.md.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--reference', metavar='URL', help='OpenAI base URL of the reference server (.../v1)')
    source.add_argument('--reference-file', metavar='PATH', type=Path, help='a reference saved by --save-reference')
    parser.add_argument('--candidate', metavar='URL', help='OpenAI base URL of the candidate server')
    parser.add_argument('--save-reference', metavar='PATH', type=Path,
                        help="write the reference's answers and teacher-forcing numbers here")
    parser.add_argument('--samples', metavar='PATH', type=Path, default=SHIPPED_SAMPLES,
                        help='sample set (JSONL); default: the shipped set')
    parser.add_argument('--reference-model', help='model name on the reference (default: its first in /v1/models)')
    parser.add_argument('--candidate-model', help='model name on the candidate (default: its first in /v1/models)')
    parser.add_argument('--family', default=settings.family, help='model family: auto, robobrain2.0, robobrain2.5')
    parser.add_argument('--size', default=settings.size, help='model size: auto, 3b, 7b, 32b, ...')
    parser.add_argument('--thinking', action='store_true', help='ask with thinking on (default off)')
    parser.add_argument('--max-tokens', type=int, default=settings.max_tokens, help='per answer')
    parser.add_argument('--top-k', type=int, default=settings.top_k, help='log-probabilities per answer token')
    parser.add_argument('--timeout', type=float, default=600.0, help='[s] longest wait for one answer')
    parser.add_argument('--json', metavar='PATH', type=Path, help='write the report as JSON here')
    thresholds = parser.add_argument_group('gate')
    thresholds.add_argument('--max-score-drop', type=float, default=gate.max_score_drop,
                            help='[points] largest drop of a 0..100 ground-truth score')
    thresholds.add_argument('--max-drift', type=float, default=gate.max_drift,
                            help='largest mean |Δ logprob| / reference top-k spread over the answer tokens')
    thresholds.add_argument('--min-top1-agreement', type=float, default=gate.min_top1_agreement,
                            help='[%%] least share of answer tokens with the same most likely next token')
    thresholds.add_argument('--min-decisiveness', type=float, default=gate.min_decisiveness,
                            help='[nats] median reference top-k spread below which the numbers are INCONCLUSIVE')
    thresholds.add_argument('--min-answer-agreement', type=float, default=None,
                            help='[%%] least share of agreeing answers per task (default: not gated)')
    thresholds.add_argument('--baseline-file', metavar='PATH', type=Path,
                            help='the --json report of a known-harmless candidate against the same reference (e.g. '
                                 'vLLM eager vs compiled): the numerical gate widens to 1.8x its drift and its top-1 '
                                 'agreement minus 7 points where that is looser (deep models: docs/CONSISTENCY.md)')
    tolerances = parser.add_argument_group('answer tolerances')
    tolerances.add_argument('--point-tolerance', type=float, default=tol.point_px,
                            help='[px] pointing answers agree within this mean nearest-point distance')
    tolerances.add_argument('--box-iou', type=float, default=tol.box_iou, help='boxes agree at this IoU or more')
    tolerances.add_argument('--trajectory-tolerance', type=float, default=tol.trajectory_px,
                            help='[px] trajectories agree within this discrete Fréchet distance')
    tolerances.add_argument('--trajectory-success', type=float, default=tol.trajectory_success,
                            help='a trajectory reaches its ground truth within this fraction of the image diagonal')
    _add_key_options(parser)
    return parser


async def _reference_answers(client: ChatClient, args: argparse.Namespace, samples: Sequence[Sample],
                             settings: GenerationSettings) -> tuple[str, ModelSpec, list[SampleAnswer]]:
    target = await discover_target(client, args.reference, args.reference_model, settings)
    _log(f'reference: {target.model} at {target.base_url} (vLLM {target.version}, {target.spec.describe()})')
    answers = []
    for sample in samples:
        answers.append(await answer_sample(client, target, sample, settings))
        _log(f'  reference answered {sample.id}')
    return target.model, target.spec, answers


async def _candidate_answers(client: ChatClient, args: argparse.Namespace, samples: Sequence[Sample],
                             settings: GenerationSettings, reference: Sequence[SampleAnswer]
                             ) -> tuple[str, ModelSpec, list[SampleAnswer]]:
    target = await discover_target(client, args.candidate, args.candidate_model, settings)
    _log(f'candidate: {target.model} at {target.base_url} (vLLM {target.version}, {target.spec.describe()})')
    answers = []
    for sample, ref in zip(samples, reference):
        answers.append(await answer_sample(client, target, sample, settings, reference=ref))
        _log(f'  candidate answered {sample.id}')
    return target.model, target.spec, answers


def _results(samples: Sequence[Sample], settings: GenerationSettings, reference: Sequence[SampleAnswer],
             reference_spec: ModelSpec, candidate: Sequence[SampleAnswer], candidate_spec: ModelSpec
             ) -> list[SampleResult]:
    def parse(sample: Sample, answer: SampleAnswer, spec: ModelSpec):
        return parse_completion(sample.task, answer.completion, settings.thinking, answer.sent_size,
                                answer.original_size, spec)

    return [SampleResult(sample, ref.original_size, parse(sample, ref, reference_spec),
                         parse(sample, cand, candidate_spec), ref.forced, cand.forced)
            for sample, ref, cand in zip(samples, reference, candidate)]


def _client(args: argparse.Namespace, server: str) -> ChatClient | None:
    """The client of one server (None when it is not asked), with that server's key only."""
    url = getattr(args, server)
    if url is None:
        return None
    api_key = load_api_key(getattr(args, f'{server}_api_key_env'), getattr(args, f'{server}_api_key_file'),
                           file_option=f'--{server}-api-key-file')
    for insecure in insecure_key_urls([url], api_key):
        _log(f'warning: the {server} API key goes to {insecure} over plain http: anyone on the network path can read '
             'it (use https, or a server on this machine)')
    return ChatClient(ClientConfig(base_urls=(url,), api_key=api_key, stall_timeout=args.timeout))


def _matching(samples: Sequence[Sample], answers: Sequence[SampleAnswer], path: Path) -> None:
    if [s.id for s in samples] != [a.sample_id for a in answers]:
        raise ReferenceFileError(f'{path} holds answers to other samples than the sample set given')


async def _run(args: argparse.Namespace) -> int:
    samples = load_samples(args.samples)
    baseline = load_baseline(args.baseline_file) if args.baseline_file is not None else None   # before the long part
    if args.reference_file is not None:
        reference_model, reference_spec, settings, reference = load_reference(args.reference_file)
        _matching(samples, reference, args.reference_file)
    else:
        settings = GenerationSettings(thinking=args.thinking, max_tokens=args.max_tokens, top_k=args.top_k,
                                      family=args.family, size=args.size)
    reference_client, candidate_client = _client(args, 'reference'), _client(args, 'candidate')
    try:
        if reference_client is not None:
            reference_model, reference_spec, reference = await _reference_answers(reference_client, args, samples,
                                                                                  settings)
            if args.save_reference is not None:
                save_reference(args.save_reference, reference_model, reference_spec, settings, reference)
                _log(f'reference saved to {args.save_reference}')
        if candidate_client is None:
            return EXIT_PASSED
        candidate_model, candidate_spec, candidate = await _candidate_answers(candidate_client, args, samples,
                                                                              settings, reference)
    finally:
        for client in (reference_client, candidate_client):
            if client is not None:
                await client.close()
    gate = GateThresholds(args.max_score_drop, args.max_drift, args.min_top1_agreement, args.min_decisiveness,
                          args.min_answer_agreement)
    if baseline is not None:
        gate = calibrated_gate(gate, baseline)
        _log(f'baseline {baseline.source} (drift {baseline.drift:.3g}, top-1 {baseline.top1_agreement:.1f}%): '
             f'gate drift at most {gate.max_drift:.3g}, top-1 at least {gate.min_top1_agreement:.1f}%')
    tolerances = Tolerances(args.point_tolerance, args.box_iou, args.trajectory_tolerance, args.trajectory_success)
    report = build_report(_results(samples, settings, reference, reference_spec, candidate, candidate_spec),
                          gate, tolerances)
    if baseline is not None:
        check_same_reference(report, baseline)
    print(markdown_table(report, f'reference ({reference_model})', f'candidate ({candidate_model})'))
    if args.json is not None:
        data = report.as_json()
        data.update(reference_model=reference_model, candidate_model=candidate_model, samples_file=str(args.samples))
        args.json.write_text(json.dumps(data, indent=1) + '\n')
    if report.passed:
        print('\nconsistency gate: PASSED')
        return EXIT_PASSED
    print('\nconsistency gate: FAILED')
    for row in report.failed:
        print(f'  {row.metric}: {row.status}: {row.reason}')
    return EXIT_FAILED


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.reference_file is not None and args.save_reference is not None:
        _parser().error('--save-reference needs a live --reference')
    if args.reference_file is not None and args.candidate is None:
        _parser().error('--reference-file needs a --candidate to compare')
    if args.candidate is None and args.save_reference is None:
        _parser().error('give a --candidate to compare, or --save-reference to record the reference')
    try:
        return asyncio.run(_run(args))
    except (SampleError, ReferenceFileError, BaselineError, ChatClientError, ValueError) as exc:
        print(f'robobrain-consistency: {exc}', file=sys.stderr)
        return EXIT_ERROR


if __name__ == '__main__':
    sys.exit(main())
