#!/usr/bin/env bash
# Sets up (scripts/setup.sh LEG) and runs one CI leg's tests. scripts/test.sh runs every leg; use this one
# to run a single leg. Extra arguments go to pytest.
#
#   kilted   ROS 2 Kilted wheels, Python 3.11: the whole suite (unit tests, node processes, the real vLLM server).
#   jazzy    ROS 2 Jazzy wheels, Python 3.12, aiohttp 3.9.1 (Ubuntu 24.04's): the node's action tests
#            (test_node_actions.py, against the real vLLM server), its frames and executors (test_node_frames.py,
#            test_node_executors.py: both executors on Jazzy's rclpy) and every test that needs no vLLM server
#            nor node process.
#   py310    Python 3.10 (Humble's) with aiohttp 3.8.1 (Ubuntu 22.04's) and Jazzy's cp310 wheels standing in for
#            Humble's rclpy (PyPI has none): every test that needs no vLLM server nor node process.
#   jazzy and py310 first check that every module of the package compiles and imports there
#   (scripts/legs/check_imports.py), and run the package as a plain colcon build installed it.
#
# Exit status: pytest's (5, no test ran, becomes 1); 3 when the leg's Python is missing outside CI (skipped).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LEG="${1:?which leg: kilted, jazzy or py310}"
shift
cd "$ROOT"
status=0
bash scripts/setup.sh "$LEG" || status=$?
if [ "$status" = 3 ]; then exit 3; fi
if [ "$status" != 0 ]; then echo "FAIL: setting up leg '$LEG' failed (exit $status)" >&2; exit "$status"; fi
# shellcheck disable=SC1091
source scripts/leg_env.sh "$LEG"
# A DDS domain of this run's own, so two runs on one machine (or a robot on the network) never meet.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + RANDOM % 90 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROBOBRAIN_CACHE_DIR="${ROBOBRAIN_CACHE_DIR:-$ROOT/.cache}"
export PYTHONPATH="$ROOT/scripts/legs${PYTHONPATH:+:$PYTHONPATH}"
versions="$(python - <<'PY'
import importlib.metadata as md, platform
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return 'none'
print(f"Python {platform.python_version()}, rclpy {version('ros-rclpy')}, aiohttp {version('aiohttp')}")
PY
)"
echo "== leg $LEG: $versions (ROS_DOMAIN_ID=$ROS_DOMAIN_ID)"
selection=(robobrain_ros/test)
case "$LEG" in
  jazzy) selection+=(-p leg_selection --leg-unit-only --leg-keep test_node_actions.py --leg-keep test_node_frames.py
                    --leg-keep test_node_executors.py) ;;
  py310) selection+=(-p leg_selection --leg-unit-only)
         # CI runs this leg first, before any leg has built .venv/vllm: a test that needs the vLLM interpreter
         # must fail here on a warm machine too, not only on a clean clone.
         export ROBOBRAIN_VLLM_PYTHON="$ROOT/.venv/no-vllm-in-the-py310-leg/bin/python" ;;
esac
if [ "$LEG" != kilted ]; then python scripts/legs/check_imports.py || status=1; fi
set +e
python -m pytest "${selection[@]}" -p no:cacheprovider "$@"
pytest_status=$?
set -e
if [ "$pytest_status" = 5 ]; then echo "FAIL: no test ran in leg '$LEG': that is a failure" >&2; exit 1; fi
if [ "$status" != 0 ]; then echo "FAIL: leg '$LEG': the package does not import on $versions (above)" >&2; exit 1; fi
exit "$pytest_status"
