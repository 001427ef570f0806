"""Start the robobrain node (and, on request, the model server and RViz).

    ros2 launch robobrain_ros brain.launch.py
    ros2 launch robobrain_ros brain.launch.py server_url:=http://10.0.0.5:9010/v1,http://10.0.0.6:9010/v1 \
        image:=/camera/color/image_raw depth:=/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/color/camera_info target_frame:=base_link use_rviz:=true
    ros2 launch robobrain_ros brain.launch.py serve:=true serve_config:=/path/to/robobrain2_7b_cuda.yaml
        (the node starts once the server is ready; the launch ends when the server exits)

Everything here is also reachable without launch: `ros2 run robobrain_ros brain_node --ros-args
--params-file config/brain.yaml -p server.base_urls:="['http://...']"` (the tests do exactly that),
`ros2 run robobrain_ros serve --config <serve yaml>`, `rviz2 -d config/brain.rviz`, and
`FASTDDS_DEFAULT_PROFILES_FILE=<share>/config/fastdds_large_frames.xml` in the node's environment (this launch
sets it on the brain node only). The decisions (URL list, serve-config URL, RViz present or not, Fast DDS
profile) live in robobrain_ros/launch_plan.py, unit-tested.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.events import Shutdown
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robobrain_ros import launch_plan

SHARE = get_package_share_directory('robobrain_ros')
ARGUMENTS = {   # name -> (default, description)
    'config': (os.path.join(SHARE, 'config', 'brain.yaml'),
               'parameters file of the node (config/brain.yaml documents every key)'),
    'server_url': ('', 'model server base URL(s), comma-separated = failover list in order, e.g. '
                       'http://127.0.0.1:9010/v1; empty = the one in config (with serve:=true: the serve config\'s)'),
    'model': ('', 'served model name; empty = the one in config (or the first served)'),
    'namespace': ('', 'namespace of the node'),
    'image': ('', 'sensor_msgs/Image colour topic; empty = the one in config'),
    'compressed_image': ('', 'sensor_msgs/CompressedImage topic; empty = the one in config'),
    'camera_info': ('', 'CameraInfo topic; empty = the one in config'),
    'depth': ('', 'registered depth topic (16UC1 mm or 32FC1 m); empty = the one in config'),
    'target_frame': ('', 'frame of every 3D answer, e.g. base_link (tf2, at the image\'s stamp); empty = the one in '
                         'config (there: the camera optical frame)'),
    'use_rviz': ('false', 'start RViz with config/brain.rviz (skipped with a warning when rviz2 is not installed)'),
    'serve': ('false', 'start the model server first (robobrain_ros serve); the node starts once it is ready and the '
                       'launch ends if it exits'),
    'serve_config': ('', 'serve config for serve:=true, required there: the model to serve (config/serve/*.yaml; '
                         'cpu_smoke.yaml is a tiny random-weight model for smoke tests)'),
}


def _start(context):
    given = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    plan = launch_plan.plan_launch(given, SHARE, os.environ, lambda: launch_plan.package_installed('rviz2'))
    logger = get_logger('robobrain.launch')
    for warning in plan.warnings:
        logger.warning(warning)
    # The Fast DDS large-frame profile on the brain node only (it publishes camera-sized frames): each process that
    # loads it holds its whole shared-memory segment in /dev/shm, so serve and RViz start without it.
    brain = Node(
        package='robobrain_ros', executable='brain_node', name='robobrain', namespace=given['namespace'],
        output='screen', emulate_tty=True, parameters=[given['config'], plan.overrides],
        additional_env=plan.node_environment)
    actions = [brain] if plan.served is None else _serve_then(brain, plan.served)
    if plan.rviz:
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', os.path.join(SHARE, 'config', 'brain.rviz')]))
    return actions


def _serve_then(brain, served: launch_plan.ServedModel) -> list:
    """The server first; the brain node once the server says READY (loading a model takes minutes, and a node
    started before would report it unreachable meanwhile); the whole launch ends when the server exits."""
    serve = ExecuteProcess(cmd=['ros2', 'run', 'robobrain_ros', 'serve', '--config', served.config], name='serve',
                           output='screen')
    started = []

    def start_brain_when_ready(event):
        if not started and launch_plan.serve_ready(event.text.decode(errors='replace')):
            started.append(brain)
            return [LogInfo(msg=f'model server ready at {served.base_url}: starting the brain node'), brain]
        return None

    def end_launch(event, context):
        if context.is_shutdown:   # the launch is ending anyway (Ctrl-C): the server exited because it was told to
            return None
        return [LogInfo(msg=f'the model server exited (code {event.returncode}): ending the launch, the brain node '
                            'has no server to ask'),
                EmitEvent(event=Shutdown(reason='model server exited'))]

    return [LogInfo(msg=f'serving {served.model} ({served.config}) at {served.base_url}; the brain node starts when '
                        'it is ready (loading a model can take minutes)'),
            serve,
            RegisterEventHandler(OnProcessIO(target_action=serve, on_stdout=start_brain_when_ready,
                                             on_stderr=start_brain_when_ready)),
            RegisterEventHandler(OnProcessExit(target_action=serve, on_exit=end_launch))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_start)])
