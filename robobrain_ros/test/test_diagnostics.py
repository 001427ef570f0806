"""The /diagnostics statuses from plain inputs: the server's level and message for each state the monitor can be
in, and a camera's. (The node publishes them at 1 Hz: test_node_outputs and test_node_negotiation read them.)"""

from diagnostic_msgs.msg import DiagnosticStatus

from robobrain_ros.model_client.chat_client import ServerHealth
from robobrain_ros.node import parameters
from robobrain_ros.node.camera import Camera, CameraTopics
from robobrain_ros.node.diagnostics import GoalCounts, camera_status, server_status
from robobrain_ros.node.server_monitor import ServerSnapshot

SETTINGS = parameters.node_settings({**{name: spec.default for name, spec in parameters.PARAMETERS.items()},
                                     'cameras.names': []})
GOALS = GoalCounts(admitted=1, in_flight=1, waiting=0, ended={'succeeded': 3, 'aborted': 1}, last_latency_ms=12.5,
                   last_error='TIMEOUT: slow')
URL = 'http://127.0.0.1:9010/v1'


def status(snapshot: ServerSnapshot) -> DiagnosticStatus:
    return server_status('/robobrain', snapshot, SETTINGS, GOALS)


def test_server_states_and_their_levels():
    assert (status(ServerSnapshot()).level, status(ServerSnapshot()).message) == (DiagnosticStatus.WARN,
                                                                                  'not checked yet')
    down = status(ServerSnapshot(health=[ServerHealth(URL, reachable=False, healthy=False,
                                                      error='connection refused')]))
    assert down.level == DiagnosticStatus.ERROR and down.message == 'server unreachable: connection refused'
    up = [ServerHealth(URL, reachable=True, healthy=True, models=['m'])]
    negotiating = status(ServerSnapshot(health=up))
    assert (negotiating.level, negotiating.message) == (DiagnosticStatus.WARN, 'negotiating with the server')
    failed = status(ServerSnapshot(health=up, negotiation_errors={URL: 'bad JSON'}))
    assert failed.level == DiagnosticStatus.ERROR and failed.message == 'negotiation failed: bad JSON'


def test_server_values_name_the_goals_and_the_last_error():
    values = {kv.key: kv.value for kv in status(ServerSnapshot()).values}
    assert values['goals succeeded'] == '3' and values['last error'] == 'TIMEOUT: slow'
    assert values['last latency [ms]'] == '12.5' and values['requests in flight'] == '1'
    assert values['server version'] == '' and values['thinking'] == ''   # negotiation has not run


def test_a_named_camera_has_its_own_status():
    camera = Camera('wrist', CameraTopics('wrist/image', '', 'wrist/camera_info', ''), colour_topic='/wrist/image')
    found = camera_status('/robobrain', camera, now=10.0)
    assert found.name == '/robobrain: camera wrist' and found.hardware_id == '/wrist/image'
    assert found.level == DiagnosticStatus.WARN and found.message == 'no frame received yet'
