"""python -m robobrain_ros.bench [--quick] [--server URL] [--out DIR]: run every CPU benchmark, write the report.

Starts a vLLM CPU server with the tiny model (unless --server names one) and a brain node process, runs
overhead, concurrency, image budget, memory and fleet (8 brain nodes on one server) measurements, prints them and
writes BENCHMARKS.md sections plus the raw JSON; `frames` (camera frames between processes, issue 14) starts a
node and a camera process per case and writes its own section and benchmarks/frames.json; `intake` (goals sent at
once: time to acceptance, against a scripted server) writes its own section and benchmarks/intake.json; `floor`
(a bare rclpy action round trip between two processes, no node, no model server) writes benchmarks/floor.json and
goes into the results as `floor`, shown beside the node's overhead; `kept_goals` (what finished goals kept by the
node cost later goals, two nodes against a scripted server) goes into the results too. --quick is a short run (a
smoke test) that writes to a temporary folder unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def repository_root() -> Path | None:
    """The source tree whose docs/ the report goes to: the working directory's (scripts/bench runs from the
    repository root), else this file's when it runs from the source tree. Not this file's alone: installed by
    colcon it lies under install/, and the report went there."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / 'docs' / 'BENCHMARKS.md').is_file() and (folder / 'robobrain_interfaces').is_dir():
                return folder
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m robobrain_ros.bench', description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='few repetitions (a smoke run, about 2 minutes)')
    parser.add_argument('--server', default='', help='base URL of a running server (default: start the tiny one)')
    parser.add_argument('--model', default='robobrain-tiny', help='served model name with --server')
    parser.add_argument('--out', default='', help='folder for BENCHMARKS.md / cpu_results.json (default: docs/ of '
                        'the repository; a temporary folder with --quick)')
    parser.add_argument('--merge', default='', help='results JSON of an earlier (partial) run: its sections are kept '
                        'unless run again')
    parser.add_argument('--only', default='',
                        help='comma list among overhead,breakdown,concurrency,image_budget,memory,'
                        'fleet,frames,intake,floor,kept_goals')
    parser.add_argument('--frames-server', choices=('model', 'scripted'), default='model',
                        help="frames: goals against the tiny model (default) or a ScriptedServer (no model work)")
    parser.add_argument('--frames-cases', default='', help='frames: comma list of cases (default: all; see '
                        'robobrain_ros.bench.frames.CASES)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('ROS_DOMAIN_ID', '61')

    import psutil

    from robobrain_ros.bench import (
        breakdown,
        concurrency,
        fleet,
        floor,
        frames,
        image_budget,
        intake,
        kept_goals,
        memory,
        overhead,
        report,
    )
    from robobrain_ros.bench.common import BenchContext, load, machine, node_params
    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness.brain_process import BrainProcess

    plan = {'overhead': 8 if args.quick else 60, 'breakdown': 5 if args.quick else 40,
            'concurrency': 1 if args.quick else 5, 'image_budget': 2 if args.quick else 12,
            'memory': 1 if args.quick else 5, 'fleet': 1 if args.quick else 5, 'frames': 5 if args.quick else 60,
            'intake': 1 if args.quick else 8, 'floor': 40 if args.quick else 200,
            'kept_goals': 200 if args.quick else 1000}
    only = [s for s in args.only.split(',') if s] or list(plan)
    if args.out:
        docs = Path(args.out)
    elif args.quick:
        docs = Path(tempfile.mkdtemp(prefix='robobrain-bench-'))
    else:
        root = repository_root()
        if root is None:
            raise SystemExit('cannot find the repository (docs/BENCHMARKS.md): run from its root, or give --out')
        docs = root / 'docs'
    results: dict = {'quick': args.quick, 'machine': machine(), 'repetitions': plan}
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        # This run's machine facts (date, load) head the report; the kept sections carry their own load figures.
        results.update({k: v for k, v in earlier.items() if k not in only and k not in ('quick', 'seconds', 'machine')})
    partial = docs / 'benchmarks' / 'cpu_results.partial.json'
    partial.parent.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:   # a run cut short keeps what it measured (--merge picks it up)
        partial.write_text(json.dumps(results, indent=1, default=str))
    started = time.perf_counter()

    if 'floor' in only:   # processes of its own; first, before an idle model server shares the CPU with it
        print('== floor (rclpy action round trip)', file=sys.stderr)
        results['floor'] = floor.run(plan['floor'], log=lambda m: print(m, file=sys.stderr, flush=True))
        checkpoint()
        print(floor.text_summary(results['floor']))
        print('written: ' + ', '.join(str(p) for p in floor.write(results['floor'], docs)), file=sys.stderr)
    server = scripted = None
    needs_model = any(s in only for s in ('image_budget', 'overhead', 'concurrency', 'memory', 'fleet')) or (
        'frames' in only and args.frames_server == 'model')
    base_url, model = args.server, args.model
    if not args.server and needs_model:
        from robobrain_ros.harness.tiny_server import start_tiny_server
        print('starting the vLLM CPU server with the tiny model...', file=sys.stderr)
        server = start_tiny_server()
        base_url, model = server.base_url, server.model
    brain = client = None
    try:
        if 'breakdown' in only:
            print('== breakdown (in-process steps)', file=sys.stderr)
            results['breakdown'] = breakdown.run(plan['breakdown'])
            checkpoint()
        if 'image_budget' in only:
            print('== image budget', file=sys.stderr)
            results['image_budget'] = image_budget.run(base_url, model, 32, plan['image_budget'])
            checkpoint()
        node_sections = [s for s in ('overhead', 'concurrency', 'memory') if s in only]
        if node_sections:
            log_dir = Path(tempfile.mkdtemp(prefix='robobrain-bench-node-'))
            # As many request slots as the largest concurrency level: with the default 8, goals 9-16 of a burst
            # would wait for a slot by design, and the burst is compared with 16 requests posted at once.
            brain = BrainProcess(node_params(base_url, model, **{'queries.max_concurrent': concurrency.LEVELS[-1]}),
                                 name='robobrain_bench', log_dir=log_dir).start()
            client = BrainClient(brain_name='/robobrain_bench', node_name='robobrain_bench_client')
            if not client.wait_for_server('point', 60.0):
                raise RuntimeError(f'the brain node did not come up: {brain.log()[-3000:]}')
            ctx = BenchContext(base_url=base_url, model=model, brain=client, brain_pid=brain.process.pid,
                               camera_node=client.node)
            if 'memory' in only:
                time.sleep(2.0)
                results['memory_idle_at_start_mib'] = memory.rss_mib(psutil.Process(ctx.brain_pid))
            if 'overhead' in only:
                print('== node overhead', file=sys.stderr)
                results['overhead'] = overhead.run(ctx, repetitions=plan['overhead'])
                checkpoint()
            if 'concurrency' in only:
                print('== concurrency', file=sys.stderr)
                results['concurrency'] = concurrency.run(ctx, repetitions=plan['concurrency'])
                checkpoint()
            if 'memory' in only:
                print('== memory', file=sys.stderr)
                results['memory'] = memory.run(ctx, bursts=plan['memory'],
                                               idle_at_start_mib=results.pop('memory_idle_at_start_mib'))
            client.close()
            brain.stop()
            client = brain = None
        if 'fleet' in only:   # brain nodes of their own, one per robot
            print('== fleet', file=sys.stderr)
            results['fleet'] = fleet.run(base_url, model, repetitions=plan['fleet'],
                                         log=lambda m: print(m, file=sys.stderr, flush=True))
            checkpoint()
        if 'frames' in only:   # a node and a camera process of its own per case
            if args.frames_server == 'scripted':
                from robobrain_ros.harness.scripted_server import MODEL, ScriptedServer
                scripted = ScriptedServer().start()
                frames_url, frames_model = scripted.base_url, MODEL
            else:
                frames_url, frames_model = base_url, model
            cases = [c for c in args.frames_cases.split(',') if c] or (['1080p30', '4k15'] if args.quick else None)
            frame_results = frames.run(frames_url, frames_model, plan['frames'], cases)
            print(frames.text_summary(frame_results))
            print('written: ' + ', '.join(str(p) for p in frames.write(frame_results, docs)), file=sys.stderr)
        if 'intake' in only:   # two brain nodes of its own and a scripted server
            print('== goal intake', file=sys.stderr)
            intake_results = intake.run(plan['intake'], log=lambda m: print(m, file=sys.stderr, flush=True))
            print(intake.text_summary(intake_results))
            print('written: ' + ', '.join(str(p) for p in intake.write(intake_results, docs)), file=sys.stderr)
        if 'kept_goals' in only:   # two brain nodes of its own and a scripted server
            print('== kept goals', file=sys.stderr)
            results['kept_goals'] = kept_goals.run(plan['kept_goals'],
                                                   log=lambda m: print(m, file=sys.stderr, flush=True))
            checkpoint()
            print(kept_goals.text_summary(results['kept_goals']))
    finally:
        if scripted is not None:
            scripted.stop()
        if client is not None:
            client.close()
        if brain is not None:
            brain.stop()
        if server is not None:
            server.stop()
    if not [s for s in only if s not in ('frames', 'intake', 'floor')]:
        partial.unlink(missing_ok=True)
        return 0
    results['machine']['load_at_end'] = load()
    results['seconds'] = time.perf_counter() - started + (earlier.get('seconds', 0.0) if args.merge else 0.0)
    print(report.text_summary(results))
    # The analysis (what dominates, what was changed) is prose kept next to the raw data and included.
    partial.unlink(missing_ok=True)
    root = repository_root()
    written = report.write(results, docs, notes_file=root / 'docs' / 'benchmarks' / 'cpu_notes.md' if root else None)
    print('written: ' + ', '.join(str(p) for p in written), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
