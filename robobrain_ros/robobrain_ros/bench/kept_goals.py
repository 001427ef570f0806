"""Kept goals: what the finished goals an action server keeps cost every later goal, measured on the node.

An rclpy action server keeps a finished goal, and lists it in every status message it publishes, for
`queries.result_timeout` seconds; every action client decodes each status message in Python. Two brain nodes run
side by side against one ScriptedServer (an answer at once: no model work): one keeping finished goals 300 s (the
node's default before issue 23), one with the default now. The client sends Point goals with the camera's JPEG back
to back to each in turn, in blocks, and records each goal's round trip (send -> result) against how many goals
that node had finished in the last result_timeout seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from robobrain_ros.bench.common import INSTRUCTION, load, node_params, summary
from robobrain_ros.bench.intake import jpeg_goal_image

OLD_RESULT_TIMEOUT = 300   # [s] the node's default before issue 23
# Kept-goal counts at which the round trip is reported (the goals finished in the last result_timeout seconds).
WINDOWS = ((0, 50), (200, 300), (500, 600), (900, 1000))


def run(goals: int = 1000, block: int = 50, log=print) -> dict[str, Any]:
    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness.brain_process import BrainProcess
    from robobrain_ros.harness.scripted_server import MODEL, Reply, ScriptedServer
    from robobrain_ros.node.parameters import PARAMETERS

    ways = {'kept_300s': OLD_RESULT_TIMEOUT, 'default': PARAMETERS['queries.result_timeout'].default}
    image = jpeg_goal_image()
    log_dir = Path(tempfile.mkdtemp(prefix='robobrain-bench-kept-'))
    results: dict[str, Any] = {'goals': goals, 'result_timeout_s': ways, 'load_at_start': load(), 'ways': {}}
    samples: dict[str, list[tuple[int, float]]] = {way: [] for way in ways}   # (kept goals, round trip ms)
    finished: dict[str, list[float]] = {way: [] for way in ways}   # time.monotonic() each goal ended
    processes, clients = {}, {}
    with ScriptedServer(default=Reply(chunks=1)) as server:
        try:
            for way, timeout in ways.items():
                params = node_params(server.base_url, MODEL, **{'queries.result_timeout': timeout,
                                                                'model.extra_body': '{}'})
                processes[way] = BrainProcess(params, name=f'robobrain_kept_{way}', log_dir=log_dir).start()
                clients[way] = BrainClient(brain_name=f'/robobrain_kept_{way}', node_name=f'kept_client_{way}')
            for way, client in clients.items():
                if not client.wait_for_server('point', 60.0):
                    raise RuntimeError(f'the {way} node did not come up: {processes[way].log()[-3000:]}')
            for start in range(0, goals, block):
                for way in (list(ways) if (start // block) % 2 == 0 else list(ways)[::-1]):
                    client = clients[way]
                    for _ in range(min(block, goals - start)):
                        now = time.monotonic()
                        kept = sum(1 for t in finished[way] if now - t < ways[way])
                        outcome = client.query('point', INSTRUCTION, wait_timeout=60.0, compressed_image=image)
                        if outcome.status_name != 'succeeded':
                            raise RuntimeError(f'{way}: a goal {outcome.status_name}: {processes[way].log()[-2000:]}')
                        finished[way].append(time.monotonic())
                        samples[way].append((kept, outcome.seconds * 1e3))
                log(f'kept goals: {start + block} of {goals} goals per node')
        finally:
            for client in clients.values():
                client.close()
            for process in processes.values():
                process.stop()
    for way in ways:
        results['ways'][way] = {f'{low}-{high}': summary([ms for kept, ms in samples[way] if low <= kept < high])
                                for low, high in WINDOWS}
        results['ways'][way]['all'] = summary([ms for _, ms in samples[way]])
    results['load_at_end'] = load()
    results['samples'] = samples
    return results


def section(results: dict[str, Any]) -> str:
    """'### Kept goals on the node': a markdown section."""
    ways = results['result_timeout_s']
    lines = ['### Kept goals on the node (`queries.result_timeout`)', '',
             'Every status message of an rclpy action server lists the finished goals it keeps, and every client '
             'decodes it in Python, so a goal pays for the goals finished in the last result_timeout seconds. Two '
             'nodes side by side, one keeping finished goals 300 s (the default before issue 23), one with the '
             f"default now ({ways['default']} s); the round trip of a goal by how many that node kept when it was "
             'sent:', '',
             '| finished goals kept by the node | ' + ' | '.join(
                 f'round trip, result_timeout {seconds} s: median (p95, n)' for seconds in ways.values()) + ' |',
             '|---|' + '---|' * len(ways)]
    for low, high in WINDOWS:
        cells = []
        for way in ways:
            s = results['ways'][way][f'{low}-{high}']
            cells.append(f"{s['median']:.2f} ms ({s['p95']:.2f}, {s['n']})" if s['n'] else '-')
        lines.append(f'| {low}-{high} | ' + ' | '.join(cells) + ' |')
    lines += ['', f"{results['goals']} Point goals per node (a JPEG in each, answered at once by a scripted server), "
              f"back to back in blocks alternating between the nodes; load {results['load_at_start']} at the start, "
              f"{results['load_at_end']} at the end."]
    return '\n'.join(lines) + '\n'


def text_summary(results: dict[str, Any]) -> str:
    return 'kept goals: ' + '; '.join(
        f"{way}: {window} kept -> {s['median']:.2f} ms" for way, by_window in results['ways'].items()
        for window, s in by_window.items() if s['n'])
