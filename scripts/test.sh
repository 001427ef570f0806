#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh) and runs the whole test suite: unit tests of the protocol and
# serve layers, and process-level tests of the brain node against a real vLLM (CPU) server with a tiny model.
# Extra arguments go to pytest (e.g. scripts/test.sh -k point -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
# A DDS domain of this run's own, so two runs on one machine (or a robot on the network) never meet.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + RANDOM % 90 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROBOBRAIN_CACHE_DIR="${ROBOBRAIN_CACHE_DIR:-$ROOT/.cache}"
echo "== running the tests (ROS_DOMAIN_ID=$ROS_DOMAIN_ID)"
set +e
python -m pytest robobrain_ros/test -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then echo "no test ran: that is a failure" >&2; exit 1; fi
exit "$status"
