# Source this file: a shell with the robobrain_ros workspace (node venv + built packages) on its paths.
# ROBOBRAIN_LEG picks the CI leg's environment (scripts/setup.sh LEG made it): kilted (default: .venv/ros +
# install/), jazzy or py310 (.venv/<leg> + install/<leg>). scripts/leg_env.sh LEG sets it for you.
# ROS 2 traffic stays on this machine unless you say otherwise (export the variables before sourcing).
_rb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# colcon's and venv's scripts read unset variables: sourced from a `set -u` script, relax that meanwhile.
_rb_nounset=0; case $- in *u*) _rb_nounset=1; set +u;; esac
export ROBOBRAIN_LEG="${ROBOBRAIN_LEG:-kilted}"
if [ "$ROBOBRAIN_LEG" = kilted ]; then
  _rb_venv="$_rb_root/.venv/ros"; _rb_install="$_rb_root/install"
else
  _rb_venv="$_rb_root/.venv/$ROBOBRAIN_LEG"; _rb_install="$_rb_root/install/$ROBOBRAIN_LEG"
fi
# shellcheck disable=SC1091
source "$_rb_venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ] || [ "$ROBOBRAIN_LEG" != kilted ]; then
  # The ROS wheels put their shared libraries in the venv's lib/.
  export LD_LIBRARY_PATH="$_rb_venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export AMENT_PREFIX_PATH="$_rb_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
# shellcheck disable=SC1091
source "$_rb_install/setup.bash"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Camera frames of any size between processes on this host: shared memory sized for 4K frames (Fast DDS's
# defaults send a frame as UDP fragments and lose most of them). A profile the user already chose wins.
# Exported for the whole shell on purpose: this shell runs the tests, the demo and the benchmarks, whose ROS 2
# processes publish camera frames (the pytest process's `camera` fixture, test_frame_transport's and the
# benchmark's camera processes) or are the node (it publishes ~/annotated_image). The cost is per process that
# starts a ROS 2 participant: its whole segment in /dev/shm from start, 68,612 KiB (config/fastdds_large_frames.xml);
# the vLLM server (.venv/vllm, no ROS 2 in it) and other programs without rclpy pay nothing; `ros2` CLI commands
# (and the ros2 daemon they start) do. Segments of killed processes: scripts/test.sh and the test session remove
# them (robobrain_ros/harness/shm_cleanup.py). On a robot, give it to the camera driver and the node only (README,
# "Camera transport on your robot"; brain.launch.py sets it on the node alone).
_rb_profile="${FASTDDS_DEFAULT_PROFILES_FILE:-${FASTRTPS_DEFAULT_PROFILES_FILE:-$_rb_root/robobrain_ros/config/fastdds_large_frames.xml}}"
export FASTDDS_DEFAULT_PROFILES_FILE="$_rb_profile"
# Fast DDS 2 (Humble, Jazzy: libfastrtps) reads only the older name; under Fast DDS 3 it would earn every process
# a deprecation warning, so it is set only where Fast DDS 2 is installed.
for _rb_prefix in ${AMENT_PREFIX_PATH//:/ }; do
  if compgen -G "$_rb_prefix/lib/libfastrtps.so*" >/dev/null; then
    export FASTRTPS_DEFAULT_PROFILES_FILE="$_rb_profile"
    break
  fi
done
export ROBOBRAIN_VLLM_PYTHON="${ROBOBRAIN_VLLM_PYTHON:-$_rb_root/.venv/vllm/bin/python}"
[ "$_rb_nounset" = 1 ] && set -u
unset _rb_root _rb_nounset _rb_profile _rb_prefix _rb_venv _rb_install
