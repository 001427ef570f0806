"""Load: a burst of 200 goals, cancel storms, and a short soak, against real brain node processes.

The 200-goal burst runs against the scripted fault-injection server (robobrain_ros.harness.scripted_server)
answering each request in about a second: what is tested is the node's admission and bookkeeping, and a
fixed service time keeps the queue full whatever the machine's speed. The cancel storm and the soak run
against the real vLLM server, whose slots must be freed when a stream is cancelled.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path

from action_msgs.msg import GoalStatus
from reliability_support import process_figures
from std_msgs.msg import Header

from robobrain_interfaces.msg import QueryStatus
from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.harness.scripted_server import Reply, ScriptedServer
from robobrain_ros.node.image_conversion import rgb_to_image_msg

SUCCEEDED, ABORTED, CANCELED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED, GoalStatus.STATUS_CANCELED
TERMINAL = (SUCCEEDED, ABORTED, CANCELED)
SOAK_SECONDS = 75.0
REPO = Path(__file__).resolve().parents[2]


def small_image(seed: int = 0):
    return rgb_to_image_msg(test_image(64, 48, seed=seed), Header(frame_id='load_camera'))


def test_200_goals_at_once_bounded_queue_explicit_rejections_all_end(start_brain):
    with ScriptedServer(default=Reply(text='[(10, 20)]', chunks=4, chunk_delay=0.25)) as server:
        brain = start_brain({'server.base_urls': [server.base_url], 'queries.max_concurrent': 4,
                                       'queries.max_queued': 16, 'topics.image': '/rel_load/image',
                                       'topics.compressed_image': '', 'topics.depth': '', 'topics.camera_info': ''},
                                      name='rb_burst')
        images = [small_image(seed) for seed in range(4)]
        handles = [brain.send('point', brain.goal('point', f'burst {i}', image=images[i % 4], timeout=120.0))
                   for i in range(200)]
        for h in handles:
            h.wait_accepted(120.0)   # raises TimeoutError for a goal that got neither accept nor reject
        accepted = [h for h in handles if h.outcome.accepted]
        rejected = [h for h in handles if not h.outcome.accepted]
        outcomes = [h.wait(300.0) for h in accepted]

        assert len(accepted) + len(rejected) == 200
        assert len(rejected) >= 100, len(rejected)          # 4 running + 16 queued, a second each
        assert len(accepted) >= 20, len(accepted)
        assert all(o.status == SUCCEEDED for o in outcomes), {o.answer.info.status.message for o in outcomes}
        assert [o.answer.info.instruction for o in outcomes] == [h.outcome.answer.info.instruction for h in accepted]
        assert len(server.requests) == len(accepted)       # rejected goals never reached the server
        # The server saw max_concurrent requests open at once, never more.
        assert server.max_in_flight == 4, server.max_in_flight
        log = brain.process.log()
        assert 'goal rejected: ' in log and '(max_concurrent + max_queued = 20)' in log
        # Accepting again once the burst has drained.
        assert brain.query('point', 'after the burst', image=images[0], wait_timeout=60.0).status == SUCCEEDED
        assert brain.process.alive()


# Forced long generations (the tiny model's context is 4096 tokens; the small test images take ~100): long
# enough that a loaded CI machine still cancels or kills them mid-generation.
LONG_GENERATION_TOKENS = 3800
LONG_GENERATION = {'model.structured_outputs': False, 'model.max_tokens': LONG_GENERATION_TOKENS,
                   'model.extra_body': f'{{"min_tokens": {LONG_GENERATION_TOKENS}}}'}


def test_cancel_storm_every_goal_ends_and_vllm_frees_its_slots(start_brain, vllm_server):
    brain = start_brain({'server.base_urls': [vllm_server.base_url], **LONG_GENERATION,
                                   'queries.max_concurrent': 4, 'queries.max_queued': 16,
                                   'topics.image': '/rel_storm/image', 'topics.compressed_image': '',
                                   'topics.depth': '', 'topics.camera_info': ''}, name='rb_storm')
    rng = random.Random(6)
    before = process_figures(brain.process.process.pid)
    for storm in range(3):
        handles = []
        for i in range(20):
            # Most goals carry an image; a few wait for a camera frame that never comes.
            image = small_image(i) if i % 5 else None
            handles.append(brain.send('point', brain.goal('point', f'storm {storm} goal {i}', image=image,
                                                          timeout=120.0)))
        assert all(h.wait_accepted(60.0) for h in handles)
        # Cancel in a random order at random moments: while waiting for a frame, queued, or generating. The
        # pause between two cancels is the stimulus (cancels spread over the goals' stages), not a wait for
        # anything.
        for handle in rng.sample(handles, len(handles)):
            time.sleep(rng.uniform(0.0, 0.05))
            handle.cancel()
        outcomes = [h.wait(180.0) for h in handles]
        described = [(o.status, o.answer.info.status.code, o.answer.info.status.message,
                      o.answer.info.completion_tokens) for o in outcomes]
        # Every goal ends. A goal the query pipeline saw canceled must be CANCELED, not ABORTED; a goal that is not
        # CANCELED must have run its whole forced generation (it finished before its cancel came): a goal cut
        # off otherwise (e.g. aborted while waiting for a frame or mid-stream) fails here.
        assert all(o.status in TERMINAL for o in outcomes), described
        assert all(o.status == CANCELED for o in outcomes if o.answer.info.status.code == QueryStatus.CANCELED), \
            described
        assert all(o.answer.info.completion_tokens == LONG_GENERATION_TOKENS for o in outcomes
                   if o.status != CANCELED), described
        # The storm must hit goals in flight, not only ones already done (how many depends on the machine).
        assert sum(o.status == CANCELED for o in outcomes) >= 8, [o.answer.info.status for o in outcomes]
    # vLLM saw the streams close and aborted the requests: nothing left running or waiting there.
    idle = ('vllm:num_requests_running', 'vllm:num_requests_waiting')
    assert wait_until(lambda: all(v == 0 for k, v in vllm_server.metrics().items() if k.startswith(idle)), 30.0,
                      period=0.5), {k: v for k, v in vllm_server.metrics().items() if k.startswith(idle)}
    # The node is idle and holds no descriptor it did not hold before the storms, but the HTTP connections to vLLM
    # it may keep alive: up to max_concurrent (4). Measured: 27 -> 27 and 27 -> 26 (a canceled stream's
    # connection is closed, not kept).
    after = process_figures(brain.process.process.pid)
    print(f'\ncancel storm: node figures before {before}, after {after}')
    assert after['fds'] <= before['fds'] + 4, (before, after)
    log = brain.process.log()
    assert 'Traceback' not in log, log[-3000:]
    assert brain.process.alive()


def load_soak_script():
    spec = importlib.util.spec_from_file_location('soak', REPO / 'scripts' / 'soak.py')
    soak = importlib.util.module_from_spec(spec)
    sys.modules['soak'] = soak      # dataclasses look their module up there
    spec.loader.exec_module(soak)
    return soak


def soak_with_descriptors(soak, warmup_fds: list[int], later_fds: list[int]):
    samples = [soak.Sample(t=5.0 * i, rss_mib=400.0, threads=20, fds=n) for i, n in enumerate(warmup_fds + later_fds)]
    result = soak.SoakResult(seconds=75.0, rate=2.0, samples=samples, peak_warmup_fds=max(warmup_fds),
                             peak_warmup_threads=20)
    result.baseline, result.final = samples[len(warmup_fds)], samples[-1]
    return result


def test_soak_allows_a_connection_opened_after_the_warm_up_and_fails_a_descriptor_leak():
    # A fresh-clone CI run failed the short soak with 'file descriptors grew: 28 at the end, warm-up peak 27':
    # one more kept-alive HTTP connection, opened when four queries first overlapped after the warm-up.
    soak = load_soak_script()
    one_more_connection = soak_with_descriptors(soak, [25, 27, 27], [27, 28, 28])
    assert soak.resource_failures(one_more_connection, executor_threads=24, connection_slots=4) == []
    assert one_more_connection.fd_bound == 31
    # One descriptor per goal (a socket or file never closed) at 2 goals/s is far past any slot count.
    leak = soak_with_descriptors(soak, [25, 27, 27], [27, 60, 100])
    failures = soak.resource_failures(leak, executor_threads=24, connection_slots=4)
    assert len(failures) == 1 and failures[0].startswith('file descriptors grew past 31: 100'), failures


def test_soak_fails_when_accepted_goals_do_not_succeed_and_names_them():
    # Every goal ended (none unfinished) but ABORTED: the soak used to pass on that.
    soak = load_soak_script()
    aborted = soak.SoakResult(seconds=75.0, rate=2.0, sent=3, accepted=3, statuses={'aborted': 3},
                              not_succeeded=[{'instruction': f'soak goal {i}', 'status': 'aborted',
                                              'code': 'SERVER_UNREACHABLE', 'message': 'connection refused'}
                                             for i in range(3)])
    [failure] = soak.outcome_failures(aborted)
    assert failure.startswith('3 of 3 accepted goals did not succeed: ') and "'soak goal 2': aborted " \
        "SERVER_UNREACHABLE 'connection refused'" in failure, failure
    assert soak.outcome_failures(soak.SoakResult(seconds=75.0, rate=2.0, sent=3, accepted=2, rejected=1,
                                                 statuses={'succeeded': 2})) == []


def test_short_soak_steady_rate_no_lost_goals_no_growth(start_brain, vllm_server):
    soak = load_soak_script()
    params = soak.brain_params(vllm_server.base_url)
    brain = start_brain(params, name='rb_soak')
    pool = params['queries.max_concurrent'] + params['queries.max_queued'] + 4
    result = soak.run_soak(brain, brain.process.process.pid, SOAK_SECONDS, rate=2.0, sample_period=5.0, warmup=0.3,
                           executor_threads=pool, connection_slots=params['queries.max_concurrent'],
                           brain_name='/rb_soak')
    print('\nshort soak:', {k: v for k, v in result.as_dict().items() if k != 'samples'})
    assert result.unfinished == 0 and result.accepted + result.rejected == result.sent
    assert result.sent >= SOAK_SECONDS * 2.0 * 0.9
    assert result.accepted > result.sent // 2, result.as_dict()
    # A healthy server answers every goal: all SUCCEEDED (the failure names the others, with their messages).
    assert result.statuses == {'succeeded': result.accepted}, (result.statuses, result.not_succeeded)
    assert result.ok, result.failures
