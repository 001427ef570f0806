"""`brain_replay` (`ros2 run robobrain_ros brain_replay`): run the brain over a robot's recording.

    brain_replay BAG --goals GOALS.yaml --out OUT [--server-url URL] [--params-file FILE] [--rate R]
                 [--brain NAMESPACE/NAME]
    brain_replay --compare A B [--json FILE] [--min-answer-agreement PCT] [--min-same-outcome PCT]
    brain_replay --make-sample DIR [--storage mcap|sqlite3] [--distro humble|jazzy|kilted]

Exit status (docs/REPLAY.md): 0 complete and every goal succeeded; 1 complete, some goal did not succeed (or
--compare: the gate failed); 2 bad input (command line, goals, params, a goal past the bag's end, OUT exists; or
--compare: the outputs cannot be compared); 3 bag missing or corrupt; 4 no camera topic of the node in the bag; 5 the
model server unreachable at the start or failing during the replay; 6 the brain node failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import exit_codes
from .exit_codes import ReplayError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='brain_replay', description='Run the brain over a rosbag2 recording and record what it answers.',
        epilog='Commands, goals file and exit statuses: docs/REPLAY.md.')
    parser.add_argument('bag', nargs='?', type=Path, help='rosbag2 folder, or one .mcap or .db3 file')
    parser.add_argument('--goals', type=Path, help='YAML list of goals: {at, action, instruction, camera, '
                        'target_frame, thinking, timeout, max_image_age}')
    parser.add_argument('--out', type=Path, help='output folder (must not exist): bag/, report.md, results.json')
    parser.add_argument('--server-url', default='', help="model server(s) for the node the replay starts "
                        "(comma-separated failover list); default: the params file's server.base_urls")
    parser.add_argument('--params-file', type=Path, help="the node's parameters (its topics, model settings)")
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed (default 1.0)')
    parser.add_argument('--brain', default='', metavar='NAMESPACE/NAME',
                        help='replay to this running node (started with use_sim_time) instead of starting one')
    compare = parser.add_argument_group('compare two replays')
    compare.add_argument('--compare', nargs=2, type=Path, metavar=('A', 'B'),
                         help='reference and candidate replay outputs (OUT folders or their results.json)')
    compare.add_argument('--json', type=Path, help='--compare: also write the table as JSON here')
    compare.add_argument('--min-answer-agreement', type=float, default=None,
                         help='--compare: per task, at least this share of answers must agree [%%] (default 80)')
    compare.add_argument('--min-same-outcome', type=float, default=None,
                         help='--compare: at least this share of goals must end alike [%%] (default 100)')
    sample = parser.add_argument_group('make the sample recording')
    sample.add_argument('--make-sample', type=Path, metavar='DIR',
                        help='write a sample RGB-D scene: DIR/scene (the bag), DIR/goals.yaml, DIR/params.yaml')
    sample.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    sample.add_argument('--distro', choices=['humble', 'jazzy', 'kilted'], default='kilted')
    return parser


def _error(message: str, code: int) -> int:
    print(f'brain_replay: error: {message}', file=sys.stderr, flush=True)
    return code


def make_sample_main(args) -> int:
    from .sample import make_sample
    try:
        scene = make_sample(args.make_sample, args.storage, args.distro)
    except (OSError, ValueError) as exc:
        return _error(str(exc), exit_codes.BAD_INPUT)
    print(f'wrote the sample scene ({scene.duration:.2f} s, {args.storage}, {args.distro} definitions) to '
          f'{scene.bag}\nreplay it: brain_replay {scene.bag} --goals {scene.goals} --params-file {scene.params} '
          '--out OUT --server-url http://127.0.0.1:9010/v1')
    return exit_codes.OK


def compare_main(args) -> int:
    from robobrain_ros.consistency.report import GateThresholds

    from .compare import (
        DEFAULT_MIN_ANSWER_AGREEMENT,
        DEFAULT_MIN_SAME_OUTCOME,
        CompareError,
        CompareGate,
        compare_results,
        comparison_text,
    )
    from .report import load_results
    reference_path, candidate_path = args.compare
    try:
        reference, candidate = load_results(reference_path), load_results(candidate_path)
    except ValueError as exc:
        return _error(str(exc), exit_codes.BAD_INPUT)
    gate = CompareGate(
        GateThresholds(min_answer_agreement=(DEFAULT_MIN_ANSWER_AGREEMENT if args.min_answer_agreement is None
                                             else args.min_answer_agreement)),
        DEFAULT_MIN_SAME_OUTCOME if args.min_same_outcome is None else args.min_same_outcome)
    try:
        report = compare_results(reference, candidate, gate)
    except CompareError as exc:
        return _error(f'cannot compare {reference_path} and {candidate_path}: {exc}', exit_codes.BAD_INPUT)

    def name(path: Path) -> str:
        return (path.parent if path.suffix == '.json' else path).name or str(path)
    print(comparison_text(report, name(reference_path), name(candidate_path)))
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=1, default=str) + '\n')
    return exit_codes.OK if report.passed else exit_codes.GOALS_FAILED


def _large_frames_profile() -> None:
    """The replay publishes camera frames: the package's large-frame Fast DDS profile, as brain.launch.py sets it
    for the node, unless the user chose one (the node the replay starts inherits it)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        from robobrain_ros.launch_plan import fastdds_profile_environment
        share = get_package_share_directory('robobrain_ros')
    except (ImportError, LookupError, ValueError):   # PackageNotFoundError is a KeyError: not installed, nothing to set
        return
    variables, _ = fastdds_profile_environment(os.environ, share)
    os.environ.update(variables)


def replay_main(args, parser: argparse.ArgumentParser) -> int:
    missing = [flag for flag, value in (('BAG', args.bag), ('--goals', args.goals), ('--out', args.out)) if not value]
    if missing:
        parser.print_usage(sys.stderr)
        return _error(f"a replay needs {', '.join(missing)} (or use --compare A B, or --make-sample DIR)",
                      exit_codes.BAD_INPUT)
    _large_frames_profile()
    from .session import ReplayOptions, run_replay
    options = ReplayOptions(bag=args.bag, goals=args.goals, out=args.out, server_url=args.server_url,
                            params_file=args.params_file, rate=args.rate,
                            brain=('/' + args.brain.strip('/')) if args.brain else '')
    try:
        return run_replay(options)
    except ReplayError as exc:
        return _error(exc.message, exc.code)
    except KeyboardInterrupt:
        return _error(f'interrupted: {args.out} not written', exit_codes.INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from rclpy.utilities import remove_ros_args
        argv = remove_ros_args(['brain_replay', *argv])[1:]
    except ImportError:
        pass
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:    # argparse's usage errors: exit status 2, as BAD_INPUT
        return int(exc.code or 0)
    modes = sum(bool(x) for x in (args.compare, args.make_sample, args.bag or args.goals or args.out))
    if modes > 1:
        return _error('choose one: a replay (BAG --goals --out), --compare A B, or --make-sample DIR',
                      exit_codes.BAD_INPUT)
    if args.make_sample:
        return make_sample_main(args)
    if args.compare:
        return compare_main(args)
    return replay_main(args, parser)


if __name__ == '__main__':
    sys.exit(main())
