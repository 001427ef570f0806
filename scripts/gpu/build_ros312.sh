#!/usr/bin/env bash
# Builds the brain node's ROS 2 runtime for the GPU machine's Python 3.12 (its image has no ROS 2):
#   .venv/ros312          ROS 2 Kilted wheels from PyPI (cp312 manylinux_2_28) + colcon, like scripts/setup.sh
#   .gpu/ros/install      robobrain_interfaces built by colcon against that Python (rosidl C + Python bindings)
# scripts/gpu/make_bundle.py then packs the runtime part of both for the device (no build tools go there).
#
#   PYTHON312=/path/to/python3.12 bash scripts/gpu/build_ros312.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON312:-}"
if [ -z "$PY" ]; then   # the first python3.12 that runs (a pyenv shim may exist but not be selected)
  for c in "$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    if [ -n "$c" ] && "$c" -c '' 2>/dev/null; then PY="$c"; break; fi
  done
fi
VENV="$ROOT/.venv/ros312"
OUT="$ROOT/.gpu/ros"
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' || { echo "need Python 3.12 ($PY)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 'setuptools>=68,<80' wheel
fi
# numpy: rosidl_generator_py compiles against its headers (the device's numpy runs the result).
"$VENV/bin/pip" install -q -r requirements/ros-wheels.txt 'numpy>=1.26' PyYAML

# The wheels' CMake files name the include paths of the machine that built them; point them at this venv.
pyinc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
npinc="$("$VENV/bin/python" -c 'import numpy, os; print(os.path.join(os.path.dirname(numpy.__file__), "_core", "include"))')"
base=/opt/python/cp312-cp312
grep -rl "$base" "$VENV/share" --include='*.cmake' 2>/dev/null | while read -r f; do
  sed -i -e "s#$base/include/python3.12#$pyinc#g" \
         -e "s#$base/lib/python3.12/site-packages/numpy/_core/include#$npinc#g" "$f"
done

mkdir -p "$OUT"
(
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  colcon --log-base "$OUT/log" build --base-paths robobrain_interfaces \
    --build-base "$OUT/build" --install-base "$OUT/install" --event-handlers console_cohesion- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" >"$OUT/colcon-build.txt" 2>&1 \
    || { tail -40 "$OUT/colcon-build.txt"; echo "colcon build failed: $OUT/colcon-build.txt" >&2; exit 1; }
)
# Highest glibc / libstdc++ symbol versions the build needs (the GPU machine must provide them).
for f in "$OUT"/install/robobrain_interfaces/lib/*.so "$OUT"/install/robobrain_interfaces/lib/python3.12/site-packages/robobrain_interfaces/*.so; do
  # A report, not a check: a file without versioned symbols (grep finds nothing) must not fail the script
  # under `set -e -o pipefail`, nor a glob that matches nothing.
  [ -f "$f" ] || continue
  objdump -T "$f" 2>/dev/null | grep -o 'GLIBC[XX]*_[0-9.]*' || true; done | sort -u -V | tr '\n' ' '; echo
echo "built: $OUT/install (Python 3.12)"
