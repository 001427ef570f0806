# Source this file with a CI leg's name: a shell with that leg's environment (scripts/setup.sh LEG made it).
#   source scripts/leg_env.sh jazzy    .venv/jazzy (Python 3.12, ROS 2 Jazzy wheels) + install/jazzy
#   source scripts/leg_env.sh py310    .venv/py310 (Python 3.10, Jazzy's cp310 wheels) + install/py310
#   source scripts/leg_env.sh kilted   the same as scripts/env.sh
case "${1:-kilted}" in
  kilted|jazzy|py310)
    export ROBOBRAIN_LEG="${1:-kilted}"
    # shellcheck disable=SC1091
    source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh" ;;
  *) echo "leg_env.sh: unknown leg '$1' (kilted, jazzy or py310)" >&2; return 1 2>/dev/null || exit 1 ;;
esac
