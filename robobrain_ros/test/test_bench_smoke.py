"""Smoke test of the CPU benchmarks (issue 7): every measurement runs once against the real tiny server and the
report comes out complete. Timings are printed and written by scripts/bench, never asserted here."""

from __future__ import annotations

import json
from typing import Any

from robobrain_ros.bench import breakdown, concurrency, image_budget, memory, overhead, report
from robobrain_ros.bench.common import BenchContext, load, machine, node_params

REQUIRED = ('machine', 'overhead', 'breakdown', 'concurrency', 'image_budget', 'memory')


def missing_parts(results: dict[str, Any]) -> list[str]:
    """What a complete report lacks ([] when complete)."""
    missing = [key for key in REQUIRED if key not in results]
    overhead = results.get('overhead', {})
    for mode in report.OVERHEAD_TARGETS_MS:
        if mode not in overhead.get('paired_overhead_ms', {}):
            missing.append(f'overhead.paired_overhead_ms.{mode}')
    for n in ('1', '2', '4', '8', '16'):
        if n not in results.get('concurrency', {}).get('levels', {}):
            missing.append(f'concurrency.levels.{n}')
    for case in ('1280x720 default', '1280x720 full_frame', '1920x1080 default', '1920x1080 full_frame'):
        if case not in results.get('image_budget', {}).get('cases', {}):
            missing.append(f'image_budget.cases.{case}')
    for key in ('idle_mib', 'topic_load_mib', 'goal_image_load_mib'):
        if key not in results.get('memory', {}):
            missing.append(f'memory.{key}')
    return missing


def test_benchmark_report_is_complete(vllm_server, start_brain, tmp_path):
    brain = start_brain(node_params(vllm_server.base_url, vllm_server.model), name='bench_brain')
    ctx = BenchContext(base_url=vllm_server.base_url, model=vllm_server.model, brain=brain,
                       brain_pid=brain.process.process.pid, camera_node=brain.node)
    results = {'quick': True, 'machine': machine(), 'seconds': 0.0}
    results['breakdown'] = breakdown.run(repeats=2)
    results['image_budget'] = image_budget.run(vllm_server.base_url, vllm_server.model, 8, repetitions=1)
    results['overhead'] = overhead.run(ctx, repetitions=2, warmup=1)
    results['concurrency'] = concurrency.run(ctx, repetitions=1)
    results['memory'] = memory.run(ctx, bursts=1, burst_size=2)
    results['machine']['load_at_end'] = load()

    assert missing_parts(results) == []
    # The node did the same model work as the direct requests, and every goal succeeded.
    assert results['overhead']['same_work']['topic']['completion_tokens'] == [32]
    assert all(results['overhead']['modes'][m]['statuses'] == ['succeeded'] for m in ('topic', 'goal_image',
                                                                                   'goal_compressed'))
    assert all(e[w]['statuses'] == ['succeeded'] for e in results['concurrency']['levels'].values()
               for w in concurrency.WAYS)
    assert all(c['prompt_tokens'][0] > c['image_tokens'] for c in results['image_budget']['cases'].values())

    # Writing keeps other sections (the GPU benchmarks) and replaces only the CPU part.
    (tmp_path / 'BENCHMARKS.md').write_text('# Benchmarks\n\n## GPU (issue 8)\n\nGPU numbers stay.\n')
    md_path, json_path = report.write(results, tmp_path)
    report.write(results, tmp_path)   # twice: still one CPU part
    text = md_path.read_text()
    assert text.count(report.START) == 1 and text.index(report.END) < text.index('## GPU (issue 8)')
    assert text.rstrip().endswith('GPU numbers stay.')
    for heading in ('Node overhead', 'Concurrency', 'Image budget', 'Memory', "The node's steps"):
        assert heading in text
    assert json.loads(json_path.read_text())['overhead']['repetitions'] == 2
    print(report.text_summary(results))


def test_the_report_goes_to_the_repository_docs_from_an_installed_package(monkeypatch, tmp_path):
    # scripts/bench runs the package colcon installed under install/; the report's folder was taken a fixed number
    # of levels above the module's file, which there is install/robobrain_ros/lib/pythonX.Y, and it was written there.
    from pathlib import Path

    from robobrain_ros.bench.__main__ import repository_root
    repo = Path(__file__).resolve().parents[2]
    assert repository_root() == repo
    monkeypatch.chdir(tmp_path)   # outside the repository: found from the module's own place
    assert repository_root() == repo


def test_goal_intake_benchmark_runs_both_ways_and_writes_its_section(tmp_path):
    # Two node processes against a scripted server: the shipped node (EventsExecutor) and its fallback executor (the
    # run raises when a node does not say it spins its way's executor, so the comparison cannot silently be the
    # same node twice).
    from robobrain_ros.bench import intake
    results = intake.run(bursts=1, sizes=(4,), log=lambda message: None)
    for way in intake.WAYS:
        assert results['summary']['4'][way]['succeeded'] == 4
        assert len(results['samples']['4'][way][0]['accepted_ms']) == 4
    (tmp_path / 'BENCHMARKS.md').write_text('# Benchmarks\n\n## Goal intake\n\n' + intake.START + '\nold\n'
                                            + intake.END + '\n\nAfter.\n')
    md_path, json_path = intake.write(results, tmp_path)
    text = md_path.read_text()
    assert 'old' not in text and text.count(intake.START) == 1 and text.rstrip().endswith('After.')
    assert "rclpy's EventsExecutor" in text and "rclpy's SingleThreadedExecutor" in text
    assert json.loads(json_path.read_text())['sizes'] == [4]


def test_kept_goals_benchmark_measures_both_nodes_and_renders_its_section():
    from robobrain_ros.bench import kept_goals
    results = kept_goals.run(goals=20, block=10, log=lambda message: None)
    assert set(results['ways']) == {'kept_300s', 'default'}
    for way, samples in results['samples'].items():
        assert len(samples) == 20 and all(ms > 0 for _, ms in samples)
        assert [kept for kept, _ in samples][:10] == list(range(10))   # every earlier goal of that node is kept
    text = kept_goals.section(results)
    assert text.count('\n| 0-50 |') == 1 and 'result_timeout 300 s' in text
