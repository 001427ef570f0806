"""pytest fixtures for process-level tests of the brain node: real rclpy (Fast DDS), real node processes.

    pytest_plugins = ['vllm_fixture', 'ros_fixtures']      # in robobrain_ros/test/conftest.py

- `ros_client`: a BrainClient (own rclpy Context + node spinning in a thread) shared by the session; tests
  create publishers/subscriptions on `ros_client.node`.
- `start_brain(params, name=...)`: starts a brain node process (--params-file) and waits until its action
  servers answer; stopped with SIGINT at the end of the test module, where it must exit with code 0 within
  STOP_TIMEOUT (else the module's last test errors in teardown, with the node's log).
- `camera`: publishes synthetic frames (and optional depth + camera_info) on the topics a brain listens to.
- `ros_context`: an rclpy Context of the test's own, for in-process tests of rclpy parts (executors, servers).
- at the end of the session, the Fast DDS shared-memory files of processes that are gone (a node stopped with
  SIGKILL, a child ended by os._exit) are removed from /dev/shm (robobrain_ros.harness.shm_cleanup): with the
  large-frame profile each is a 68,612 KiB segment. Those of live processes (this one's, other runs') stay.

ROS traffic stays on loopback, in a DDS domain chosen for this run (ROS_DOMAIN_ID), set before rclpy starts.
"""

from __future__ import annotations

import gc
import os
import random

import pytest

from robobrain_ros.harness.brain_process import BrainProcess
from robobrain_ros.harness.camera_publisher import Camera

STOP_TIMEOUT = 10.0   # [s] from SIGINT to the node's exit, at the end of each test module
_SHM_CLEANED = pytest.StashKey[object]()

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(10, 99)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove what Fast DDS left in /dev/shm for the processes this session killed (their owners are dead)."""
    from robobrain_ros.harness.shm_cleanup import clean
    session.config.stash[_SHM_CLEANED] = clean()


def pytest_terminal_summary(terminalreporter) -> None:
    cleaned = terminalreporter.config.stash.get(_SHM_CLEANED, None)
    if cleaned is not None and cleaned.removed:
        terminalreporter.write_line(f'shm cleanup: {cleaned.summary()}')


@pytest.fixture
def ros_context():
    import rclpy
    from rclpy.context import Context
    context = Context()
    rclpy.init(context=context)
    yield context
    # The test's executors, nodes and tasks go before the context they were made in: collected after it (at
    # interpreter exit), rclpy on Jazzy crashed now and then.
    gc.collect()
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def ros_client():
    from robobrain_ros.brain_client import BrainClient
    client = BrainClient(node_name='robobrain_test_client')
    yield client
    client.close()


@pytest.fixture(scope='module')
def start_brain(tmp_path_factory, ros_client):
    started: list[BrainProcess] = []
    log_dir = tmp_path_factory.mktemp('brain')

    def start(params: dict, name: str = 'robobrain', wait_for: str = 'point', timeout: float = 60.0,
              env: dict[str, str] | None = None, command: list[str] | None = None):
        from robobrain_ros.brain_client import BrainClient
        process = BrainProcess(params, name=name, log_dir=log_dir, env=env, command=command).start()
        started.append(process)
        client = BrainClient(brain_name=f'/{name}', context=ros_client.node.context,
                             node_name=f'client_of_{name}')
        ready = client.wait_for_server(wait_for, timeout)
        if not ready or not process.alive():
            client.close()
            pytest.fail(f'brain node {name} did not come up (log {process.log_path}):\n{process.log()[-4000:]}',
                        pytrace=False)
        client.process = process
        started.append(client)
        return client

    yield start
    stopped = []
    for item in reversed(started):
        if isinstance(item, BrainProcess):
            stopped.append((item, item.stop(timeout=STOP_TIMEOUT)))
        else:
            item.close()
    # A node must end cleanly on Ctrl-C, in time: a hanging node is killed by stop() and shows a negative code.
    failed = [f'{process.full_name}: exit code {code} (log {process.log_path}):\n{process.log()[-3000:]}'
              for process, code in stopped if code != 0]
    assert not failed, f'brain node did not exit with code 0 within {STOP_TIMEOUT} s of SIGINT:\n' + '\n'.join(failed)


@pytest.fixture(scope='module')
def module_camera(ros_client):
    """One Camera per test module: its publishers are discovered once, not at every test."""
    cam = Camera(ros_client.node)
    yield cam
    cam.close()


@pytest.fixture
def camera(module_camera):
    yield module_camera
    module_camera.stop()

