#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh) and runs the whole test suite on every CI leg:
#   py310   Humble's Python 3.10 + aiohttp 3.8.1 (Jazzy's cp310 wheels stand in for rclpy: there are no Humble
#           wheels): the package imports, the tests that need no vLLM server nor node process pass
#   jazzy   ROS 2 Jazzy wheels + Python 3.12 + aiohttp 3.9.1: the node's action tests and those same tests
#   kilted  ROS 2 Kilted wheels + Python 3.11: everything (unit tests, and process-level tests of the brain
#           node against a real vLLM (CPU) server with a tiny model)
# (scripts/test_leg.sh says what each leg runs.) Every leg runs even when one before it failed; the exit
# status fails when any leg failed, and the output ends with each leg's pytest summary line.
# A leg whose Python is missing fails under CI=true and is reported as skipped otherwise.
# Extra arguments go to every leg's pytest (e.g. scripts/test.sh -k point -x); ROBOBRAIN_LEGS picks legs
# (e.g. ROBOBRAIN_LEGS=kilted scripts/test.sh -k point).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
read -r -a legs <<<"${ROBOBRAIN_LEGS:-py310 jazzy kilted}"
# One DDS domain for the run (the legs run one after the other), chosen once so every leg reports it.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + RANDOM % 90 ))}"
mkdir -p log/legs
declare -A outcome
failed=0
for leg in "${legs[@]}"; do
  printf '\n######## leg %s ########\n' "$leg"
  start=$SECONDS
  set +e
  bash scripts/test_leg.sh "$leg" "$@" 2>&1 | tee "log/legs/$leg.txt"
  status=${PIPESTATUS[0]}
  set -e
  case "$status" in
    0) outcome[$leg]="passed" ;;
    3) outcome[$leg]="skipped ($(grep -m1 '^SKIPPED: ' "log/legs/$leg.txt" | cut -c10- | sed 's/\.$//'))" ;;
    *) outcome[$leg]="FAILED (exit $status)"; failed=1 ;;
  esac
  outcome[$leg]+=", $(( SECONDS - start )) s"
done
# Fast DDS leaves a killed process's shared-memory segment in /dev/shm (68,612 KiB each with the large-frame
# profile). Each pytest session removes those of dead processes at its end (ros_fixtures); this catches what a
# killed or crashed pytest left itself. Files of live processes (other runs on this machine) are never touched.
shm_cleanup="$(python3 robobrain_ros/robobrain_ros/harness/shm_cleanup.py 2>&1 || echo 'failed (exit status ignored)')"
# The lint gate (ruff.toml), with the ruff of whichever leg's venv has it (requirements/test.txt installs it).
printf '\n######## lint (ruff check, ruff.toml) ########\n'
lint="FAILED (no ruff in any leg's venv)"
for venv in .venv/ros .venv/jazzy .venv/py310; do
  if [ -x "$venv/bin/ruff" ]; then
    if "$venv/bin/ruff" check --output-format concise .; then lint="passed"; else lint="FAILED"; fi
    break
  fi
done
case "$lint" in passed) ;; *) failed=1 ;; esac
printf '\n######## summary of the legs (full output in log/legs/) ########\n'
echo "lint: $lint"
for leg in "${legs[@]}"; do
  versions="$(grep -m1 '^== leg ' "log/legs/$leg.txt" | sed 's/^== leg [^:]*: //; s/ (ROS_DOMAIN_ID=.*//' || true)"
  echo "leg $leg${versions:+ ($versions)}: ${outcome[$leg]}"
  # The leg's pytest summary line as pytest printed it.
  grep -E '^=+ .*(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' "log/legs/$leg.txt" | tail -1 || true
done
echo "shm cleanup: $shm_cleanup"
exit "$failed"
