"""One replay from start to end: check the inputs, start (or find) the node, play the bag with the goals at their
times, record what the node publishes, and write OUT.

Everything is written into OUT.partial, renamed to OUT only when the replay ran to its end: OUT is complete or
absent. A failed goal is a result like any other (in the report with its status); a replay that cannot go on raises
ReplayError with the exit status of its kind (exit_codes.py).
"""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import exit_codes
from .bag import Bag, BagError
from .definitions import DefinitionError
from .exit_codes import ReplayError
from .goals import GoalsError, GoalSpec, in_send_order, load_goals, past_the_end, unknown_cameras
from .params import ParamsError, load_params_file, split_full_name
from .report import (
    BAG_DIR,
    IMAGES_DIR,
    NO_RESULT,
    REJECTED,
    SUCCEEDED,
    GoalRecord,
    RunInfo,
    write_report,
    write_results,
)
from .schedule import ReplayClock, timeline
from .topics import plan_topics

STARTUP_TIMEOUT = 60.0     # [s] for the node's action servers to answer
MATCH_TIMEOUT = 10.0       # [s] for the node's subscriptions and publishers to match the replay's
CLOCK_PERIOD = 0.02        # [s] wall time between two /clock messages while waiting
RESULT_GRACE = 30.0        # [s] a goal's result may come this long after its timeout before it counts as lost
ANNOTATION_WAIT = 3.0      # [s] after the last result, for the annotated images still on their way
LEAD_IN = 0.2              # [s] wall time between the first /clock and the bag's first message
SERVER_FAILURES = ('SERVER_UNREACHABLE', 'SERVER_ERROR')


@dataclass
class ReplayOptions:
    bag: Path
    goals: Path
    out: Path
    server_url: str = ''
    params_file: Path | None = None
    rate: float = 1.0
    brain: str = ''                   # a running node's full name; '' = start one
    node_name: str = 'robobrain'      # the node the replay starts
    startup_timeout: float = STARTUP_TIMEOUT


@dataclass
class _Sent:
    goal: GoalSpec
    record: GoalRecord
    handle: object
    deadline: float             # time.monotonic() after which the result counts as lost
    done: bool = False


@dataclass
class _State:
    sent: list[_Sent] = field(default_factory=list)
    finished_order: list[GoalRecord] = field(default_factory=list)


def _say(message: str) -> None:
    print(f'brain_replay: {message}', flush=True)


def _actions():
    from robobrain_ros.action_table import ACTIONS
    names = [action.name for action in ACTIONS]
    with_3d = {action.name for action in ACTIONS if hasattr(action.action_type.Goal(), 'target_frame')}
    return ACTIONS, names, with_3d


def _server_reachable(urls: list[str], timeout: float = 3.0) -> str:
    """'' when one of the servers answers HTTP at all (any status: an API key may be missing here), else why not."""
    problems = []
    for url in urls:
        try:
            urllib.request.urlopen(url.rstrip('/') + '/models', timeout=timeout).close()
            return ''
        except urllib.error.HTTPError:
            return ''
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append(f'{url}: {getattr(exc, "reason", exc)}')
    return '; '.join(problems)


class Replay:
    def __init__(self, options: ReplayOptions, say: Callable[[str], None] = _say) -> None:
        self.o = options
        self.say = say
        self.warnings: list[str] = []
        self.partial = Path(str(options.out) + '.partial')
        self._process = None
        self._context = None
        self._client = None
        self._node = None
        self._executor = None
        self._spin_thread = None
        self._output = None
        self._recorder = None
        self._player = None
        self._prefetch = None
        self._bag: Bag | None = None

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.say(f'WARNING: {message}')

    # ------------------------------------------------------------------ checks before anything starts
    def _check_inputs(self):
        o = self.o
        if not o.rate > 0:
            raise ReplayError(exit_codes.BAD_INPUT, f'--rate must be > 0, got {o.rate:g}')
        if o.out.exists():
            raise ReplayError(exit_codes.BAD_INPUT, f'{o.out} exists already: give a new --out (the replay never '
                                                    'overwrites an output)')
        actions, names, with_3d = _actions()
        try:
            goals = load_goals(o.goals, names, with_3d)
        except GoalsError as exc:
            raise ReplayError(exit_codes.BAD_INPUT, str(exc)) from None
        self.brain = o.brain or f'/{o.node_name}'
        try:
            split_full_name(self.brain)
            flat = load_params_file(o.params_file, self.brain) if o.params_file else None
        except ParamsError as exc:
            raise ReplayError(exit_codes.BAD_INPUT, str(exc)) from None
        bag = Bag(o.bag)
        try:
            bag.open()
        except BagError as exc:
            raise ReplayError(exit_codes.BAD_BAG, str(exc)) from None
        self._bag = bag
        problem = past_the_end(goals, bag.info.duration)
        if problem:
            raise ReplayError(exit_codes.BAD_INPUT, problem)
        if not bag.definitions_in_bag:
            self.warn(f'{o.bag} carries no message definitions (Humble SQLite 3?): the installed definitions are '
                      'assumed to be the ones it was recorded with')
        return actions, goals, flat

    # ------------------------------------------------------------------ ROS
    def _start_ros(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from robobrain_ros.brain_client import BrainClient
        self._context = Context()
        rclpy.init(context=self._context, signal_handler_options=SignalHandlerOptions.NO)
        tag = uuid.uuid4().hex[:8]
        self._node = rclpy.create_node(f'brain_replay_{tag}', context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._spinning = threading.Event()
        self._spinning.set()

        def spin() -> None:
            while self._spinning.is_set() and self._context.ok():
                try:
                    self._executor.spin_once(timeout_sec=0.1)
                except Exception:  # noqa: BLE001 - shutting down, or one callback's error: keep serving
                    if not self._spinning.is_set():
                        return
        self._spin_thread = threading.Thread(target=spin, daemon=True, name='replay-spin')
        self._spin_thread.start()
        self._client = BrainClient(self.brain, node_name=f'brain_replay_client_{tag}', context=self._context)

    def _node_settings(self, flat):
        from .node_settings import fetch_parameters, settings_from
        if self.o.brain and self.o.server_url:
            self.warn(f'--server-url is for the node the replay starts: {self.brain} asks the servers of its own '
                      'server.base_urls')
        if flat is None and self.o.brain:
            fetched = fetch_parameters(self._node, self.brain, timeout=10.0)
            if fetched is None:
                raise ReplayError(exit_codes.NODE_FAILED, f'no brain node answers at {self.brain} (its parameter '
                                                          'services): is it running, in this ROS_DOMAIN_ID?')
            settings = settings_from(fetched, self.brain)
            if not settings.use_sim_time:
                self.warn(f'{self.brain} does not run with use_sim_time: it measures frame ages against its wall '
                          'clock, so frames stamped in the past (the bag\'s) are too old. Start it with '
                          '-p use_sim_time:=true (or let brain_replay start one)')
            return settings
        flat = dict(flat or {})
        if not self.o.brain:
            flat['use_sim_time'] = True
            flat['autostart'] = True
            if self.o.server_url:
                from robobrain_ros.launch_plan import LaunchArgumentError, parse_server_urls
                try:
                    flat['server.base_urls'] = parse_server_urls(self.o.server_url)
                except LaunchArgumentError as exc:
                    raise ReplayError(exit_codes.BAD_INPUT,
                                      str(exc).replace('server_url:=', '--server-url ')) from None
        self._node_params = flat
        return settings_from(flat, self.brain)

    def _start_node(self) -> None:
        from robobrain_ros.harness.brain_process import BrainProcess
        namespace, name = split_full_name(self.brain)
        self._process = BrainProcess(self._node_params, name=name, namespace=namespace, log_dir=self.partial).start()
        self.say(f'started the brain node {self.brain} (use_sim_time; its log goes into OUT as {name}.log)')

    def _wait_for_node(self, actions) -> None:
        """Until the node's action servers (of the goals' actions) answer; fails fast when the node process exits or
        says its configure failed."""
        end = time.monotonic() + self.o.startup_timeout
        for action in sorted({goal.action for goal in self.goals}):
            while not self._client.wait_for_server(action, min(1.0, max(0.1, end - time.monotonic()))):
                configure_failed = self._process is not None and 'configure failed' in self._process.log()
                if not self._node_alive() or configure_failed or time.monotonic() > end:
                    why = ('its configure failed' if configure_failed else
                           'it exited' if not self._node_alive() else
                           f'no answer on {self.brain}/{action} within {self.o.startup_timeout:g} s')
                    raise ReplayError(exit_codes.NODE_FAILED,
                                      self._node_failure(f'the brain node {self.brain} did not come up: {why}'))

    def _node_alive(self) -> bool:
        return self._process is None or self._process.alive()

    def _node_failure(self, what: str) -> str:
        if self._process is None:
            return f'{what} (is it running, in this ROS_DOMAIN_ID?)'
        code = self._process.process.poll() if self._process.process else None
        tail = '\n'.join(self._process.log().splitlines()[-25:])
        exited = f'; it exited with code {code}' if code is not None else ''
        return f'{what}{exited}. The last lines of its log:\n{tail}'

    def _wait_for_matches(self, plan) -> None:
        camera_topics = [t for t in plan.publish if t not in ('/tf', '/tf_static')]
        end = time.monotonic() + MATCH_TIMEOUT
        while time.monotonic() < end:
            if not self._player.unmatched(camera_topics):
                break
            time.sleep(0.05)
        missing = self._player.unmatched(camera_topics)
        if missing:
            self.warn(f"nothing subscribes to {', '.join(missing)} after {MATCH_TIMEOUT:g} s: the node does not "
                      'listen there' + (' (it does not run with use_sim_time?)' if '/clock' in missing else ''))
        # The recorder's subscriptions must have matched the node's publishers before the first answer.
        while time.monotonic() < end:
            counts = self._recorder.publisher_counts()
            if all(count for topic, count in counts.items() if topic != '/diagnostics'):
                break
            time.sleep(0.05)
        time.sleep(0.2)

    # ------------------------------------------------------------------ the replay
    def _send(self, goal: GoalSpec, state: _State, clock: ReplayClock, actions_by_name) -> None:
        from rclpy.serialization import serialize_message  # noqa: F401 - imported early: used from this thread
        action = actions_by_name[goal.action]
        record = GoalRecord(goal, action.task.value, result_topic=f'/replay/results/{goal.action}')
        record.sent_at = (clock.bag_now_ns(time.monotonic()) - clock.start_ns) / 1e9
        message = self._client.goal(goal.action, goal.instruction, thinking=goal.thinking_code,
                                    max_image_age=goal.max_image_age, timeout=goal.timeout, camera=goal.camera,
                                    target_frame=goal.target_frame)
        handle = self._client.send(goal.action, message)
        timeout = goal.timeout or self.settings.goal_timeout
        state.sent.append(_Sent(goal, record, handle, time.monotonic() + timeout + RESULT_GRACE))
        self.say(f'goal {goal.index} sent at {record.sent_at:.2f} s: {goal.action} "{goal.instruction}"')

    def _collect(self, state: _State, clock: ReplayClock, wait: float = 0.0) -> None:
        """Record the goals that have ended (waiting up to `wait` per goal for one still running)."""
        from rclpy.serialization import serialize_message

        from robobrain_interfaces.msg import QueryStatus
        from robobrain_ros.outcome_summary import message_to_data, status_name
        for sent in state.sent:
            if sent.done:
                continue
            try:
                outcome = sent.handle.wait(wait if wait > 0 else 1e-9)
            except TimeoutError:
                if time.monotonic() > sent.deadline:
                    sent.done = True
                    sent.record.outcome = NO_RESULT
                    sent.record.message = (f'no result within the goal timeout + {RESULT_GRACE:g} s: the result was '
                                           'lost, or the node hangs')
                    state.finished_order.append(sent.record)
                continue
            sent.done = True
            record = sent.record
            record.outcome = outcome.status_name
            record.latency = outcome.seconds
            if outcome.accepted and outcome.answer is not None:
                status = outcome.answer.info.status
                record.status = status_name(status.code, QueryStatus)
                record.status_code = int(status.code)
                record.message = status.message
                record.answer = message_to_data(outcome.answer)
                self._output.write(record.result_topic, clock.bag_now_ns(time.monotonic()),
                                   serialize_message(outcome.answer))
            elif not outcome.accepted:
                record.outcome = REJECTED
                record.message = 'the node rejected the goal (not active, or too many goals in flight)'
            state.finished_order.append(record)
            self.say(f'goal {record.goal.index} {record.outcome}' + (f' ({record.status})' if record.status else '')
                     + (f' in {record.latency:.2f} s' if record.latency is not None else ''))

    def _wait_until(self, due: float, clock: ReplayClock, state: _State) -> None:
        """Sleep until the wall time due, with /clock every CLOCK_PERIOD; the node must stay alive."""
        while True:
            now = time.monotonic()
            self._player.publish_clock(clock.bag_now_ns(now))
            if not self._node_alive():
                raise ReplayError(exit_codes.NODE_FAILED, self._node_failure('the brain node died during the replay'))
            self._collect(state, clock)
            if now >= due:
                return
            time.sleep(min(CLOCK_PERIOD, due - now))

    def _play(self, plan, clock: ReplayClock, state: _State, actions_by_name) -> None:
        from .convert import Converter
        from .player import Prefetcher
        converter = Converter(self._bag.typestore, self._bag.definitions_in_bag)
        self._prefetch = Prefetcher(self._bag, plan.publish, converter)
        clock.begin(time.monotonic() + LEAD_IN)
        self._player.publish_clock(clock.start_ns)
        for event in timeline(self._prefetch, in_send_order(self.goals), clock):
            self._wait_until(clock.wall_at(event.stamp_ns), clock, state)
            if event.kind == 'message':
                topic, message = event.payload
                self._player.publish_clock(event.stamp_ns)
                self._player.publish(topic, message)
            else:
                self._send(event.payload, state, clock, actions_by_name)
        self._player.publish_clock(clock.end_ns)
        for topic, (count, first) in self._prefetch.failed.items():
            self.warn(f'{count} messages of {topic} could not be converted and were skipped (first: {first})')

    def _finish_goals(self, clock: ReplayClock, state: _State) -> None:
        while not all(sent.done for sent in state.sent):
            if not self._node_alive():
                raise ReplayError(exit_codes.NODE_FAILED, self._node_failure('the brain node died during the replay'))
            self._player.publish_clock(clock.end_ns)
            self._collect(state, clock, wait=0.1)

    def _save_images(self, state: _State) -> None:
        import cv2

        from robobrain_ros.node.image_conversion import image_to_rgb

        from .recorder import annotated_topic
        wanted = [(r, annotated_topic(self.brain, r.answer['info']['camera']),
                   r.answer['info']['header']['stamp']['sec'] * 1_000_000_000
                   + r.answer['info']['header']['stamp']['nanosec'])
                  for r in state.finished_order
                  if r.answer and r.answer['info'].get('camera') and r.answer['info'].get('original_width')]
        end = time.monotonic() + ANNOTATION_WAIT
        while time.monotonic() < end and not all(
                self._recorder.has_annotated(topic, stamp, sum(1 for _, t, s in wanted if (t, s) == (topic, stamp)))
                for _, topic, stamp in wanted):
            time.sleep(0.05)
        images = self.partial / IMAGES_DIR
        for record, topic, stamp in wanted:
            image = self._recorder.take_annotated(topic, stamp)
            if image is None:
                continue
            images.mkdir(exist_ok=True)
            name = f'{IMAGES_DIR}/goal_{record.goal.index:02d}_{record.goal.action}.png'
            rgb = image_to_rgb(image.message())
            cv2.imwrite(str(self.partial / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            record.annotated_image = name

    def run(self) -> int:
        started = time.monotonic()
        try:
            actions, self.goals, flat = self._check_inputs()
            return self._run(actions, flat, started)
        except BaseException:
            self._teardown()
            if self.partial.exists():
                shutil.rmtree(self.partial, ignore_errors=True)
            raise
        finally:
            if self._bag is not None:
                self._bag.close()

    def _run(self, actions, flat, started: float) -> int:
        from .output_bag import OutputBag
        from .player import Player
        from .recorder import Recorder, output_topics, result_topics
        o = self.o
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self._start_ros()
        self.settings = settings = self._node_settings(flat)
        for warning in unknown_cameras(self.goals, settings.camera_names):
            self.warn(warning)
        from .convert import Converter
        plan = plan_topics(self._bag.info, settings.cameras,
                           Converter(self._bag.typestore, self._bag.definitions_in_bag).unusable)
        if plan.problem:
            raise ReplayError(exit_codes.NO_CAMERA_TOPIC, plan.problem)
        for warning in plan.warnings:
            self.warn(warning)
        if not o.brain:
            problem = _server_reachable(settings.server_urls)
            if problem:
                raise ReplayError(exit_codes.SERVER_FAILED, f'no model server answers: {problem}. Start one, or give '
                                                            '--server-url URL')
        self.partial.mkdir(parents=True)
        outputs = output_topics(self.brain, settings.camera_names)
        results = result_topics()
        try:
            self._output = OutputBag(self.partial / BAG_DIR,
                                     [f"{k.__module__.split('.')[0]}/msg/{k.__name__}"
                                      for k in {**outputs, **results}.values()])
        except DefinitionError as exc:
            raise ReplayError(exit_codes.BAD_INPUT, f'cannot write the output bag: {exc}') from None
        for topic, kind in results.items():
            self._output.add_topic(topic, f"{kind.__module__.split('.')[0]}/msg/{kind.__name__}")
        info = self._bag.info
        clock = ReplayClock(info.start_ns, info.end_ns, o.rate)
        self._recorder = Recorder(self._node, self._output, outputs, lambda: clock.bag_now_ns(time.monotonic()))
        self._player = Player(self._node, plan.publish)
        if not o.brain:
            self._start_node()
        self._wait_for_node(actions)
        self._wait_for_matches(plan)
        self.say(f'replaying {o.bag} ({info.duration:.2f} s, {len(plan.publish)} topics) at rate {o.rate:g} with '
                 f'{len(self.goals)} goals')
        state = _State()
        actions_by_name = {action.name: action for action in actions}
        try:
            self._play(plan, clock, state, actions_by_name)
        except BagError as exc:
            raise ReplayError(exit_codes.BAD_BAG, str(exc)) from None
        self._finish_goals(clock, state)
        self._save_images(state)
        records = sorted((sent.record for sent in state.sent), key=lambda r: r.goal.index)
        published = self._player.published
        self._teardown()
        code = self._exit_code(records)
        run = RunInfo(bag=str(o.bag), storage=info.storage, bag_start_ns=info.start_ns, bag_duration=info.duration,
                      rate=o.rate, brain=self.brain, started_node=not o.brain,
                      server_urls=list(settings.server_urls) if not o.brain else [],
                      wall_time=time.monotonic() - started, exit_code=code, replayed_topics=dict(plan.publish),
                      skipped_topics=dict(plan.skipped), warnings=list(self.warnings),
                      recorded_topics=dict(self._output.counts), published_messages=published)
        write_results(self.partial, run, records)
        write_report(self.partial, run, records)
        self.partial.rename(o.out)
        ok = sum(1 for r in records if r.outcome == SUCCEEDED)
        self.say(f'{ok} of {len(records)} goals succeeded; wrote {o.out}/ (report.md, results.json, {BAG_DIR}/) in '
                 f'{run.wall_time:.1f} s')
        return code

    @staticmethod
    def _exit_code(records: list[GoalRecord]) -> int:
        if any(r.status in SERVER_FAILURES for r in records):
            return exit_codes.SERVER_FAILED
        if any(r.outcome != SUCCEEDED for r in records):
            return exit_codes.GOALS_FAILED
        return exit_codes.OK

    def _teardown(self) -> None:
        """Stop everything this replay started (idempotent): prefetch, node process, ROS, output bag."""
        import rclpy
        if self._prefetch is not None:
            self._prefetch.close()
            self._prefetch = None
        if self._process is not None:
            code = self._process.stop(timeout=15.0)
            if code not in (0, None):
                self.warnings.append(f'the brain node exited with code {code} when stopped '
                                     f'(log: {self._process.log_path})')
            self._process = None
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        if self._player is not None:
            self._player.close()
            self._player = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._context is not None:
            self._spinning.clear()
            if self._spin_thread is not None:
                self._spin_thread.join(timeout=2.0)
            self._executor.shutdown(timeout_sec=1.0)
            self._node.destroy_node()
            rclpy.try_shutdown(context=self._context)
            self._context = None
        if self._output is not None:
            self._output.close()


def run_replay(options: ReplayOptions, say: Callable[[str], None] = _say) -> int:
    """The replay's exit status; ReplayError (with its status) when it cannot go on."""
    return Replay(options, say).run()
