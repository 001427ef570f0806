# Source this file with a CI leg's name: a shell with that leg's environment (scripts/setup.sh LEG made it).
#   source scripts/leg_env.sh jazzy    .venv/jazzy (Python 3.12, ROS 2 Jazzy wheels) + install/jazzy
#   source scripts/leg_env.sh py310    .venv/py310 (Python 3.10, Jazzy's cp310 wheels) + install/py310
#   source scripts/leg_env.sh kilted   the same as scripts/env.sh
# Like scripts/env.sh, ROS 2 traffic stays on this machine unless you say otherwise.
_rb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_rb_leg="${1:-kilted}"
_rb_nounset=0; case $- in *u*) _rb_nounset=1; set +u;; esac
case "$_rb_leg" in
  kilted)
    # shellcheck disable=SC1091
    source "$_rb_root/scripts/env.sh" ;;
  jazzy|py310)
    # shellcheck disable=SC1091
    source "$_rb_root/.venv/$_rb_leg/bin/activate"
    # The wheels put their shared libraries in the venv's lib/ (set before any interpreter starts).
    export LD_LIBRARY_PATH="$_rb_root/.venv/$_rb_leg/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export AMENT_PREFIX_PATH="$_rb_root/.venv/$_rb_leg${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    # shellcheck disable=SC1091
    source "$_rb_root/install/$_rb_leg/setup.bash"
    export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
    export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
    # The large-frame transport profile of scripts/env.sh; Jazzy's Fast DDS 2 reads the FASTRTPS_ name.
    _rb_profile="${FASTRTPS_DEFAULT_PROFILES_FILE:-$_rb_root/robobrain_ros/config/fastdds_large_frames.xml}"
    [ -f "$_rb_profile" ] && export FASTRTPS_DEFAULT_PROFILES_FILE="$_rb_profile"
    unset _rb_profile ;;
  *) echo "leg_env.sh: unknown leg '$_rb_leg' (kilted, jazzy or py310)" >&2 ;;
esac
export ROBOBRAIN_VLLM_PYTHON="${ROBOBRAIN_VLLM_PYTHON:-$_rb_root/.venv/vllm/bin/python}"
[ "$_rb_nounset" = 1 ] && set -u
unset _rb_root _rb_leg _rb_nounset
