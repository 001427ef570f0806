"""The model server's API key stays secret: no ROS parameter, no topic, no log line, no printed command.

Before: `server.api_key` was a ROS parameter (`ros2 param get` read it, /parameter_events announced it) and the
serve tool turned `engine_args.api_key` into `--api-key KEY` on the command line it printed (dry run too); the
consistency tool took `--api-key KEY` (in every process list) and sent it to both servers; ClientConfig's repr
printed the key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robobrain_ros.consistency.cli import main as consistency_main
from robobrain_ros.consistency.collect import GenerationSettings, SampleAnswer
from robobrain_ros.consistency.reference_file import save_reference
from robobrain_ros.consistency.samples import SHIPPED_SAMPLES, load_samples
from robobrain_ros.harness.scripted_server import ScriptedServer
from robobrain_ros.model_client import ClientConfig
from robobrain_ros.model_client.api_key import insecure_key_urls
from robobrain_ros.model_client.api_key import load_api_key as client_load_api_key
from robobrain_ros.node.parameters import PARAMETERS, load_api_key
from robobrain_ros.protocol import ModelFamily, ModelSize, ModelSpec
from robobrain_ros.serve.api_key import take_api_key
from robobrain_ros.serve.config import ConfigError

KEY = 'rb-test-key-5f1c2a9e'
PACKAGE = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the node: where the key comes from
def test_no_parameter_holds_the_key():
    assert 'server.api_key' not in PARAMETERS
    assert PARAMETERS['server.api_key_env'].default == 'ROBOBRAIN_API_KEY'
    assert PARAMETERS['server.api_key_env'].read_only and PARAMETERS['server.api_key_file'].read_only
    documented = yaml.safe_load((PACKAGE / 'config' / 'brain.yaml').read_text())['/**']['ros__parameters']['server']
    assert 'api_key' not in documented and documented['api_key_env'] == 'ROBOBRAIN_API_KEY'


def test_key_from_the_environment(monkeypatch):
    monkeypatch.setenv('RB_TEST_KEY', KEY + '\n')
    assert load_api_key('RB_TEST_KEY', '') == KEY
    monkeypatch.delenv('RB_TEST_KEY')
    assert load_api_key('RB_TEST_KEY', '') == ''
    assert load_api_key('', '') == ''


def test_key_file_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('RB_TEST_KEY', 'from-the-environment')
    path = tmp_path / 'key'
    path.write_text(f'  {KEY}  \n')
    assert load_api_key('RB_TEST_KEY', str(path)) == KEY


@pytest.mark.parametrize('kind, says', [('missing', 'No such file'), ('directory', 'directory'),
                                        ('empty', 'is empty')])
def test_unreadable_key_file_is_a_clear_error(tmp_path, kind, says):
    path = tmp_path if kind == 'directory' else tmp_path / kind
    if kind == 'empty':
        path.write_text('\n')
    with pytest.raises(ValueError) as error:
        load_api_key('', str(path))
    assert 'server.api_key_file' in str(error.value) and str(path) in str(error.value)
    assert says in str(error.value)


def test_unreadable_key_file_names_no_key(tmp_path):
    path = tmp_path / 'key'
    path.write_bytes(b'\xff' + KEY.encode())
    with pytest.raises(ValueError) as error:
        load_api_key('', str(path))
    assert KEY not in str(error.value)


# ---------------------------------------------------------------- the HTTP client
def test_client_config_never_prints_the_key():
    config = ClientConfig(base_urls=('http://127.0.0.1:9010/v1',), api_key=KEY)
    for text in (repr(config), str(config), repr([config])):
        assert KEY not in text and "api_key='***'" in text and 'connect_timeout=3.0' in text
    assert "api_key=''" in repr(ClientConfig(base_urls=('http://127.0.0.1:9010/v1',)))
    assert config.api_key == KEY   # the client itself still sends it


def test_a_key_over_plain_http_to_another_host_is_named():
    urls = ('http://127.0.0.1:9010/v1', 'http://127.8.0.1/v1', 'http://localhost:9010/v1', 'http://[::1]:9010/v1',
            'https://gpu.example.com/v1', 'http://gpu.example.com:9010/v1', 'http://10.0.0.5:9010/v1',
            'http://LOCALHOST.example.com/v1', 'http://gpu.example.com:9010/v1')
    assert insecure_key_urls(urls, KEY) == ['http://gpu.example.com:9010/v1', 'http://10.0.0.5:9010/v1',
                                            'http://LOCALHOST.example.com/v1']
    assert insecure_key_urls(urls, '') == []   # no key, nothing to leak


def test_the_key_loader_needs_no_ros():
    # The consistency tool loads keys the node's way and must run where ROS is not installed.
    code = ('import sys; import robobrain_ros.consistency.cli, robobrain_ros.model_client.api_key; '
            "assert 'rclpy' not in sys.modules, 'rclpy imported'")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_moved_loader_names_the_option_it_was_given(tmp_path):
    with pytest.raises(ValueError, match='--candidate-api-key-file') as error:
        client_load_api_key('', str(tmp_path / 'missing'), file_option='--candidate-api-key-file')
    assert 'server.api_key_file' not in str(error.value)


# ---------------------------------------------------------------- the consistency tool: a key per server
def test_the_consistency_tool_takes_no_key_on_its_command_line(capsys):
    with pytest.raises(SystemExit) as exit_status:
        consistency_main(['--reference', 'http://127.0.0.1:1/v1', '--candidate', 'http://127.0.0.1:2/v1',
                          '--api-key', KEY])
    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert '--reference-api-key-env' in err and '--candidate-api-key-file' in err and KEY not in err


def authorizations(server: ScriptedServer) -> set[str]:
    return {received.headers.get('authorization', '') for received in server.requests}


def test_each_server_gets_its_own_key(monkeypatch, tmp_path, capsys):
    candidate_key = 'rb-candidate-key-77d0'
    monkeypatch.setenv('RB_REFERENCE_KEY', KEY)
    key_file = tmp_path / 'candidate.key'
    key_file.write_text(candidate_key + '\n')
    keys = ['--reference-api-key-env', 'RB_REFERENCE_KEY', '--candidate-api-key-file', str(key_file)]
    with ScriptedServer() as reference, ScriptedServer() as candidate:
        # A scripted server gives no teacher-forcing numbers: the run stops (exit 2) after the reference's first
        # answer, which shows what the reference received.
        consistency_main(['--reference', reference.base_url, '--candidate', candidate.base_url, *keys])
        assert authorizations(reference) == {f'Bearer {KEY}'}
        # The candidate alone, against a saved reference: it is asked (and then refuses the made-up fingerprint).
        saved = tmp_path / 'reference.json'
        answers = [SampleAnswer(sample.id, '[(1, 2)]', 10, 'not this question', (280, 280), (280, 280), [])
                   for sample in load_samples(SHIPPED_SAMPLES)]
        save_reference(saved, 'm', ModelSpec(ModelFamily.ROBOBRAIN_2_0, ModelSize.B7, 'parameter'),
                       GenerationSettings(), answers)
        consistency_main(['--reference-file', str(saved), '--candidate', candidate.base_url, *keys])
        assert authorizations(candidate) == {f'Bearer {candidate_key}'}
    assert KEY not in capsys.readouterr().err


# ---------------------------------------------------------------- the serve tool
def test_engine_args_key_leaves_the_command_line():
    key, rest = take_api_key(None, {'model': '/m', 'api_key': KEY, 'port': 9010}, {})
    assert key == KEY and rest == {'model': '/m', 'port': 9010}
    assert take_api_key(None, {'model': '/m', 'api_key': [KEY]}, {})[0] == KEY
    assert take_api_key(None, {'model': '/m'}, {'ROBOBRAIN_API_KEY': KEY})[0] == KEY
    assert take_api_key(KEY, {'model': '/m', 'api_key': KEY}, {'ROBOBRAIN_API_KEY': 'other'})[0] == KEY
    assert take_api_key(None, {'model': '/m'}, {})[0] is None


@pytest.mark.parametrize('config_key, args_key, says', [
    (None, ['a', 'b'], 'holds one'), ('a', 'b', 'two different'), (None, 5, 'must be a string')])
def test_ambiguous_keys_are_config_errors(config_key, args_key, says):
    with pytest.raises(ConfigError, match=says):
        take_api_key(config_key, {'model': '/m', 'api_key': args_key}, {})


def serve_dry_run(config: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ('ROBOBRAIN_API_KEY', 'VLLM_API_KEY')}
    environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(PACKAGE), environ.get('PYTHONPATH')) if p)
    environ.update(env)
    return subprocess.run([sys.executable, '-m', 'robobrain_ros.serve', '--config', str(config), '--platform',
                           'cuda', '--python', '/nonexistent/python', '--dry-run'],
                          env=environ, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('where', ['engine_args', 'top-level env reference', 'environment'])
def test_dry_run_prints_no_key(tmp_path, where):
    entry = {'serve_id': 'x', 'engine_args': {'model': f'/weights/{KEY}-not-here', 'port': 9010}}
    config = {'serve': [entry]}
    env = {}
    if where == 'engine_args':
        entry['engine_args']['api_key'] = KEY
    elif where == 'top-level env reference':
        config['api_key'] = '${RB_SERVE_KEY}'
        env['RB_SERVE_KEY'] = KEY
    else:
        env['ROBOBRAIN_API_KEY'] = KEY
    path = tmp_path / 'serve.yaml'
    path.write_text(yaml.safe_dump(config))
    result = serve_dry_run(path, **env)
    assert result.returncode == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    assert 'VLLM_API_KEY=***' in result.stdout.splitlines()
    command = result.stdout.splitlines()[-1]
    assert '--api-key' not in command and '/weights/***-not-here' in command   # the key is masked even there


# ---------------------------------------------------------------- the node process, against a server that wants the key
@pytest.fixture(scope='module')
def keyed_server():
    """A second real vLLM (the tiny model) that answers only requests carrying KEY."""
    from robobrain_ros.harness.tiny_server import ServerSetupError, start_tiny_server
    try:
        server = start_tiny_server(extra_env={'VLLM_API_KEY': KEY})
    except ServerSetupError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


def test_node_sends_the_key_from_its_environment_and_shows_it_nowhere(start_brain, ros_client, keyed_server):
    import urllib.error
    import urllib.request

    from rcl_interfaces.msg import Parameter, ParameterEvent, ParameterType, ParameterValue
    from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
    from std_msgs.msg import Header
    from test_node_lifecycle import call

    from robobrain_interfaces.msg import QueryStatus
    from robobrain_ros.harness.brain_process import wait_until
    from robobrain_ros.harness.camera_publisher import test_image
    from robobrain_ros.node.image_conversion import rgb_to_image_msg

    with pytest.raises(urllib.error.HTTPError) as refused:   # the server really wants the key
        urllib.request.urlopen(keyed_server.base_url + '/models', timeout=10)
    assert refused.value.code == 401

    node = ros_client.node
    events: list = []
    subscription = node.create_subscription(ParameterEvent, '/parameter_events', events.append, 1000)
    name = 'keyed_brain'
    try:
        brain = start_brain({'server.base_urls': [keyed_server.base_url], 'model.max_tokens': 16,
                             'topics.image': '/keyed/image', 'topics.depth': '', 'topics.camera_info': ''},
                            name=name, env={'ROBOBRAIN_API_KEY': KEY})
        image = rgb_to_image_msg(test_image(), Header(frame_id='keyed_camera'))
        outcome = brain.query('point', 'the cup', image=image, wait_timeout=120.0)
        # The model answered (random weights: points or an empty list), so the server took the key.
        answered = (QueryStatus.OK, QueryStatus.NOT_FOUND)
        assert outcome.answer.info.status.code in answered, (outcome.status_name, outcome.answer.info.status)
        assert outcome.answer.info.raw_completion

        names = call(node, ListParameters, f'/{name}/list_parameters', ListParameters.Request()).result.names
        values = call(node, GetParameters, f'/{name}/get_parameters', GetParameters.Request(names=names)).values
        assert len(values) == len(names) > 10
        assert not [n for n, v in zip(names, values) if KEY in str(v)]
        # Declaration events may come before this subscription matched; a change made now is surely seen.
        temperature = Parameter(name='model.temperature',
                                value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.5))
        assert call(node, SetParameters, f'/{name}/set_parameters',
                    SetParameters.Request(parameters=[temperature])).results[0].successful
        assert wait_until(lambda: any(e.node == f'/{name}' for e in events), 10.0)
        assert not [e for e in events if KEY in str(e)]
        assert KEY not in brain.process.log()
    finally:
        node.destroy_subscription(subscription)
