"""Start the robobrain node (and, on request, the model server and RViz).

    ros2 launch robobrain_ros brain.launch.py
    ros2 launch robobrain_ros brain.launch.py server_url:=http://10.0.0.5:9010/v1 image:=/camera/color/image_raw \
        depth:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info use_rviz:=true
    ros2 launch robobrain_ros brain.launch.py serve:=true serve_config:=/path/to/robobrain2_7b_cuda.yaml

Everything here is also reachable without launch: `ros2 run robobrain_ros brain_node --ros-args
--params-file config/brain.yaml -p server.base_urls:="['http://...']"` (the tests do exactly that).
"""

from typing import List

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('robobrain_ros')
    config = LaunchConfiguration('config')
    server_url = LaunchConfiguration('server_url')
    model = LaunchConfiguration('model')

    arguments = [
        DeclareLaunchArgument('config', default_value=PathJoinSubstitution([share, 'config', 'brain.yaml']),
                              description='parameters file of the node (config/brain.yaml documents every key)'),
        DeclareLaunchArgument('server_url', default_value='',
                              description='model server base URL, e.g. http://127.0.0.1:9010/v1; '
                                          'empty = the one in config'),
        DeclareLaunchArgument('model', default_value='',
                              description='served model name; empty = the one in config (or the first served)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node'),
        DeclareLaunchArgument('image', default_value='image', description='sensor_msgs/Image colour topic'),
        DeclareLaunchArgument('compressed_image', default_value='image/compressed',
                              description='sensor_msgs/CompressedImage topic'),
        DeclareLaunchArgument('camera_info', default_value='camera_info', description='CameraInfo topic'),
        DeclareLaunchArgument('depth', default_value='depth',
                              description='registered depth topic (16UC1 mm or 32FC1 m)'),
        DeclareLaunchArgument('use_rviz', default_value='false', description='start RViz with config/brain.rviz'),
        DeclareLaunchArgument('serve', default_value='false',
                              description='start the model server first (robobrain_ros serve)'),
        DeclareLaunchArgument('serve_config',
                              default_value=PathJoinSubstitution([share, 'config', 'serve', 'cpu_smoke.yaml']),
                              description='serve config for serve:=true (config/serve/*.yaml)'),
    ]

    server = ExecuteProcess(
        cmd=['ros2', 'run', 'robobrain_ros', 'serve', '--config', LaunchConfiguration('serve_config')],
        output='screen', condition=IfCondition(LaunchConfiguration('serve')))

    # The camera topics always come from the launch arguments (their defaults are brain.yaml's).
    # A launch argument left empty must keep the params file's value, and launch_ros cannot leave a key out
    # conditionally: one Node per combination of given arguments, exactly one of which starts.
    topics = {f'topics.{name}': LaunchConfiguration(name)
              for name in ('image', 'compressed_image', 'camera_info', 'depth')}
    brains = []
    for with_url in (False, True):
        for with_model in (False, True):
            overrides = dict(topics)
            if with_url:
                overrides['server.base_urls'] = ParameterValue(
                    PythonExpression(["str(['", server_url, "'])"]), value_type=List[str])
            if with_model:
                overrides['server.model'] = model
            started = PythonExpression([
                "('", server_url, "' != '') == ", str(with_url), " and ('", model, "' != '') == ", str(with_model)])
            brains.append(Node(
                package='robobrain_ros', executable='brain_node', name='robobrain',
                namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
                parameters=[config, overrides], condition=IfCondition(started)))

    rviz = Node(package='rviz2', executable='rviz2', name='rviz2',
                arguments=['-d', PathJoinSubstitution([share, 'config', 'brain.rviz'])],
                condition=IfCondition(LaunchConfiguration('use_rviz')))
    return LaunchDescription(arguments + [server, *brains, rviz])
