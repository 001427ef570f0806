"""brain.launch.py and config/brain.rviz, without the `launch` packages (they have no PyPI wheels here).

The launch file's decisions live in robobrain_ros.launch_plan and are tested as functions; the launch file itself
is checked by its syntax tree (one brain Node built in an OpaqueFunction, no code built from argument strings).
How it was run by hand with the upstream launch tools: docs/RELIABILITY.md ("Launch file").
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
import yaml

from robobrain_ros import launch_plan
from robobrain_ros.launch_plan import LaunchArgumentError, parse_server_urls, plan_launch

PACKAGE = Path(__file__).resolve().parents[1]
LAUNCH_FILE = PACKAGE / 'launch' / 'brain.launch.py'
RVIZ_FILE = PACKAGE / 'config' / 'brain.rviz'
SERVE_CONFIGS = PACKAGE / 'config' / 'serve'


def arguments(**given: str) -> dict[str, str]:
    """The launch arguments as the launch file passes them: every one, defaults as declared."""
    values = {'config': str(PACKAGE / 'config' / 'brain.yaml'), 'server_url': '', 'model': '', 'namespace': '',
              'image': '', 'compressed_image': '', 'camera_info': '', 'depth': '', 'target_frame': '',
              'use_rviz': 'false',
              'serve': 'false', 'serve_config': ''}
    values.update(given)
    return values


def plan(share_dir: Path | str = PACKAGE, environ: dict | None = None, rviz_installed: bool = True, **given: str):
    return plan_launch(arguments(**given), str(share_dir), environ or {}, lambda: rviz_installed)


# ---------------------------------------------------------------- server_url
def test_comma_separated_server_url_is_the_failover_list_in_order():
    assert parse_server_urls('http://10.0.0.5:9010/v1, http://10.0.0.6:9010/v1') == [
        'http://10.0.0.5:9010/v1', 'http://10.0.0.6:9010/v1']
    assert plan(server_url='http://a:1/v1,https://b/v1').overrides['server.base_urls'] == ['http://a:1/v1',
                                                                                         'https://b/v1']


def test_empty_server_url_keeps_the_params_file():
    assert parse_server_urls('') == [] and parse_server_urls(' , ') == []
    assert 'server.base_urls' not in plan().overrides


@pytest.mark.parametrize('text, says', [
    ("http://a:9010/v1'", 'quote'),                       # pasted into Python code, this crashed the launch
    ('http://a:9010/v1,,http://b:9010/v1', 'URL 2 of 3 is empty'),
    ('http://a:9010/v1,', 'URL 2 of 2 is empty'),
    ('notaurl', 'http://host:port/v1'),
    ('ftp://a/v1', 'http://host:port/v1'),
    ('http://a:port/v1', 'not a URL'),
])
def test_a_bad_server_url_fails_the_launch_naming_the_url(text, says):
    with pytest.raises(LaunchArgumentError) as error:
        parse_server_urls(text)
    assert says in str(error.value) and 'server_url' in str(error.value)


# ---------------------------------------------------------------- serve:=true
SMOKE = str(SERVE_CONFIGS / 'cpu_smoke.yaml')


def test_serve_true_points_the_node_at_the_served_port():
    """Before: serve:=true served on 18000 (cpu_smoke.yaml) while the node asked 9010 (brain.yaml)."""
    served = yaml.safe_load((SERVE_CONFIGS / 'cpu_smoke.yaml').read_text())['serve'][0]['engine_args']
    chosen = plan(serve='true', serve_config=SMOKE).overrides['server.base_urls']
    assert chosen == [f"http://{served['host']}:{served['port']}/v1"] == ['http://127.0.0.1:18000/v1']
    cuda = plan(serve='true', serve_config=str(SERVE_CONFIGS / 'robobrain2_7b_cuda.yaml'))
    assert cuda.overrides['server.base_urls'] == ['http://127.0.0.1:9010/v1']


def test_serve_true_with_a_given_server_url_keeps_it():
    assert plan(serve='true', serve_config=SMOKE, server_url='http://10.0.0.5:9010/v1').overrides[
        'server.base_urls'] == ['http://10.0.0.5:9010/v1']


def test_serve_true_names_the_model_it_serves_and_needs_a_config():
    """Before: serve:=true without serve_config silently served the tiny random-weight CPU model."""
    with pytest.raises(LaunchArgumentError, match='serve:=true needs serve_config:=<serve YAML>, the model to serve'):
        plan(serve='true')
    cuda = plan(serve='true', serve_config=str(SERVE_CONFIGS / 'robobrain2_7b_cuda.yaml'))
    assert cuda.served.model == 'RoboBrain2.0-7B' and cuda.warnings == []
    smoke = plan(serve='true', serve_config=SMOKE)
    assert any('random weights: its answers mean nothing' in w for w in smoke.warnings), smoke.warnings


def test_the_ready_line_is_what_serve_prints():
    from robobrain_ros.serve import cli
    assert launch_plan.SERVE_READY == f'{cli.PROG}: READY '
    assert launch_plan.serve_ready('loading\nrobobrain_ros.serve: READY http://127.0.0.1:18000/v1 model=m pid=1\n')
    assert not launch_plan.serve_ready('robobrain_ros.serve: starting cpu server: vllm serve ... READY')


def test_serve_config_listening_on_all_interfaces_is_reached_on_loopback(tmp_path):
    config = tmp_path / 'lan.yaml'
    config.write_text('serve:\n  - serve_id: x\n    engine_args: {model: /m, host: 0.0.0.0, port: 9123}\n')
    assert plan(serve='true', serve_config=str(config)).overrides['server.base_urls'] == ['http://127.0.0.1:9123/v1']


def test_an_unusable_serve_config_fails_the_launch(tmp_path):
    two = tmp_path / 'two.yaml'
    two.write_text('serve:\n  - {serve_id: a, engine_args: {model: /m}}\n  - {serve_id: b, engine_args: {model: /m}}\n')
    with pytest.raises(LaunchArgumentError, match='serve_config'):
        plan(serve='true', serve_config=str(two))
    with pytest.raises(LaunchArgumentError, match='cannot read'):
        plan(serve='true', serve_config=str(tmp_path / 'missing.yaml'))


# ---------------------------------------------------------------- other arguments
def test_only_given_arguments_override_the_params_file():
    assert plan().overrides == {}
    assert plan(model='RoboBrain2.0-7B', image='/cam/image_raw', depth='/cam/depth').overrides == {
        'server.model': 'RoboBrain2.0-7B', 'topics.image': '/cam/image_raw', 'topics.depth': '/cam/depth'}
    assert plan(target_frame=' base_link ').overrides == {'frames.target_frame': 'base_link'}


@pytest.mark.parametrize('word, value', [('true', True), ('True', True), ('1', True), ('false', False),
                                         ('0', False), ('', False)])
def test_flags(word, value):
    assert launch_plan.parse_flag('use_rviz', word) is value


def test_a_flag_that_is_no_boolean_is_an_error():
    with pytest.raises(LaunchArgumentError, match='use_rviz'):
        plan(use_rviz='maybe')


# ---------------------------------------------------------------- RViz
def test_use_rviz_without_rviz2_skips_rviz_with_a_warning():
    """Before: the whole launch failed and left the brain node running, orphaned."""
    without = plan(use_rviz='true', rviz_installed=False)
    assert without.rviz is False
    assert any('rviz2 is not installed' in w for w in without.warnings)
    assert plan(use_rviz='true', rviz_installed=True).rviz is True


def test_rviz_is_not_looked_up_unless_asked():
    def lookup() -> bool:
        raise AssertionError('looked up rviz2 without use_rviz:=true')
    assert plan_launch(arguments(), str(PACKAGE), {}, lookup).rviz is False


def test_package_lookup_in_the_ament_index():
    assert launch_plan.package_installed('robobrain_ros') is True
    assert launch_plan.package_installed('robobrain_no_such_package') is False


# ---------------------------------------------------------------- Fast DDS profile
def test_fastdds_profile_of_the_package_unless_the_user_chose_one(tmp_path):
    (tmp_path / 'config').mkdir()
    profile = tmp_path / 'config' / launch_plan.FASTDDS_PROFILE_NAME
    profile.write_text('<profiles/>')
    assert plan(share_dir=tmp_path).node_environment == {'FASTDDS_DEFAULT_PROFILES_FILE': str(profile),
                                                    'FASTRTPS_DEFAULT_PROFILES_FILE': str(profile)}
    for name in launch_plan.FASTDDS_PROFILE_VARIABLES:
        assert plan(share_dir=tmp_path, environ={name: '/mine.xml'}).node_environment == {}


def test_fastdds_profile_variable_follows_the_distributions_fast_dds(tmp_path):
    # Fast DDS 2 (Humble, Jazzy) reads only FASTRTPS_; Fast DDS 3 (Kilted) reads FASTDDS_ and warns in every
    # process when FASTRTPS_ is set.
    (tmp_path / 'config').mkdir()
    profile = str(tmp_path / 'config' / launch_plan.FASTDDS_PROFILE_NAME)
    Path(profile).write_text('<profiles/>')
    assert plan(share_dir=tmp_path, environ={'ROS_DISTRO': 'jazzy'}).node_environment == {
        'FASTRTPS_DEFAULT_PROFILES_FILE': profile}
    assert plan(share_dir=tmp_path, environ={'ROS_DISTRO': 'kilted'}).node_environment == {
        'FASTDDS_DEFAULT_PROFILES_FILE': profile}


def test_missing_fastdds_profile_is_a_warning_not_a_broken_variable(tmp_path):
    missing = plan(share_dir=tmp_path)
    assert missing.node_environment == {}
    assert any(launch_plan.FASTDDS_PROFILE_NAME in w for w in missing.warnings)


def test_fastdds_profile_is_for_the_brain_node_only(tmp_path):
    """Before: LaunchPlan.environment, set by SetEnvironmentVariable for every process the launch starts (serve,
    RViz), each of which then held the profile's whole shared-memory segment in /dev/shm."""
    (tmp_path / 'config').mkdir()
    (tmp_path / 'config' / launch_plan.FASTDDS_PROFILE_NAME).write_text('<profiles/>')
    chosen = plan(share_dir=tmp_path, environ={'ROS_DISTRO': 'kilted'}, serve='true',
                  serve_config=SMOKE, use_rviz='true')
    assert chosen.node_environment == {
        'FASTDDS_DEFAULT_PROFILES_FILE': str(tmp_path / 'config' / launch_plan.FASTDDS_PROFILE_NAME)}
    assert not hasattr(chosen, 'environment'), 'no environment for every process'


# ---------------------------------------------------------------- the launch file itself
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), str(LAUNCH_FILE))


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def keyword(call: ast.Call, name: str):
    return next((ast.literal_eval(k.value) for k in call.keywords if k.arg == name), None)


def test_launch_file_builds_no_code_from_arguments():
    tree = launch_tree()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {'PythonExpression', 'eval', 'exec'}


def test_launch_file_starts_one_brain_node_from_an_opaque_function():
    tree = launch_tree()
    brains = [c for c in calls(tree, 'Node') if keyword(c, 'executable') == 'brain_node']
    assert len(brains) == 1, 'one brain Node (before: four near-copies, one per argument combination)'
    assert calls(tree, 'OpaqueFunction')
    function = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                    and any(c in ast.walk(f) for c in brains))
    assert function.name != 'generate_launch_description', 'the Node must be built at launch time'
    assert any(isinstance(n, ast.Attribute) and n.attr == 'plan_launch' for n in ast.walk(function))


def test_launch_file_declares_what_plan_launch_reads():
    tree = launch_tree()
    table = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(getattr(t, 'id', None) == 'ARGUMENTS' for t in n.targets))
    declared = {ast.literal_eval(k) for k in table.keys}
    assert declared == set(arguments())


# ---------------------------------------------------------------- RViz config
def test_rviz_config_displays_have_a_class_and_the_node_topics():
    """Before: the image display had no Class line, so it parsed as one MarkerArray display on the image topic."""
    config = yaml.safe_load(RVIZ_FILE.read_text())
    displays = config['Visualization Manager']['Displays']
    assert all(d.get('Class', '').startswith('rviz_default_plugins/') for d in displays), displays
    by_class = {}
    for display in displays:
        by_class.setdefault(display['Class'], []).append(display)
    markers, = by_class['rviz_default_plugins/MarkerArray']
    image, = by_class['rviz_default_plugins/Image']
    assert markers['Topic']['Value'] == '/robobrain/markers'
    assert image['Topic']['Value'] == '/robobrain/annotated_image'
    assert len({d['Name'] for d in displays}) == len(displays)
    # The node's names for its (one, topics.*) camera.
    from robobrain_ros.node.camera import DEFAULT_CAMERA, Camera, CameraTopics
    camera = Camera(DEFAULT_CAMERA, CameraTopics('image', '', 'camera_info', 'depth'))
    assert (camera.output_topic('markers'), camera.output_topic('annotated_image')) == ('~/markers',
                                                                                         '~/annotated_image')


# ---------------------------------------------------------------- the launch file run with stand-in launch classes
class Recorded:
    """Stands in for a launch action: keeps what it was built with."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


def stand_in_launch_modules(given: dict[str, str]) -> dict[str, types.ModuleType]:
    """`launch` and `launch_ros` modules with the names brain.launch.py imports (no wheels of them here)."""
    kinds = {}
    modules = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.event_handlers', 'launch.events', 'launch.logging',
        'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
    for module, names in (('launch', ['LaunchDescription']),
                          ('launch.actions', ['DeclareLaunchArgument', 'EmitEvent', 'ExecuteProcess', 'LogInfo',
                                              'OpaqueFunction', 'RegisterEventHandler', 'SetEnvironmentVariable',
                                              'SetLaunchConfiguration']),
                          ('launch.event_handlers', ['OnProcessExit', 'OnProcessIO']),
                          ('launch.events', ['Shutdown']),
                          ('launch_ros.actions', ['Node'])):
        for name in names:
            kinds[name] = type(name, (Recorded,), {})
            setattr(modules[module], name, kinds[name])

    class LaunchConfiguration:
        def __init__(self, name: str) -> None:
            self.name = name

        def perform(self, context) -> str:
            return given[self.name]

    modules['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    modules['launch.logging'].get_logger = lambda name: types.SimpleNamespace(warning=lambda message: None)
    return modules


def run_launch_file(monkeypatch, user_profile: str | None = None, **given: str) -> list[Recorded]:
    """The actions brain.launch.py's OpaqueFunction returns for these arguments, in a shell with no Fast DDS profile
    set or with `user_profile`."""
    for name in launch_plan.FASTDDS_PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if user_profile:
        monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', user_profile)
    monkeypatch.setenv('ROS_DISTRO', 'kilted')
    for name, module in stand_in_launch_modules(arguments(**given)).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(launch_plan, 'package_installed', lambda name: True)   # rviz2 "installed"
    namespace: dict = {'__file__': str(LAUNCH_FILE), '__name__': 'brain_launch'}
    exec(compile(LAUNCH_FILE.read_text(), str(LAUNCH_FILE), 'exec'), namespace)   # noqa: S102 - the repo's own file
    description = namespace['generate_launch_description']()
    opaque, = [a for a in description.args[0] if type(a).__name__ == 'OpaqueFunction']
    return opaque.kwargs['function'](context=None)


def test_launch_gives_the_fastdds_profile_to_the_brain_node_only(monkeypatch):
    """Before: SetEnvironmentVariable for the profile, so serve and RViz each held a 268 MiB segment in /dev/shm."""
    actions = run_launch_file(monkeypatch, serve='true', serve_config=SMOKE, use_rviz='true')
    serve, = [a for a in actions if type(a).__name__ == 'ExecuteProcess']
    brain = started_brain(actions)
    rviz, = [a for a in actions if type(a).__name__ == 'Node']
    assert brain.kwargs['executable'] == 'brain_node' and rviz.kwargs['executable'] == 'rviz2'
    profile = brain.kwargs['additional_env']['FASTDDS_DEFAULT_PROFILES_FILE']
    assert Path(profile).name == launch_plan.FASTDDS_PROFILE_NAME and Path(profile).is_file()
    for other in (serve, rviz):
        assert not other.kwargs.get('additional_env') and not other.kwargs.get('env'), other.kwargs


def test_launch_keeps_a_profile_the_user_chose(monkeypatch):
    actions = run_launch_file(monkeypatch, user_profile='/robot/fastdds.xml')
    assert [type(a).__name__ for a in actions] == ['Node']
    assert actions[0].kwargs['additional_env'] == {}   # the node inherits the user's variable from the launch


def started_brain(actions: list[Recorded]) -> Recorded:
    """The brain Node that the serve output handler starts on the READY line."""
    on_output, = [a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler'
                  and type(a.args[0]).__name__ == 'OnProcessIO']
    started = on_output.kwargs['on_stderr'](types.SimpleNamespace(
        text=b'robobrain_ros.serve: READY http://127.0.0.1:18000/v1 model=tiny pid=7\n'))
    return next(a for a in started if type(a).__name__ == 'Node')


def test_with_serve_the_node_starts_when_the_server_is_ready_and_the_launch_ends_with_it(monkeypatch):
    """Before: the node started beside a loading server (ERROR unreachable meanwhile) and kept running when it died."""
    actions = run_launch_file(monkeypatch, serve='true', serve_config=SMOKE)
    assert 'Node' not in [type(a).__name__ for a in actions], 'the brain node waits for the server'
    serve, = [a for a in actions if type(a).__name__ == 'ExecuteProcess']
    handlers = {type(a.args[0]).__name__: a.args[0] for a in actions if type(a).__name__ == 'RegisterEventHandler'}
    on_output = handlers['OnProcessIO']
    assert on_output.kwargs['target_action'] is serve
    not_yet = types.SimpleNamespace(text=b'robobrain_ros.serve: starting cpu server: vllm serve ...\n')
    assert on_output.kwargs['on_stderr'](not_yet) is None
    brain = started_brain(actions)
    assert brain.kwargs['executable'] == 'brain_node'
    assert on_output.kwargs['on_stderr'](types.SimpleNamespace(
        text=b'robobrain_ros.serve: READY http://127.0.0.1:18000/v1\n')) is None, 'one brain node, once'
    on_exit = handlers['OnProcessExit']
    assert on_exit.kwargs['target_action'] is serve
    assert on_exit.kwargs['on_exit'](types.SimpleNamespace(returncode=0), types.SimpleNamespace(is_shutdown=True)) \
        is None, 'a Ctrl-C stops the server too: no "server exited" message then'
    ending = on_exit.kwargs['on_exit'](types.SimpleNamespace(returncode=1), types.SimpleNamespace(is_shutdown=False))
    assert [type(a).__name__ for a in ending] == ['LogInfo', 'EmitEvent']
    assert 'the model server exited (code 1): ending the launch' in ending[0].kwargs['msg']
    said = [a.kwargs['msg'] for a in actions if type(a).__name__ == 'LogInfo']
    assert said[0].startswith(f'serving robobrain-tiny ({SMOKE}) at http://127.0.0.1:18000/v1;'), said
