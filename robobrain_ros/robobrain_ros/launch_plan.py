"""What brain.launch.py decides, as plain functions: testable without the `launch` packages installed.

The launch file reads its arguments, calls `plan_launch`, and turns the resulting `LaunchPlan` into actions
(one brain Node, the serve process, RViz). Nothing here imports rclpy or launch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from robobrain_ros.model_client.base_urls import base_url_problem

# Fast DDS reads its XML profiles from one of these (FASTRTPS_ is the name before Fast DDS 3).
FASTDDS_PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
# Distributions on Fast DDS 2, which reads only FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 3 reads FASTDDS_ and
# warns in every process about the old name).
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')
FASTDDS_PROFILE_NAME = 'fastdds_large_frames.xml'   # in the package's share/config
TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off', '')


class LaunchArgumentError(ValueError):
    """A launch argument that cannot be used; the message names it and says what to give."""


def parse_flag(name: str, text: str) -> bool:
    """A boolean launch argument (true/false, as launch's IfCondition accepts, plus 1/0 yes/no on/off)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise LaunchArgumentError(f'{name}:={text!r} is not a boolean; give true or false')


def parse_server_urls(text: str) -> list[str]:
    """`server_url:=a,b` -> ['a', 'b']: the node's failover list, tried in order. Empty -> [].

    Each URL must be http(s)://host[:port][/path]; anything else is refused here, at launch, with its position
    in the list, rather than by the node after it started.
    """
    urls = [part.strip() for part in text.split(',')]
    if not any(urls):
        return []
    for index, url in enumerate(urls, start=1):
        where = f'server_url:={text!r}: URL {index} of {len(urls)}'
        if not url:
            raise LaunchArgumentError(f'{where} is empty (two commas, or a trailing comma?)')
        problem = base_url_problem(url)
        if problem:
            raise LaunchArgumentError(f'{where} ({url!r}) {problem}')
    return urls


# What `robobrain_ros serve` prints (on stderr) once its server answers /health: the launch starts the node then.
SERVE_READY = 'robobrain_ros.serve: READY '
# The shipped serve config of the tiny random-weight CPU model: for smoke tests, its answers mean nothing.
SMOKE_SERVE_CONFIG = 'cpu_smoke.yaml'


@dataclass(frozen=True)
class ServedModel:
    """What serve:=true will serve, said before it starts."""
    config: str
    model: str
    base_url: str               # where the node reaches it


def served_model(serve_config: str) -> ServedModel:
    """The serve YAML's model and the OpenAI base URL the serve tool will listen on (its one entry's host and port).

    serve_config is required: the model a robot is given is a choice, never a default."""
    from robobrain_ros.serve.command import with_defaults
    from robobrain_ros.serve.config import ConfigError, connect_url, load, resolve_path

    if not serve_config.strip():
        raise LaunchArgumentError(
            'serve:=true needs serve_config:=<serve YAML>, the model to serve (config/serve/: robobrain2_7b_cuda.yaml, '
            f'robobrain2_32b_cuda.yaml, robobrain2_32b_ascend.yaml; {SMOKE_SERVE_CONFIG} is a tiny random-weight '
            'model for smoke tests)')
    try:
        entry = with_defaults(load(resolve_path(serve_config)).entry())
    except ConfigError as exc:
        raise LaunchArgumentError(f'serve_config:={serve_config}: {exc}') from None
    return ServedModel(config=serve_config, model=entry.served_model_name,
                       base_url=connect_url(entry.host, entry.port) + '/v1')


def serve_ready(output: str) -> bool:
    """True when the serve tool's output holds its READY line."""
    return any(line.startswith(SERVE_READY) for line in output.splitlines())


# Launch argument -> node parameter it overrides when given (empty = the params file's value).
PARAMETER_ARGUMENTS = {'model': 'server.model', 'image': 'topics.image',
                       'compressed_image': 'topics.compressed_image', 'camera_info': 'topics.camera_info',
                       'depth': 'topics.depth', 'target_frame': 'frames.target_frame'}


@dataclass
class LaunchPlan:
    """What the launch starts and with which settings."""
    overrides: dict[str, object]           # node parameters set over the params file (only those given)
    serve: bool
    rviz: bool
    served: ServedModel | None = None      # with serve:=true: the model served and where
    # Added to the brain node's environment only (its Node action's additional_env): the large-frame Fast DDS
    # profile, whose shared-memory segment every process that loads it holds whole in /dev/shm (68,612 KiB) from
    # start. The node publishes frames (~/annotated_image); serve (no DDS at all) and RViz (a reader) get nothing.
    node_environment: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def fastdds_profile_environment(environ: Mapping[str, str], share_dir: str) -> tuple[dict[str, str], str | None]:
    """Point Fast DDS at the package's large-frame profile unless the user already chose a profile file.

    Returns (variables to set in the brain node's environment, warning or None): for the node only, as a process
    that publishes camera-sized frames; config/fastdds_large_frames.xml says what it costs each process.
    Fast DDS 2 (ROS_DISTRO humble, iron, jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3
    FASTDDS_DEFAULT_PROFILES_FILE (and warns about the other); an unknown distribution gets both. A profile the
    user set in either is kept as it is.
    """
    if any(environ.get(name) for name in FASTDDS_PROFILE_VARIABLES):
        return {}, None
    profile = Path(share_dir) / 'config' / FASTDDS_PROFILE_NAME
    if not profile.is_file():
        return {}, f'{profile} is missing: Fast DDS keeps its default transport settings'
    distro = environ.get('ROS_DISTRO', '')
    if distro in FAST_DDS_2_DISTROS:
        names: tuple[str, ...] = ('FASTRTPS_DEFAULT_PROFILES_FILE',)
    elif distro:
        names = ('FASTDDS_DEFAULT_PROFILES_FILE',)
    else:
        names = FASTDDS_PROFILE_VARIABLES
    return {name: str(profile) for name in names}, None


def plan_launch(arguments: Mapping[str, str], share_dir: str, environ: Mapping[str, str],
                rviz_installed: Callable[[], bool]) -> LaunchPlan:
    """Decide from the launch arguments (as given, strings) what to start.

    - server_url: a comma-separated failover list; empty = the params file's, except with serve:=true, where the
      node follows the serve config's host and port (so the node asks where the server listens).
    - serve:=true needs serve_config (no default model); the tiny CPU smoke model gets a warning.
    - model, image, compressed_image, camera_info, depth, target_frame: empty = the params file's value.
    - use_rviz:=true without rviz2 installed: RViz is skipped with a warning; the brain still starts.
    - the large-frame Fast DDS profile (unless the user set one): in `node_environment`, the brain node's only.
    """
    serve = parse_flag('serve', arguments.get('serve', 'false'))
    use_rviz = parse_flag('use_rviz', arguments.get('use_rviz', 'false'))
    urls: list[str] | None = parse_server_urls(arguments.get('server_url', '')) or None
    served = served_model(arguments.get('serve_config', '')) if serve else None
    if urls is None and served is not None:
        urls = [served.base_url]
    overrides: dict[str, object] = {}
    if urls is not None:
        overrides['server.base_urls'] = urls
    for argument, parameter in PARAMETER_ARGUMENTS.items():
        value = arguments.get(argument, '').strip()
        if value:
            overrides[parameter] = value
    warnings = []
    if served is not None and Path(served.config).name == SMOKE_SERVE_CONFIG:
        warnings.append(f'serve_config:={served.config} serves {served.model}, a tiny model with random weights: its '
                        'answers mean nothing (smoke tests only)')
    rviz = use_rviz and rviz_installed()
    if use_rviz and not rviz:
        warnings.append('use_rviz:=true but rviz2 is not installed (no rviz2 package in the ament index): '
                        'starting without RViz; install ros-$ROS_DISTRO-rviz2 or run RViz on another machine '
                        'with -d config/brain.rviz')
    node_environment, warning = fastdds_profile_environment(environ, share_dir)
    if warning:
        warnings.append(warning)
    return LaunchPlan(overrides=overrides, serve=serve, rviz=rviz, served=served, node_environment=node_environment,
                      warnings=warnings)


def package_installed(name: str) -> bool:
    """True when the ament index knows package `name` (what `ros2 run name ...` needs)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix(name)
    except PackageNotFoundError:
        return False
    return True
