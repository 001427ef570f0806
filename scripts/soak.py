#!/usr/bin/env python3
"""Soak test: goals at a steady rate against a brain node for N minutes, watching the node's resources.

    source scripts/env.sh
    python scripts/soak.py --minutes 10 --rate 2            # starts a tiny vLLM server and a brain node
    python scripts/soak.py --minutes 10 --server http://127.0.0.1:9010/v1 --json soak.json

Goals rotate over the six actions and a few image sizes; every goal must end, and every goal the action server
accepted must end SUCCEEDED (a healthy server answers them all; the others are listed with their status and
message). Goals rejected by the action server when its queue is full are counted, not failed. Every `--sample`
seconds the brain process's RSS, thread count and open file descriptors are read with psutil. The baseline is
taken when the warm-up (the first `--warmup` fraction of the run) ends: RSS must then grow less than 10%, and
threads and descriptors must stay within what the node may legitimately open later (its executor pool's lazily
started threads; one kept-alive HTTP connection per concurrent query, opened the first time that many queries
overlap). A leak of one descriptor or thread per goal goes far past those bounds within a minute. The last sample
is taken once the node's /diagnostics say it is idle (nothing in flight, queued or admitted). Exit status 0 when
every check passed; the figures are printed as JSON.
robobrain_ros/test/test_reliability_load.py runs the same thing for 75 s in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

ACTIONS = ('point', 'ground', 'trajectory', 'affordance', 'plan', 'ask')
SIZES = ((320, 240), (640, 480), (424, 240), (256, 256))
RSS_GROWTH_LIMIT = 0.10
IDLE_DIAGNOSTICS = {'requests in flight': '0', 'queue depth': '0', 'goals admitted': '0'}   # a node at rest


@dataclass
class Sample:
    t: float        # [s] since the start
    rss_mib: float
    threads: int
    fds: int


@dataclass
class SoakResult:
    seconds: float
    rate: float
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unfinished: int = 0                                  # accepted goals without a terminal status: must be 0
    statuses: dict[str, int] = field(default_factory=dict)   # terminal status -> goals
    not_succeeded: list[dict] = field(default_factory=list)  # accepted goals that did not succeed: what they said
    codes: dict[str, int] = field(default_factory=dict)      # QueryStatus code of the ended goals -> goals
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    baseline: Sample | None = None
    final: Sample | None = None
    peak_warmup_threads: int = 0
    peak_warmup_fds: int = 0
    thread_bound: int = 0
    fd_bound: int = 0
    rss_growth: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ('samples', 'baseline', 'final')}
        out['baseline'] = self.baseline.__dict__ if self.baseline else None
        out['final'] = self.final.__dict__ if self.final else None
        out['samples'] = [s.__dict__ for s in self.samples]
        out['ok'] = self.ok
        return out


def _sample(process, start: float) -> Sample:
    return Sample(t=round(time.monotonic() - start, 1), rss_mib=round(process.memory_info().rss / 2**20, 1),
                  threads=process.num_threads(), fds=process.num_fds())


def run_soak(client, pid: int, seconds: float, rate: float, sample_period: float = 5.0, warmup: float = 0.25,
             result_timeout: float = 180.0, seed: int = 0, executor_threads: int = 0, connection_slots: int = 0,
             log=lambda message: None, brain_name: str = '/robobrain', idle_timeout: float = 30.0) -> SoakResult:
    """Send goals to the brain behind client (a BrainClient) for seconds at rate [goals/s]; watch process pid.

    executor_threads and connection_slots: see resource_failures. brain_name: the node's fully qualified name,
    whose /diagnostics must say it is idle (up to idle_timeout [s]) before the last sample.
    """
    import psutil
    from action_msgs.msg import GoalStatus
    from std_msgs.msg import Header

    from robobrain_interfaces.msg import QueryStatus
    from robobrain_ros.brain_client import STATUS_NAMES
    from robobrain_ros.harness.camera_publisher import test_image
    from robobrain_ros.node.image_conversion import rgb_to_image_msg

    code_names = {getattr(QueryStatus, n): n for n in dir(QueryStatus) if n.isupper() and not n.startswith('_')
                  and isinstance(getattr(QueryStatus, n), int)}
    images = [rgb_to_image_msg(test_image(w, h, seed=i), Header(frame_id='soak_camera'))
              for i, (w, h) in enumerate(SIZES)]
    rng = random.Random(seed)
    process = psutil.Process(pid)
    result = SoakResult(seconds=seconds, rate=rate)
    idle = _IdleWatch(client.node, brain_name)
    handles = []
    start = time.monotonic()
    next_goal = next_sample = start
    warmup_end = start + warmup * seconds
    while (now := time.monotonic()) < start + seconds:
        if now >= next_sample:
            sample = _sample(process, start)
            result.samples.append(sample)
            if now <= warmup_end:
                result.peak_warmup_threads = max(result.peak_warmup_threads, sample.threads)
                result.peak_warmup_fds = max(result.peak_warmup_fds, sample.fds)
            elif result.baseline is None:
                result.baseline = sample
            log(f'{sample.t:7.1f} s  rss {sample.rss_mib:7.1f} MiB  threads {sample.threads:3d}  '
                f'fds {sample.fds:3d}  goals sent {len(handles)}')
            next_sample += sample_period
        if now >= next_goal:
            action = ACTIONS[len(handles) % len(ACTIONS)]
            goal = client.goal(action, f'soak goal {len(handles)}: the {rng.choice(["cup", "mug", "box"])}',
                               image=rng.choice(images), timeout=60.0)
            handles.append(client.send(action, goal))
            next_goal += 1.0 / rate
        time.sleep(max(0.0, min(next_goal, next_sample) - time.monotonic()))

    result.sent = len(handles)
    latencies = []
    deadline = time.monotonic() + result_timeout
    for handle in handles:
        try:
            outcome = handle.wait(max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            result.unfinished += 1
            continue
        if not outcome.accepted:
            result.rejected += 1
            continue
        result.accepted += 1
        name = STATUS_NAMES.get(outcome.status, str(outcome.status))
        result.statuses[name] = result.statuses.get(name, 0) + 1
        code = code_names.get(outcome.answer.info.status.code, str(outcome.answer.info.status.code))
        result.codes[code] = result.codes.get(code, 0) + 1
        if outcome.status not in (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED,
                                  GoalStatus.STATUS_CANCELED):
            result.unfinished += 1
        elif outcome.status != GoalStatus.STATUS_SUCCEEDED:
            result.not_succeeded.append({'instruction': outcome.answer.info.instruction, 'status': name,
                                         'code': code, 'message': outcome.answer.info.status.message})
        latencies.append(outcome.seconds)
    # The last goals' results are in; the node may still be finishing them (outputs, bookkeeping). The last sample
    # waits until its /diagnostics say nothing is in flight, queued or admitted.
    if not idle.wait(idle_timeout):
        result.failures.append(f'the node was not idle {idle_timeout:g} s after the last result: {idle.values}')
    idle.close()
    result.final = _sample(process, start)
    result.samples.append(result.final)
    if latencies:
        latencies.sort()
        result.latency_p50_s = round(statistics.median(latencies), 3)
        result.latency_p95_s = round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3)

    result.failures.extend(outcome_failures(result))
    result.baseline = result.baseline or result.samples[0]
    result.failures.extend(resource_failures(result, executor_threads, connection_slots))
    if not process.is_running():
        result.failures.append('the brain process died')
    return result


def outcome_failures(result: SoakResult) -> list[str]:
    """The checks on how the goals ended (result.sent, accepted, rejected, unfinished, not_succeeded set)."""
    failures = []
    if result.unfinished:
        failures.append(f'{result.unfinished} goals without a terminal status')
    if result.not_succeeded:
        shown = '; '.join(f"{g['instruction']!r}: {g['status']} {g['code']} {g['message']!r}"
                          for g in result.not_succeeded[:20])
        failures.append(f'{len(result.not_succeeded)} of {result.accepted} accepted goals did not succeed'
                        f"{' (the first 20)' if len(result.not_succeeded) > 20 else ''}: {shown}")
    if result.accepted + result.rejected + result.unfinished != result.sent:
        failures.append('goals lost: accepted + rejected + unfinished != sent')
    return failures


class _IdleWatch:
    """The brain's /diagnostics: whether its model server status says nothing is in flight, queued or admitted."""

    def __init__(self, node, brain_name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        self.values: dict[str, str] = {}
        self._name = f'{brain_name}: model server'
        self._node = node
        self._subscription = node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 10)

    def _on(self, msg) -> None:
        for status in msg.status:
            if status.name == self._name:
                self.values = {kv.key: kv.value for kv in status.values}

    def idle(self) -> bool:
        values = self.values
        return all(values.get(k) == v for k, v in IDLE_DIAGNOSTICS.items())

    def wait(self, timeout: float) -> bool:
        from robobrain_ros.harness.brain_process import wait_until
        return wait_until(self.idle, timeout, period=0.1)

    def close(self) -> None:
        self._node.destroy_subscription(self._subscription)


def resource_failures(result: SoakResult, executor_threads: int, connection_slots: int) -> list[str]:
    """The growth checks on a finished soak (result.samples, .baseline and .final set); sets the bounds used.

    executor_threads: the size of the node's executor pool (max_concurrent + max_queued + 4), whose threads
    start lazily when that many callbacks first run at once (a load spike): the thread count may reach the
    count at the start plus this, never more.
    connection_slots: the HTTP connections the node may keep alive (queries.max_concurrent per server). aiohttp
    opens one the first time that many queries overlap, which can happen after the warm-up, and keeps it, so
    the descriptor count may exceed the warm-up peak by this much, never more.
    """
    failures = []
    base, final, first = result.baseline, result.final, result.samples[0]
    result.rss_growth = round((final.rss_mib - base.rss_mib) / base.rss_mib, 4)
    if result.rss_growth >= RSS_GROWTH_LIMIT:
        failures.append(f'RSS grew {result.rss_growth:.1%} after the warm-up (limit {RSS_GROWTH_LIMIT:.0%})')
    result.thread_bound = max(result.peak_warmup_threads, base.threads, first.threads + executor_threads)
    peak_threads = max(s.threads for s in result.samples)
    if peak_threads > result.thread_bound:
        failures.append(f'threads grew past {result.thread_bound}: {peak_threads}')
    result.fd_bound = max(result.peak_warmup_fds, base.fds) + connection_slots
    if final.fds > result.fd_bound:
        failures.append(f'file descriptors grew past {result.fd_bound}: {final.fds} at the end (warm-up peak '
                        f'{result.peak_warmup_fds}, {connection_slots} connection slots)')
    return failures


def brain_params(base_url: str) -> dict:
    # Every goal must succeed: the tiny model's random weights answer "nothing found" ([]: NOT_FOUND, ABORTED) to
    # point and trajectory goals (all 50 of them in a 75 s run) unless the answer constraint leaves that out.
    return {'server.base_urls': [base_url], 'model.max_tokens': 48, 'model.temperature': 0.0,
            'model.allow_empty_answer': False,
            'queries.max_concurrent': 4, 'queries.max_queued': 16, 'topics.image': '/soak/image',
            'topics.compressed_image': '', 'topics.depth': '', 'topics.camera_info': ''}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=2.0, help='goals per second (default 2)')
    parser.add_argument('--sample', type=float, default=10.0, help='[s] between resource samples')
    parser.add_argument('--warmup', type=float, default=0.2, help='fraction of the run before the baseline')
    parser.add_argument('--server', help='OpenAI base URL of a running server (default: start the tiny vLLM)')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)

    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(100, 200)))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    from robobrain_ros.brain_client import BrainClient
    from robobrain_ros.harness.brain_process import BrainProcess

    server = None
    if args.server:
        base_url = args.server
    else:
        from robobrain_ros.harness.tiny_server import start_tiny_server
        server = start_tiny_server()
        base_url = server.base_url
        print(f'tiny vLLM server at {base_url} (started in {server.startup_s:.0f} s)', file=sys.stderr)
    log_dir = tempfile.mkdtemp(prefix='robobrain-soak-')
    brain = BrainProcess(brain_params(base_url), name='robobrain_soak', log_dir=log_dir).start()
    client = BrainClient('/robobrain_soak', node_name='soak_client')
    try:
        if not client.wait_for_server('point', 60.0):
            print(f'the brain did not come up (log {brain.log_path})', file=sys.stderr)
            return 2
        params = brain_params(base_url)
        result = run_soak(client, brain.process.pid, args.minutes * 60.0, args.rate, args.sample, args.warmup,
                          executor_threads=params['queries.max_concurrent'] + params['queries.max_queued'] + 4,
                          connection_slots=params['queries.max_concurrent'] * len(params['server.base_urls']),
                          log=lambda m: print(m, file=sys.stderr, flush=True), brain_name=brain.full_name)
    finally:
        client.close()
        brain.stop()
        if server is not None:
            server.stop()
    figures = result.as_dict()
    figures['brain_log'] = str(brain.log_path)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    for failure in result.failures:
        print('FAIL: ' + failure, file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == '__main__':
    sys.exit(main())
