"""Results -> printed summary, docs/BENCHMARKS.md (CPU sections only) and docs/benchmarks/cpu_results.json.

BENCHMARKS.md may hold other sections (the GPU benchmarks of issue 8): only the text between the CPU
markers is replaced; without markers the CPU sections go before the first `## GPU` heading (or at the end).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

START = '<!-- cpu-benchmarks:start (written by python -m robobrain_ros.bench; edit the generator, not this) -->'
END = '<!-- cpu-benchmarks:end -->'
JSON_NAME = 'cpu_results.json'
# The issue-14 targets; a compressed image in the goal counts as an image in the goal.
OVERHEAD_TARGETS_MS = {'topic': 10.0, 'goal_image': 20.0, 'goal_compressed': 20.0}   # paired median (issue 7)
ABOVE_FLOOR_TARGET_MS = 2.0   # issue 23: what the node adds above rclpy's floor, median (topic, JPEG in the goal)
TOPIC_P95_TARGET_MS = 30.0    # issue 23: the topic way's paired p95
# The floor cell each way is compared with: the node and BrainClient spin rclpy's EventsExecutor, and a goal of the
# overhead benchmark follows a pause (the other ways' requests). The JPEG goal (~0.2 MB) is set against the empty
# goal: its extra bytes go through shared memory in a fraction of a millisecond.
FLOOR_CELLS = {'topic': ('events', 'empty', 'idle'), 'goal_compressed': ('events', 'empty', 'idle'),
               'goal_image': ('events', 'image', 'idle')}


def _ms(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.1f}' if abs(value) < 1000 else f'{value:.0f}'


def _load(section: dict[str, Any]) -> str:
    before, after = section.get('load_before'), section.get('load_after')
    return f'load average (1/5/15 min) {before} before, {after} after'


def floor_ms(floor: dict[str, Any] | None, mode: str) -> float | None:
    """The floor's median round trip for a node way (FLOOR_CELLS), None without a floor run or that cell."""
    if not floor:
        return None
    cell = floor['cells'].get('/'.join(FLOOR_CELLS[mode]))
    if cell is None or 'error' in cell:
        return None
    return cell['round_trip_ms']['median']


def _met(mode: str, paired: dict[str, float], above: float | None) -> str:
    checks = [paired['median'] < OVERHEAD_TARGETS_MS[mode]]
    if mode == 'topic':
        checks.append(paired['p95'] <= TOPIC_P95_TARGET_MS)
    if mode in ('topic', 'goal_compressed') and above is not None:
        checks.append(above <= ABOVE_FLOOR_TARGET_MS)
    return 'yes' if all(checks) else 'no'


def overhead_section(r: dict[str, Any], floor: dict[str, Any] | None = None) -> list[str]:
    modes, paired = r['modes'], r['paired_overhead_ms']
    node_modes = [m for m in ('topic', 'goal_image', 'goal_compressed') if m in paired]
    lines = [
        '### Node overhead (1280x720 frame, Point goal, 32 forced tokens)',
        '',
        f"{r['repetitions']} repetitions, the {len(modes)} ways in a shuffled order in each; {_load(r)}. "
        f"Same model work checked: prompt tokens {r['direct_tokens']['prompt_tokens']}, completion tokens "
        f"{r['direct_tokens']['completion_tokens']} in every way; node text equal to its direct baseline's text: "
        f"{ {m: w['text_equal_to_direct'] for m, w in r['same_work'].items()} }.",
        '',
        '| way | median ms | p95 ms | overhead vs its direct baseline, paired median ms | paired p95 ms '
        "| rclpy's floor (same goal), median ms | the node adds above it ms | target | met |",
        '|---|---|---|---|---|---|---|---|---|',
    ]
    names = {'direct': "(a) direct HTTP, the node's exact body for the raw frame",
             'direct_jpeg': "(a') direct HTTP, the body with the camera's JPEG (what the node sends for it)",
             'topic': '(b) node, raw frame from the camera topic, vs (a)',
             'goal_image': '(b) node, raw image in the goal, vs (a)',
             'goal_compressed': "(b) node, the camera's JPEG in the goal (CompressedImage), vs (a')"}
    for mode in ('direct', 'direct_jpeg'):
        if mode in modes:
            lines.append(f"| {names[mode]} | {_ms(modes[mode]['seconds_ms']['median'])} | "
                         f"{_ms(modes[mode]['seconds_ms']['p95'])} | - | - | - | - | - | - |")
    for mode in node_modes:
        median = paired[mode]['median']
        base = floor_ms(floor, mode)
        above = None if base is None else median - base
        target = f'< {OVERHEAD_TARGETS_MS[mode]:g}'
        if mode == 'topic':
            target += f', p95 <= {TOPIC_P95_TARGET_MS:g}'
        if mode in ('topic', 'goal_compressed'):
            target += f'; above the floor <= {ABOVE_FLOOR_TARGET_MS:g}'
        lines.append(f"| {names[mode]} | {_ms(modes[mode]['seconds_ms']['median'])} | "
                     f"{_ms(modes[mode]['seconds_ms']['p95'])} | {_ms(median)} | {_ms(paired[mode]['p95'])} | "
                     f"{_ms(base)} | {_ms(above)} | {target} | {_met(mode, paired[mode], above)} |")
    if floor is None:
        lines += ['', 'No floor in this run (`--only floor` measures it): the node\'s additions above it are n/a.']
    headings = {'topic': 'topic', 'goal_image': 'image in goal', 'goal_compressed': 'JPEG in goal'}
    lines += ['', 'Where the node time goes (medians, ms; from the node\'s `QueryInfo.latency` and the client\'s '
              'clock; "outside the pipeline" = goal sent -> result received minus the node\'s `total`: DDS '
              'transfer of the goal and result, the action protocol, building and publishing the answer):', '',
              '| part | ' + ' | '.join(headings[m] for m in node_modes) + ' |',
              '|---|' + '---|' * len(node_modes)]
    fields = ('image_wait', 'preprocess', 'queue', 'first_token', 'generation', 'postprocess', 'total')
    for name in fields:
        lines.append(f'| node {name} | ' + ' | '.join(_ms(modes[m]['latency_ms'][name]['median'])
                                                     for m in node_modes) + ' |')
    lines.append('| outside the pipeline | ' + ' | '.join(_ms(modes[m]['outside_pipeline_ms']['median'])
                                                          for m in node_modes) + ' |')
    for mode in ('direct', 'direct_jpeg'):
        if mode in modes:
            lines.append(f"| {names[mode].split(',')[0]} ({mode}): first token / whole request | "
                         f"{_ms(modes[mode]['first_token_ms']['median'])} / "
                         f"{_ms(modes[mode]['seconds_ms']['median'])} |" + ' |' * (len(node_modes) - 1))
    return lines


def breakdown_section(r: dict[str, Any]) -> list[str]:
    lines = ['### The node\'s steps, timed alone (1280x720, this process, the node\'s own functions)', '',
             f"Image message {r['message_bytes']} bytes on the wire, request body {r['body_bytes']} bytes.", '',
             '| step | median ms | p95 ms |', '|---|---|---|']
    lines += [f"| {name} | {v['median']:.2f} | {v['p95']:.2f} |" for name, v in r['steps_ms'].items()]
    return lines


def concurrency_section(r: dict[str, Any]) -> list[str]:
    lines = ['### Concurrency (Point goals, frame from the topic, 32 forced tokens each)', '',
             f"{r['repetitions']} repetitions per N, the three ways shuffled; {_load(r)}. The node with "
             '`queries.max_concurrent` 16 (as many request slots as the largest N; the default, 8, would keep goals '
             '9-16 of a burst waiting for a slot by design), `max_queued` 32. Target (issue 23): node / direct '
             '<= 1.2 at 8 and 16 goals.', '',
             '| N | node parallel wall ms | node sequential wall ms | direct parallel wall ms | speed-up vs sequential '
             '| node / direct parallel | node per-goal median ms | p95 ms |', '|---|---|---|---|---|---|---|---|']
    for n, e in sorted(r['levels'].items(), key=lambda item: int(item[0])):   # JSON keys are strings
        lines.append(f"| {n} | {_ms(e['node_parallel']['wall_ms']['median'])} | "
                     f"{_ms(e['node_sequential']['wall_ms']['median'])} | "
                     f"{_ms(e['direct_parallel']['wall_ms']['median'])} | "
                     f"{e['speedup_vs_sequential']:.2f}x | {e['node_vs_direct_parallel']:.2f} | "
                     f"{_ms(e['node_parallel']['goal_ms']['median'])} | {_ms(e['node_parallel']['goal_ms']['p95'])} |")
    return lines


def image_budget_section(r: dict[str, Any]) -> list[str]:
    lines = ['### Image budget (direct requests with the node\'s bodies)', '',
             f"{r['repetitions']} repetitions, cases shuffled; {_load(r)}. `full_frame` = max_pixels 12845056, so "
             'the frame is only rounded to multiples of 28. Round trip: every pixel (every 2nd for 1920x1080) -> '
             'sent image, rounded to whole pixels as the model answers -> back with the protocol\'s '
             'CoordinateFrame.', '',
             '| frame | budget | sent size | image tokens | prompt tokens (server) | data URL KB '
             '| TTFT client median ms | p95 | TTFT server median ms | round-trip max error px | mean px |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for case in r['cases'].values():
        lines.append(
            f"| {case['frame'][0]}x{case['frame'][1]} | {case['budget']} | {case['sent'][0]}x{case['sent'][1]} | "
            f"{case['image_tokens']} | {', '.join(map(str, case['prompt_tokens']))} | "
            f"{case['data_url_chars'] / 1024:.0f} | "
            f"{_ms(case['first_token_ms']['median'])} | {_ms(case['first_token_ms']['p95'])} | "
            f"{_ms(case['server_ttft_ms']['median'])} | {case['round_trip']['max_px']:.2f} | "
            f"{case['round_trip']['mean_px']:.2f} |")
    return lines


def memory_section(r: dict[str, Any]) -> list[str]:
    return ['### Memory (the node process\'s RSS)', '',
            f"{_load(r)}. Load: {r['bursts']} bursts of {r['burst_size']} simultaneous Point goals, "
            'sampled every 20 ms.',
            '', '| state | median MiB | max MiB |', '|---|---|---|',
            f"| idle, after start | {r['idle_at_start_mib']:.0f} | |",
            f"| idle, after the overhead and concurrency runs | {r['idle_mib']:.0f} | |",
            f"| bursts, frame from the topic | {r['topic_load_mib']['median']:.0f} | "
            f"{r['topic_load_mib']['max']:.0f} |",
            f"| bursts, image in each goal | {r['goal_image_load_mib']['median']:.0f} | "
            f"{r['goal_image_load_mib']['max']:.0f} |",
            f"| idle, 2 s after the load | {r['idle_after_mib']:.0f} | |"]


def fleet_section(r: dict[str, Any]) -> list[str]:
    fleet, direct = r['fleet'], r['direct']
    total = r['robots'] * r['goals_each']
    return ['### Fleet (one server, a brain node per robot)', '',
            f"{r['robots']} brain node processes, each with its own camera topic ({r['frame']}), "
            f"{r['goals_each']} Point goals to each at once ({total} in all), against the same {total} request "
            f"bodies posted at once; {r['repetitions']} repetitions, the two ways shuffled; {_load(r)}. Node RSS "
            f"median {r['node_rss_mib']['median']:.0f} MiB, max {r['node_rss_mib']['max']:.0f} MiB.", '',
            '| way | wall median ms | wall p95 ms | per-goal median ms | per-goal p95 ms | statuses |',
            '|---|---|---|---|---|---|',
            f"| {r['robots']} nodes x {r['goals_each']} goals | {_ms(fleet['wall_ms']['median'])} | "
            f"{_ms(fleet['wall_ms']['p95'])} | {_ms(fleet['goal_ms']['median'])} | {_ms(fleet['goal_ms']['p95'])} | "
            f"{', '.join(fleet['statuses'])} |",
            f"| {total} direct requests | {_ms(direct['wall_ms']['median'])} | {_ms(direct['wall_ms']['p95'])} | "
            f"{_ms(direct['goal_ms']['median'])} | {_ms(direct['goal_ms']['p95'])} | {', '.join(direct['statuses'])} |",
            '', f"Fleet / direct wall: {r['fleet_vs_direct']:.2f}x (target on this CPU machine: within 1.5x; "
            f"{'met' if r['fleet_vs_direct'] <= 1.5 else 'not met'})."]


def markdown(results: dict[str, Any], notes: str = '') -> str:
    m = results['machine']
    lines = [START, '', '## CPU: the node against a real vLLM server with the tiny model (issue 7)', '',
             'Generated by `scripts/bench` '
             f"(`python -m robobrain_ros.bench`{' --quick' if results.get('quick') else ''}) "
             f"on {m['date']} in {results.get('seconds', 0) / 60:.1f} min; raw numbers (every sample) in "
             f'[benchmarks/{JSON_NAME}](benchmarks/{JSON_NAME}). Protocol micro-benchmarks (parse, resize, encode): '
             '[benchmarks/protocol.md](benchmarks/protocol.md).', '',
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, no GPU; Python {m['python']}, numpy "
             f"{m['numpy']}, OpenCV {m['opencv']}, {m['rmw']}; load average {m['load_at_start']} at the start, "
             f"{m.get('load_at_end')} at the end (the machine is shared with other test runs: paired and "
             'interleaved designs cancel most of that noise, p95s keep some of it).', '',
             'Method: one vLLM CPU server (`cpu_smoke.yaml`, the tiny random-weight Qwen2.5-VL), one brain node '
             'process (`BrainProcess`, a real --params-file), an action client (`BrainClient`) and a camera '
             'publisher (15 Hz, sensor-data QoS) in the benchmark process, all on 127.0.0.1 in one DDS domain. '
             'The model work is fixed: temperature 0, `min_tokens` = `max_tokens` = 32 and a structured-outputs '
             'regex of a 41-point list that cannot end sooner (the answer parses, the goal succeeds; the '
             "node's own constraint is off), the same frame and instruction; "
             'the direct baseline posts the exact body the node builds '
             '(`prepare_image` + `build_request`) with aiohttp, streaming, on a kept-alive connection.', '']
    if m.get('note'):
        lines += [f"Note: {m['note']}.", '']
    if notes:
        lines += [notes.strip(), '']
    if 'overhead' in results:
        lines += overhead_section(results['overhead'], results.get('floor')) + ['']
    if 'floor' in results:
        from robobrain_ros.bench import floor
        lines += [floor.section(results['floor']), '']
    if 'kept_goals' in results:
        from robobrain_ros.bench import kept_goals
        lines += [kept_goals.section(results['kept_goals']), '']
    for key, section in (('breakdown', breakdown_section),
                         ('concurrency', concurrency_section), ('image_budget', image_budget_section),
                         ('memory', memory_section), ('fleet', fleet_section)):
        if key in results:
            lines += section(results[key]) + ['']
    lines.append(END)
    return '\n'.join(lines) + '\n'


def merge(existing: str, section: str) -> str:
    """existing BENCHMARKS.md with its CPU part replaced by section; everything else kept as it was."""
    if START in existing and END in existing:
        head, rest = existing.split(START, 1)
        return head + section.rstrip('\n') + rest.split(END, 1)[1]
    if not existing.strip():
        return '# Benchmarks\n\n' + section
    lines = existing.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith('## GPU'):
            return ''.join(lines[:index]) + section + '\n' + ''.join(lines[index:])
    return existing.rstrip('\n') + '\n\n' + section


def write(results: dict[str, Any], docs: Path, notes_file: Path | None = None) -> list[Path]:
    docs = Path(docs)
    (docs / 'benchmarks').mkdir(parents=True, exist_ok=True)
    notes = notes_file.read_text() if notes_file is not None and notes_file.is_file() else ''
    json_path = docs / 'benchmarks' / JSON_NAME
    json_path.write_text(json.dumps(results, indent=1, sort_keys=True, default=str) + '\n')
    md_path = docs / 'BENCHMARKS.md'
    existing = md_path.read_text() if md_path.is_file() else ''
    md_path.write_text(merge(existing, markdown(results, notes)))
    return [md_path, json_path]


def write_marked_section(docs: Path, start: str, end: str, heading: str, section: str, json_name: str,
                         results: dict[str, Any]) -> list[Path]:
    """docs/benchmarks/json_name, and section (from start to end) in docs/BENCHMARKS.md: in place of the one there,
    else appended under heading. A section that one benchmark writes on its own (frames, intake)."""
    docs = Path(docs)
    (docs / 'benchmarks').mkdir(parents=True, exist_ok=True)
    json_path = docs / 'benchmarks' / json_name
    json_path.write_text(json.dumps(results, indent=1, sort_keys=True) + '\n')
    md_path = docs / 'BENCHMARKS.md'
    existing = md_path.read_text() if md_path.is_file() else '# Benchmarks\n'
    if start in existing and end in existing:
        head, rest = existing.split(start, 1)
        md_path.write_text(head + section.rstrip('\n') + rest.split(end, 1)[1])
    else:
        md_path.write_text(existing.rstrip('\n') + f'\n\n## {heading}\n\n' + section)
    return [md_path, json_path]


def text_summary(results: dict[str, Any]) -> str:
    """A short plain-text digest for the terminal."""
    out = []
    if 'overhead' in results:
        r = results['overhead']
        out.append('node overhead vs direct (paired, ms): ' + ', '.join(
            f"{mode} median {r['paired_overhead_ms'][mode]['median']:.1f} "
            f"p95 {r['paired_overhead_ms'][mode]['p95']:.1f}"
            for mode in ('topic', 'goal_image'))
            + f"; direct median {r['modes']['direct']['seconds_ms']['median']:.1f}")
    if 'concurrency' in results:
        out.append('concurrency wall ms (node parallel / sequential / direct parallel): ' + '; '.join(
            f"N={n}: {e['node_parallel']['wall_ms']['median']:.0f} / {e['node_sequential']['wall_ms']['median']:.0f}"
            f" / {e['direct_parallel']['wall_ms']['median']:.0f}" for n, e in results['concurrency']['levels'].items()))
    if 'image_budget' in results:
        out.append('image budget: ' + '; '.join(
            f"{name}: {c['prompt_tokens']} prompt tokens, TTFT {c['first_token_ms']['median']:.0f} ms, "
            f"round trip max {c['round_trip']['max_px']:.2f} px"
            for name, c in results['image_budget']['cases'].items()))
    if 'memory' in results:
        m = results['memory']
        out.append(f"node RSS MiB: idle {m.get('idle_at_start_mib', m['idle_mib']):.0f}, topic load max "
                   f"{m['topic_load_mib']['max']:.0f}, goal-image load max {m['goal_image_load_mib']['max']:.0f}")
    return '\n'.join(out)
