#!/usr/bin/env python3
"""Paths (b) and (c) of issue 8, side by side against one running vLLM server.

(b) raw vLLM: the exact body the brain node would send (robobrain_ros.protocol.build_request on the frame
    prepared by prepare_image: pointing, thinking on as the 7B default, greedy, max_tokens = min_tokens = 64,
    streamed), built once and POSTed directly with a bare aiohttp client.
(c) the node: the brain node as its own process (robobrain_ros.harness.brain_process.BrainProcess, `python -m
    robobrain_ros.node.brain_node --ros-args --params-file ...`) and Point goals from BrainClient, each goal
    carrying the 1280x720 rgb8 frame (--node-image goal), the same frame as a JPEG CompressedImage
    (--node-image compressed: what a compressed camera topic gives a client; the node passes it through
    without decoding) or reading the newest frame of the camera topic, published at 15 Hz by this script
    (--node-image topic). Timed from send_goal to the result.

--profile-node PY_SPY: each timed burst of the largest level through the node is sampled by py-spy (non-blocking,
250 Hz, per thread) in the node and in this process, alternately only the thread holding the GIL (--gil) and
every thread, idle or not, into LOG_DIR/pyspy_LABEL_N_REP_{node,client}_{gil,all}.txt (collapsed stacks): where
the time goes in a burst. The node then also reports each garbage collection over 10 ms in its log (GC_WATCH).

Single goals: --single requests, (b) and (c) alternating one by one. N concurrent: N at once, wall time to
the last answer, --reps times, (b) and (c) alternating. Time to first token: the server's own histogram
(vllm:time_to_first_token_seconds, /metrics) over each block, plus each client's view. Image budgets
(--budgets): the same at --budget-level concurrent goals for each pixel budget.

    python3 scripts/gpu/bench_serving.py --base-url http://127.0.0.1:9010/v1 --label default --out b_c.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / 'robobrain_ros'))

# after the sys.path inserts above: scripts/gpu's common and the repository's package without installing it
import aiohttp  # noqa: E402
import cv2  # noqa: E402
from common import (  # noqa: E402
    machine_facts,
    make_frame,
    stats_ms,
    write_json,
)

from robobrain_ros.bench.common import GPU_FORCED_TOKENS, INSTRUCTION  # noqa: E402
from robobrain_ros.model_client.sse import DONE, Usage, stream_delta, stream_line  # noqa: E402
from robobrain_ros.protocol import (  # noqa: E402
    ConstraintDialect,
    ImageBudget,
    ModelFamily,
    Task,
    build_request,
    prepare_image,
)

DEFAULT_BUDGET = ImageBudget().max_pixels          # 1003520: the node's default
BUDGETS = {'default': DEFAULT_BUDGET, '401408': 401408, 'raw': 16777216}


# ----------------------------------------------------------------------------------------------- metrics
def scrape(root_url: str) -> dict[str, float]:
    """The server's counters we use, summed over label sets: {name or name{le=..}: value}; {} for a server
    without Prometheus metrics (a scripted stand-in that isolates the node's own time)."""
    try:
        with urllib.request.urlopen(root_url + '/metrics', timeout=10) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        return {}
    out: dict[str, float] = {}
    wanted = ('vllm:time_to_first_token_seconds', 'vllm:e2e_request_latency_seconds', 'vllm:prompt_tokens_total',
              'vllm:generation_tokens_total', 'vllm:request_success_total', 'vllm:request_prefill_time_seconds',
              'vllm:request_decode_time_seconds', 'vllm:request_queue_time_seconds')
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        m = re.match(r'([a-zA-Z_:]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|\+Inf)', line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or '', m.group(3)
        key = name
        le = re.search(r'le="([^"]+)"', labels)
        if name.endswith('_bucket') and le:
            key = f'{name}{{le={le.group(1)}}}'
        elif name.endswith('_bucket'):
            continue
        try:
            out[key] = out.get(key, 0.0) + float(value)
        except ValueError:
            pass
    return out


def metric_delta(before: dict, after: dict) -> dict:
    """Mean TTFT / e2e / prefill over the requests between two scrapes, and TTFT quantiles from the buckets."""
    def d(k):
        return after.get(k, 0.0) - before.get(k, 0.0)
    res = {}
    for short, base in (('ttft', 'vllm:time_to_first_token_seconds'), ('e2e', 'vllm:e2e_request_latency_seconds'),
                        ('prefill', 'vllm:request_prefill_time_seconds'),
                        ('decode', 'vllm:request_decode_time_seconds'),
                        ('queue', 'vllm:request_queue_time_seconds')):
        n = d(base + '_count')
        if n > 0:
            res[f'{short}_mean_ms'] = round(d(base + '_sum') / n * 1e3, 2)
            res[f'{short}_n'] = int(n)
    buckets = sorted((float(k.split('le=')[1].rstrip('}')), d(k)) for k in after
                      if k.startswith('vllm:time_to_first_token_seconds_bucket') and '+Inf' not in k)
    n = d('vllm:time_to_first_token_seconds_count')
    for q in (0.5, 0.95):
        if n > 0:
            res[f'ttft_p{int(q * 100)}_le_ms'] = next((round(le * 1e3, 1) for le, c in buckets if c >= q * n), None)
    prompt, gen = d('vllm:prompt_tokens_total'), d('vllm:generation_tokens_total')
    if res.get('ttft_n'):
        res['prompt_tokens_per_req'] = round(prompt / res['ttft_n'], 1)
        res['gen_tokens_per_req'] = round(gen / res['ttft_n'], 1)
    return res


# ----------------------------------------------------------------------------------------------- (b) raw
class RawClient:
    """POST the node's body to /v1/chat/completions, read the stream; a bare aiohttp client."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.loop = asyncio.new_event_loop()
        self.session = None
        self.loop.run_until_complete(self._open())

    async def _open(self):
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def _one(self, body: dict) -> dict:
        start = time.perf_counter()
        first = 0.0
        usage = Usage()
        chunks = 0
        text = []
        async with self.session.post(self.url, json=body, timeout=aiohttp.ClientTimeout(total=600)) as resp:
            if resp.status != 200:
                raise RuntimeError(f'HTTP {resp.status}: {(await resp.text())[:500]}')
            async for line in resp.content:
                event = stream_line(line)
                if event is DONE:
                    break
                if event is None:
                    continue
                delta = stream_delta(event)   # the text the node's client reads (content; no reasoning parser)
                usage = delta.usage or usage
                if delta.text:
                    chunks += 1
                    text.append(delta.text)
                    if not first:
                        first = time.perf_counter()
        end = time.perf_counter()
        return {'seconds': end - start, 'first_token_s': (first - start) if first else None,
                'prompt_tokens': usage.prompt_tokens, 'completion_tokens': usage.completion_tokens,
                'chunks': chunks, 'chars': len(''.join(text))}

    def run(self, body: dict, n: int) -> tuple[float, list[dict]]:
        async def go():
            start = time.perf_counter()
            results = await asyncio.gather(*(self._one(body) for _ in range(n)))
            return time.perf_counter() - start, results
        return self.loop.run_until_complete(go())

    def close(self):
        self.loop.run_until_complete(self.session.close())


def raw_body(rgb, budget_name: str, model: str) -> tuple[dict, tuple[int, int]]:
    """The node's request body for this frame and budget; 'raw' sends the frame as captured (no resize)."""
    extra = {'min_tokens': GPU_FORCED_TOKENS}
    if budget_name == 'raw':
        _, jpg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        h, w = rgb.shape[:2]
        data_url = 'data:image/jpeg;base64,' + base64.b64encode(jpg).decode()
        # build_request checks that the image is already at the model's size; a raw frame is not, so the
        # same body is assembled from a budget-checked build with the image swapped for the raw one.
        ref = prepare_image(rgb, ImageBudget(max_pixels=BUDGETS['raw']))
        built = build_request(Task.POINTING, INSTRUCTION, [ref], True, ModelFamily.ROBOBRAIN_2_0, model=model,
                              budget=ImageBudget(max_pixels=BUDGETS['raw']), constraint=ConstraintDialect.NONE,
                              max_tokens=GPU_FORCED_TOKENS, temperature=0.0, extra=extra)
        body = json.loads(json.dumps(built.body))
        body['messages'][0]['content'][0]['image_url']['url'] = data_url
        return body, (w, h)
    budget = ImageBudget(max_pixels=BUDGETS[budget_name])
    prepared = prepare_image(rgb, budget)
    built = build_request(Task.POINTING, INSTRUCTION, [prepared], True, ModelFamily.ROBOBRAIN_2_0, model=model,
                          budget=budget, constraint=ConstraintDialect.NONE, max_tokens=GPU_FORCED_TOKENS,
                          temperature=0.0, extra=extra)
    return built.body, prepared.sent_size


# ----------------------------------------------------------------------------------------------- (c) node
GC_WATCH = '''import gc, sys, time
_start = {}
def _watch(phase, info):
    if phase == 'start':
        _start['t'] = time.perf_counter()
    elif 't' in _start:
        ms = (time.perf_counter() - _start.pop('t')) * 1e3
        if ms > 10:
            print(f"GC_WATCH generation {info['generation']} {ms:.1f} ms collected {info['collected']}", file=sys.stderr,
                  flush=True)
gc.callbacks.append(_watch)
'''  # noqa: E501 - the generated sitecustomize's source, kept verbatim


def write_gc_watch(log_dir: Path) -> Path:
    """A sitecustomize that makes a Python process report each garbage collection over 10 ms on stderr."""
    folder = log_dir / 'gc_watch'
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'sitecustomize.py').write_text(GC_WATCH)
    return folder


class NodeRunner:
    def __init__(self, base_url: str, model: str, rgb, budget: int, image_mode: str, log_dir: Path,
                 max_concurrent: int, gc_watch: bool = False) -> None:
        import rclpy  # noqa: F401 - fail early when the ROS runtime is missing
        from std_msgs.msg import Header

        from robobrain_ros.brain_client import BrainClient
        from robobrain_ros.harness.brain_process import BrainProcess
        from robobrain_ros.node.image_conversion import rgb_to_image_msg

        self.image_mode = image_mode
        params = {
            'server.base_urls': [base_url], 'server.model': model,
            'model.thinking': 'on', 'model.structured_outputs': False, 'model.temperature': 0.0,
            'model.max_tokens': GPU_FORCED_TOKENS, 'model.extra_body': json.dumps({'min_tokens': GPU_FORCED_TOKENS}),
            'model.max_pixels': int(budget), 'queries.max_concurrent': max_concurrent,
            'queries.max_queued': 256, 'queries.goal_timeout': 300.0, 'queries.max_image_age': 2.0,
        }
        env = {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
        if gc_watch:
            env['PYTHONPATH'] = os.pathsep.join(p for p in (str(write_gc_watch(log_dir)), os.environ.get('PYTHONPATH'))
                                                if p)
        self.proc = BrainProcess(params, log_dir=log_dir, env=env)
        self.proc.start()
        self.client = BrainClient(node_name='gpu_bench_client')
        # BrainClient's action services keep 1000 requests (robobrain_ros.action_services), as the node's: a burst
        # of 32 goals loses no goal response (with rclpy's default depth 10 it did, in the first GPU run).
        if not self.client.wait_for_server('point', 60.0):
            raise RuntimeError('the brain node did not offer /robobrain/point within 60 s:\n' + self.proc.log()[-3000:])
        self.msg = rgb_to_image_msg(rgb, Header(frame_id='camera_optical_frame'))
        self.compressed = None
        if image_mode == 'compressed':
            from sensor_msgs.msg import CompressedImage
            _, jpg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            self.compressed = CompressedImage(header=Header(frame_id='camera_optical_frame'), format='jpeg',
                                              data=jpg.tobytes())
        self._stop = threading.Event()
        self._pub_thread = None
        if image_mode == 'topic':
            from rclpy.qos import qos_profile_sensor_data
            from sensor_msgs.msg import Image
            self.pub = self.client.node.create_publisher(Image, '/image', qos_profile_sensor_data)
            self._pub_thread = threading.Thread(target=self._publish, daemon=True)
            self._pub_thread.start()
            time.sleep(1.0)

    def _publish(self):
        clock = self.client.node.get_clock()
        while not self._stop.is_set():
            self.msg.header.stamp = clock.now().to_msg()
            self.pub.publish(self.msg)
            self._stop.wait(1 / 15)

    def run(self, n: int) -> tuple[float, list[dict]]:
        image = self.msg if self.image_mode == 'goal' else None
        start = time.perf_counter()
        handles = [self.client.send('point', self.client.goal('point', INSTRUCTION, image=image, timeout=300.0,
                                                              compressed_image=self.compressed))
                   for _ in range(n)]
        outcomes = []
        for h in handles:
            try:
                outcomes.append(h.wait(max(5.0, 240.0 - (time.perf_counter() - start))))
            except TimeoutError:
                outcomes.append(h.outcome)   # counted as not 'succeeded'/'aborted' below
        for o in outcomes:
            if o.answer is None and o.seconds == 0.0:
                o.seconds = time.perf_counter() - start
        wall = time.perf_counter() - start
        results = []
        for o in outcomes:
            info = o.answer.info if o.answer is not None else None
            results.append({
                'seconds': o.seconds, 'accepted_seconds': o.accepted_seconds, 'status': o.status_name,
                'code': int(info.status.code) if info else -1,
                'message': info.status.message[:200] if info else '',
                'first_token_s': (info.latency.first_token / 1e3) if info else None,
                'node_total_s': (info.latency.total / 1e3) if info else None,
                'preprocess_ms': info.latency.preprocess if info else None,
                # the node's stages, to place a slow goal's time (image wait, request slot, server, parsing)
                'stages_ms': {stage: round(float(getattr(info.latency, stage)), 2) for stage in (
                    'image_wait', 'preprocess', 'queue', 'first_token', 'generation', 'postprocess', 'total')}
                if info else None,
                'prompt_tokens': int(info.prompt_tokens) if info else 0,
                'completion_tokens': int(info.completion_tokens) if info else 0,
                'model_size': [int(info.model_width), int(info.model_height)] if info else None,
            })
        return wall, results

    def close(self):
        self._stop.set()
        if self._pub_thread:
            self._pub_thread.join(2.0)
        self.client.close()
        self.proc.stop()


class NodeSampler:
    """py-spy sampling the node process and this one (the client, the camera publisher) while one burst runs
    (collapsed stacks, a file per process and burst)."""

    def __init__(self, py_spy: str, node_pid: int, out_dir: Path) -> None:
        self.py_spy, self.out_dir = py_spy, out_dir
        self.pids = {'node': node_pid, 'client': os.getpid()}

    def sampled(self, run, n: int, tag: str, gil_only: bool):
        samplers = {}
        for who, pid in self.pids.items():
            out = self.out_dir / f'pyspy_{tag}_{who}_{"gil" if gil_only else "all"}.txt'
            cmd = [self.py_spy, 'record', '--pid', str(pid), '--rate', '250', '--nonblocking', '--threads',
                   '--format', 'raw', '--output', str(out)] + (['--gil'] if gil_only else ['--idle'])
            samplers[who] = (out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        time.sleep(0.5)   # attached before the burst starts
        try:
            return run(n)
        finally:
            for who, (out, sampler) in samplers.items():
                sampler.send_signal(signal.SIGINT)
                try:
                    _, err = sampler.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    sampler.kill()
                    err = 'py-spy did not stop'
                if sampler.returncode not in (0, None) or not out.exists():
                    print(f'py-spy ({tag} {who}): rc {sampler.returncode}: {err.strip()[-300:]}', flush=True)


# ----------------------------------------------------------------------------------------------- driver
def summarize(walls: list[float], results: list[dict], n: int, metrics: dict) -> dict:
    ok_codes = {}
    for r in results:
        key = r.get('status', 'ok') + (f"/{r['code']}" if 'code' in r else '')
        ok_codes[key] = ok_codes.get(key, 0) + 1
    firsts = [r['first_token_s'] for r in results if r.get('first_token_s')]
    out = {'n': n, 'walls_s': [round(w, 3) for w in walls], 'wall_median_s': round(statistics.median(walls), 3),
           'goals_per_s': round(n / statistics.median(walls), 3), 'latency': stats_ms([r['seconds'] for r in results]),
           'client_first_token': stats_ms(firsts), 'server': metrics, 'outcomes': ok_codes,
           'prompt_tokens': sorted({r['prompt_tokens'] for r in results}),
           'completion_tokens': sorted({r['completion_tokens'] for r in results})}
    pre = [r['preprocess_ms'] for r in results if r.get('preprocess_ms')]
    if pre:
        out['node_preprocess_ms_median'] = round(statistics.median(pre), 2)
    goals = [dict(r['stages_ms'], seconds=round(r['seconds'], 4), accepted_seconds=round(r['accepted_seconds'], 4))
             for r in results if r.get('stages_ms')]
    if goals:
        out['node_goals'] = goals
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--base-url', required=True)
    parser.add_argument('--model', default='RoboBrain2.0-7B')
    parser.add_argument('--label', default='default')
    parser.add_argument('--modes', default='raw,node')
    parser.add_argument('--single', type=int, default=16)
    parser.add_argument('--levels', default='8,32')
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--budgets', default='', help="comma list of default,401408,raw ('' = skip)")
    parser.add_argument('--budget-level', type=int, default=8)
    parser.add_argument('--budget-reps', type=int, default=2)
    parser.add_argument('--node-image', choices=['goal', 'compressed', 'topic'], default='goal')
    parser.add_argument('--max-concurrent', type=int, default=32, help='node queries.max_concurrent')
    parser.add_argument('--log-dir', type=Path, default=Path('/tmp/gpu_bench_logs'))
    parser.add_argument('--profile-node', metavar='PY_SPY', default='',
                        help='py-spy executable: sample the node and this process in each timed burst of the largest '
                        'level')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    root = args.base_url.rstrip('/').removesuffix('/v1')
    modes = [m for m in args.modes.split(',') if m]
    levels = [int(x) for x in args.levels.split(',') if x]
    rgb = make_frame()
    result = {'label': args.label, 'machine': machine_facts(), 'base_url': args.base_url,
              'frame': list(rgb.shape[1::-1]), 'instruction': INSTRUCTION, 'forced_tokens': GPU_FORCED_TOKENS,
              'node_image': args.node_image, 'modes': {}, 'budgets': {}}
    t_begin = time.perf_counter()

    raw = RawClient(args.base_url) if 'raw' in modes else None
    body, sent = raw_body(rgb, 'default', args.model)
    result['sent_size_default'] = list(sent)
    node = None
    if 'node' in modes:
        node = NodeRunner(args.base_url, args.model, rgb, DEFAULT_BUDGET, args.node_image,
                          args.log_dir / f'{args.label}_default', args.max_concurrent, gc_watch=bool(args.profile_node))
    sampler = None
    if node and args.profile_node:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        sampler = NodeSampler(args.profile_node, node.proc.process.pid, args.log_dir)
    runners = {}
    if raw:
        runners['raw'] = lambda n: raw.run(body, n)
    if node:
        runners['node'] = node.run

    try:
        # Warm-up: both paths, single and the largest level (not timed).
        for name, run in runners.items():
            for _ in range(args.warmup):
                run(1)
            for lvl in levels:
                run(lvl)
        # Single goals, alternating.
        singles = {name: [] for name in runners}
        single_metrics = {name: [] for name in runners}
        for i in range(args.single):
            order = list(runners) if i % 2 == 0 else list(reversed(runners))
            for name in order:
                before = scrape(root)
                _, res = runners[name](1)
                single_metrics[name].append((before, scrape(root)))
                singles[name].extend(res)
        for name in runners:
            # TTFT over all single requests of this path: first scrape before, sums of per-request deltas.
            agg_before, agg_after = {}, {}
            for b, a in single_metrics[name]:
                for k in set(a) | set(b):
                    agg_before[k] = agg_before.get(k, 0.0)
                    agg_after[k] = agg_after.get(k, 0.0) + a.get(k, 0.0) - b.get(k, 0.0)
            result['modes'].setdefault(name, {})['single'] = summarize(
                [r['seconds'] for r in singles[name]], singles[name], 1, metric_delta(agg_before, agg_after))
        # Concurrent goals, alternating per repetition.
        for lvl in levels:
            walls = {name: [] for name in runners}
            allres = {name: [] for name in runners}
            agg = {name: ({}, {}) for name in runners}
            for rep in range(args.reps):
                order = list(runners) if rep % 2 == 0 else list(reversed(runners))
                for name in order:
                    before = scrape(root)
                    if sampler and name == 'node' and lvl == max(levels):
                        wall, res = sampler.sampled(runners[name], lvl, f'{args.label}_{lvl}_{rep}', rep % 2 == 0)
                    else:
                        wall, res = runners[name](lvl)
                    after = scrape(root)
                    walls[name].append(wall)
                    allres[name].extend(res)
                    b0, a0 = agg[name]
                    for k in set(after) | set(before):
                        a0[k] = a0.get(k, 0.0) + after.get(k, 0.0) - before.get(k, 0.0)
                        b0.setdefault(k, 0.0)
            for name in runners:
                result['modes'][name][str(lvl)] = summarize(walls[name], allres[name], lvl, metric_delta(*agg[name]))
            print(f'[{args.label}] {lvl} concurrent: ' + ', '.join(
                f"{n} {result['modes'][n][str(lvl)]['wall_median_s']} s" for n in runners), flush=True)

        # Image budgets at one concurrency.
        for bname in [b for b in args.budgets.split(',') if b]:
            entry = {}
            bbody, bsent = raw_body(rgb, bname, args.model)
            bnode = None
            if 'node' in modes:
                if node:
                    node.close()
                    node = None
                bnode = NodeRunner(args.base_url, args.model, rgb, BUDGETS[bname], args.node_image,
                                   args.log_dir / f'{args.label}_budget_{bname}', args.max_concurrent)
                bnode.run(1)
                bnode.run(args.budget_level)   # warm-up
            paths = {}
            if raw:
                raw.run(bbody, args.budget_level)
                paths['raw'] = lambda n, body=bbody: raw.run(body, n)
            if bnode:
                paths['node'] = bnode.run
            for name, run in paths.items():
                walls, allres, b_all, a_all = [], [], {}, {}
                for _ in range(args.budget_reps):
                    before = scrape(root)
                    wall, res = run(args.budget_level)
                    after = scrape(root)
                    walls.append(wall)
                    allres.extend(res)
                    for k in set(after) | set(before):
                        a_all[k] = a_all.get(k, 0.0) + after.get(k, 0.0) - before.get(k, 0.0)
                        b_all.setdefault(k, 0.0)
                entry[name] = summarize(walls, allres, args.budget_level, metric_delta(b_all, a_all))
            entry['max_pixels'] = BUDGETS[bname]
            entry['sent_size_raw_path'] = list(bsent)
            result['budgets'][bname] = entry
            print(f'[{args.label}] budget {bname}: ' + ', '.join(
                f"{n} {entry[n]['wall_median_s']} s, prompt {entry[n]['prompt_tokens']}, "
                f"ttft {entry[n]['server'].get('ttft_mean_ms')} ms" for n in paths), flush=True)
            if bnode:
                bnode.close()
    finally:
        if node:
            node.close()
        if raw:
            raw.close()

    # (c) against (b): positive = the node is slower.
    cmp = {}
    if 'raw' in result['modes'] and 'node' in result['modes']:
        r, n = result['modes']['raw'], result['modes']['node']
        cmp['single_median_pct'] = round(
            (n['single']['latency']['median_ms'] / r['single']['latency']['median_ms'] - 1) * 100, 2)
        for lvl in levels:
            cmp[f'wall_{lvl}_pct'] = round((n[str(lvl)]['wall_median_s'] / r[str(lvl)]['wall_median_s'] - 1) * 100, 2)
    result['node_vs_raw'] = cmp
    result['bench_s'] = round(time.perf_counter() - t_begin, 1)
    write_json(args.out, result)
    print(f'[{args.label}] node vs raw: {cmp}; bench took {result["bench_s"]} s', flush=True)
    for name, m in result['modes'].items():
        s = m['single']
        print(f"[{args.label}] {name}: single median {s['latency']['median_ms']} ms p95 {s['latency']['p95_ms']} ms, "
              f"server TTFT mean {s['server'].get('ttft_mean_ms')} ms, prompt {s['prompt_tokens']}, "
              f"completion {s['completion_tokens']}, outcomes {s['outcomes']}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
