"""A 4K camera frame crosses from another process to the node's frame path, intact, in env.sh's environment.

Fast DDS's defaults send a 25 MB frame as UDP fragments and lose nearly all of them (docs/BENCHMARKS.md,
"Camera frames"); scripts/env.sh applies config/fastdds_large_frames.xml (shared memory sized for 4K). Both
processes get exactly the environment env.sh makes (a profile already set by the caller removed first), the
receiver subscribes the way the node does (sensor-data QoS) and compares every pixel. Functional, not timed: the
receiver waits up to a generous limit for its first frame.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / 'robobrain_ros' / 'config' / 'fastdds_large_frames.xml'
WIDTH, HEIGHT = 3840, 2160
TOPIC = '/frame_transport_test/image'

# The frame: every byte depends on its position, so a lost or reordered fragment cannot pass.
FRAME = f'np.arange({WIDTH * HEIGHT * 3}, dtype=np.uint32) % 251'

CAMERA = f'''
import time, numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('frame_transport_camera')
publisher = node.create_publisher(Image, {TOPIC!r}, qos_profile_sensor_data)
msg = Image(height={HEIGHT}, width={WIDTH}, encoding='rgb8', step={WIDTH * 3})
msg.header.frame_id = 'camera_4k'
msg.data = ({FRAME}).astype(np.uint8).tobytes()
while True:   # a camera: 15 Hz until stopped
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)
    time.sleep(1 / 15)
'''

RECEIVER = f'''
import sys, threading, numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from robobrain_ros.node.image_conversion import image_to_rgb
rclpy.init()
node = rclpy.create_node('frame_transport_receiver')
got = []
node.create_subscription(Image, {TOPIC!r}, got.append, qos_profile_sensor_data)
deadline = node.get_clock().now().nanoseconds + int(float(sys.argv[1]) * 1e9)
while not got and node.get_clock().now().nanoseconds < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
if not got:
    print('no frame received'); sys.exit(1)
rgb = image_to_rgb(got[0])
expected = ({FRAME}).astype(np.uint8).reshape({HEIGHT}, {WIDTH}, 3)
print(f'frame_id={{got[0].header.frame_id}} shape={{rgb.shape}} intact={{bool(np.array_equal(rgb, expected))}}')
'''


@pytest.fixture(scope='module')
def env_sh_environment() -> dict[str, str]:
    """The environment `source scripts/env.sh` gives a shell that had no Fast DDS profile set."""
    shell = (f'source {REPO / "scripts" / "env.sh"} >/dev/null && '
             'python -c "import json, os; print(json.dumps(dict(os.environ)))"')
    clean = {k: v for k, v in os.environ.items()
             if k not in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')}
    out = subprocess.run(['bash', '-c', shell], env=clean, capture_output=True, text=True, check=True, timeout=60)
    env = json.loads(out.stdout.strip().splitlines()[-1])
    env['ROS_DOMAIN_ID'] = os.environ['ROS_DOMAIN_ID']    # this run's domain (conftest)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return env


def test_env_sh_applies_the_large_frame_profile(env_sh_environment):
    assert Path(env_sh_environment['FASTDDS_DEFAULT_PROFILES_FILE']).resolve() == PROFILE.resolve()
    # The older name only where Fast DDS 2 (libfastrtps) is installed: Fast DDS 3 warns about it in every process.
    fast_dds_2 = any(list(Path(prefix, 'lib').glob('libfastrtps.so*'))
                     for prefix in env_sh_environment['AMENT_PREFIX_PATH'].split(os.pathsep) if prefix)
    assert ('FASTRTPS_DEFAULT_PROFILES_FILE' in env_sh_environment) == fast_dds_2
    if fast_dds_2:
        assert Path(env_sh_environment['FASTRTPS_DEFAULT_PROFILES_FILE']).resolve() == PROFILE.resolve()


def test_a_profile_the_user_chose_is_kept(tmp_path):
    own = tmp_path / 'robot.xml'
    shell = f'source {REPO / "scripts" / "env.sh"} >/dev/null && echo "$FASTDDS_DEFAULT_PROFILES_FILE"'
    env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
    env['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(own)    # a Humble robot's setting: Fast DDS 3 must get it too
    out = subprocess.run(['bash', '-c', shell], env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == str(own)


def test_4k_rgb8_frame_from_another_process_arrives_intact(env_sh_environment):
    camera = subprocess.Popen([sys.executable, '-c', CAMERA], env=env_sh_environment, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        received = subprocess.run([sys.executable, '-c', RECEIVER, '60'], env=env_sh_environment,
                                  capture_output=True, text=True, timeout=120, check=False)
    finally:
        camera.terminate()
        camera_log, _ = camera.communicate(timeout=10)
    output = received.stdout + received.stderr
    assert received.returncode == 0, f'receiver: {output}\ncamera: {camera_log}'
    assert f'frame_id=camera_4k shape=({HEIGHT}, {WIDTH}, 3) intact=True' in output, output
    # The profile parsed: Fast DDS reports a bad XML file on stderr, and then runs on its defaults.
    assert 'XMLPARSER' not in output + camera_log, output + camera_log
