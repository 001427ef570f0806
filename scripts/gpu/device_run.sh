#!/usr/bin/env bash
# Issue 8 on the GPU machine: runs in the repository root there, one or more phases per call.
#
#   bash scripts/gpu/device_run.sh check receive              # first call: machine facts, keep the carried piece(s)
#   bash scripts/gpu/device_run.sh receive                    # next calls: one more piece each
#   bash scripts/gpu/device_run.sh setup hf start:default     # unpack + smoke test, path (a), start a server
#   bash scripts/gpu/device_run.sh wait bench:default:full stop start:eager
#   ...
# Phases:
#   check            GPU, driver, Python, glibc, the image's package versions
#   receive          copy the carried .gpu/xfer/bundle.* into /tmp/stage (kept while the machine stays warm)
#   setup            check the pieces' sha256, unpack to /tmp/gpu, install robobrain_ros (for its vLLM
#                    plugin entry point) into /tmp/gpu/rbsite (install_plugin.py), smoke-import vllm / flag_gems / rclpy /
#                    robobrain_interfaces, write the 7B model folder
#   extra            install wheels carried in .gpu/extra into the bundle's site (added after the bundle)
#   fgdiag           scripts/gpu/flaggems_diag.py: which FlagGems ops crash on the model's shapes; the
#                    failing ones are skipped by the flaggems_* variants (FLAGGEMS_EXCLUDE=none: skip none)
#   hf               path (a): scripts/gpu/hf_baseline.py
#   start:VARIANT    serve_variant.py VARIANT -> YAML; `python3 -m robobrain_ros.serve` under setsid (returns)
#   wait             until the serve tool's --ready-file exists (or it died)
#   bench:VARIANT[:full|:topic]  paths (b) and (c) (bench_serving.py); full = with the image budgets;
#                    topic = the node reads the frame from the camera topic instead of the goal
#   stop             SIGTERM the serve tool (it stops the server's process group) and wait
# Every phase appends to /tmp/gpu/results; after each phase results + logs are packed into $OUT/results.tgz
# and a summary is printed, so a call cut short still returns what it finished.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
G=/tmp/gpu
B=$G/gpubundle
RES=$G/results
LOGS=$G/logs
MODEL=$G/robobrain2_7b_dummy
PORT=$(cat /tmp/gpu/current_port 2>/dev/null || echo 9010)
port_of() { case "$1" in default) echo 9010;; eager) echo 9011;; flaggems_eager) echo 9012;; *) echo 9013;; esac; }
OUT="${OUT:-/tmp/gpu_out}"
PY="${GPU_PYTHON:-$(command -v python3)}"
mkdir -p "$RES" "$LOGS" "$OUT" /tmp/stage
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Keep NVLink multicast off (the machine's rule), also for processes started with their own environment.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# No network there: never try the Hugging Face hub; no usage reports.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# Greedy decoding needs no FlashInfer top-k/top-p sampler (it would JIT-compile with nvcc on first use).
export VLLM_USE_FLASHINFER_SAMPLER=0

say() { printf '\n=== %s [%s]\n' "$*" "$(date +%T)"; }

server_env() {   # vLLM's site (the bundle) + robobrain_ros installed with its plugin entry point
  env PYTHONPATH="$G/rbsite:$B/site" PATH="$B/site/bin:$PATH" "$@"
}
node_env() {     # the node's Python: the image's numpy/cv2/aiohttp + the ROS 2 runtime + the source tree
  local rsite="$B/ros/lib/python3.12/site-packages" wsite="$B/ros_ws/robobrain_interfaces/lib/python3.12/site-packages"
  # The wheels' vendored libraries (ros_*.libs) are found through LD_LIBRARY_PATH, as ros_wheels_bootstrapper
  # (a .pth that PYTHONPATH does not run) would set it.
  local vendored; vendored=$(ls -d "$rsite"/ros_*.libs 2>/dev/null | tr '\n' ':')
  env PYTHONPATH="$REPO/robobrain_ros:$rsite:$wsite" \
      LD_LIBRARY_PATH="$B/ros/lib:$B/ros_ws/robobrain_interfaces/lib:${vendored}${LD_LIBRARY_PATH:-}" \
      AMENT_PREFIX_PATH="$B/ros:$B/ros_ws/robobrain_interfaces" RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
      ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=42 ROS_LOG_DIR="$LOGS/ros" "$@"
}

collect() {
  tar -C "$G" -czf "$OUT/results.tgz" results logs 2>/dev/null
  for f in "$RES"/*.json; do [ -f "$f" ] && cp -f "$f" "$OUT/" 2>/dev/null; done
  # At most 8 files come back: keep the newest JSONs beside the tarball (all are inside it anyway).
  ls -t "$OUT"/*.json 2>/dev/null | tail -n +7 | xargs -r rm -f
}

phase_check() {
  say check
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.sm,power.limit --format=csv
  "$PY" -V; ldd --version | head -1; nproc; free -g | head -2; df -h /tmp | tail -1
  command -v xz zstd pigz || true
  "$PY" - <<'EOF' | tee "$RES/machine.json"
import json, platform
from importlib import metadata
names = ['torch', 'torchvision', 'transformers', 'tokenizers', 'triton', 'numpy', 'opencv-python-headless',
         'aiohttp', 'protobuf', 'huggingface-hub', 'pillow', 'pyyaml', 'setuptools', 'pip', 'typing-extensions',
         'numba', 'psutil', 'regex', 'safetensors', 'uvloop', 'prometheus-client', 'qwen-vl-utils']
v = {}
for n in names:
    try:
        v[n] = metadata.version(n)
    except metadata.PackageNotFoundError:
        v[n] = None
import torch
v['cuda'] = torch.version.cuda
v['gpu'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
v['python'] = platform.python_version()
print(json.dumps(v))
EOF
}

phase_receive() {
  say receive
  cp -f "$REPO"/.gpu/xfer/bundle.* /tmp/stage/ 2>/dev/null
  ls -la /tmp/stage
}

phase_setup() {
  say setup
  local t0=$SECONDS
  "$PY" - <<'EOF' || return 1
import hashlib, json, pathlib, sys
stage = pathlib.Path('/tmp/stage')
meta = json.loads((stage / 'bundle.json').read_text())
missing = [p for p in meta['pieces'] if not (stage / p).is_file() or (stage / p).stat().st_size != meta['pieces'][p]]
if missing:
    sys.exit(f'pieces missing or short: {missing}')
h = hashlib.sha256()
for p in sorted(meta['pieces']):
    with open(stage / p, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            h.update(block)
if h.hexdigest() != meta['sha256']:
    sys.exit('bundle sha256 mismatch')
print('bundle pieces complete, sha256 ok')
EOF
  rm -rf "$B"; mkdir -p "$G"
  cat /tmp/stage/bundle.tar.xz.* | xz -d -T0 | tar -C "$G" -xf - || return 1
  rm -rf "$G/rbsite"
  "$PY" "$REPO/scripts/gpu/install_plugin.py" --target "$G/rbsite" || return 1
  echo "unpacked + installed in $((SECONDS - t0)) s"
  server_env "$PY" - <<'EOF' 2>&1 | tail -15
import importlib.metadata as md, time
t = time.time()
import vllm
print('vllm', vllm.__version__, f'import {time.time() - t:.1f} s')
eps = [e for e in md.entry_points(group='vllm.general_plugins')]
print('vllm.general_plugins:', [(e.name, e.value) for e in eps])
import flag_gems
print('flag_gems', flag_gems.__version__, 'vendor', getattr(flag_gems, 'vendor_name', '?'))
EOF
  node_env "$PY" -c "
import rclpy, rclpy.action, sensor_msgs.msg
from robobrain_interfaces.action import Point
from robobrain_ros.node import brain_node
rclpy.init(); n = rclpy.create_node('smoke'); print('rclpy ok:', n.get_name(), Point.Goal().instruction == ''); n.destroy_node(); rclpy.shutdown()
" 2>&1 | tail -5
  "$PY" "$REPO/scripts/gpu/make_model_7b.py" --out "$MODEL" >"$LOGS/make_model.txt" 2>&1 \
    && tail -1 "$LOGS/make_model.txt" | cut -c1-200 || { tail -20 "$LOGS/make_model.txt"; return 1; }
  echo "setup done in $((SECONDS - t0)) s"
}

phase_extra() {  # wheels carried in .gpu/extra (added after a bundle was built), installed into the bundle's site
  say extra
  ls "$REPO"/.gpu/extra/*.whl >/dev/null 2>&1 || { echo "no .gpu/extra wheels"; return 0; }
  "$PY" -m pip install -q --no-deps --no-index --target "$B/site" "$REPO"/.gpu/extra/*.whl 2>&1 | grep -v WARN | tail -3
}

phase_fgdiag() {
  say "fgdiag (FlagGems ops on the model's shapes, one process each)"
  env PYTHONPATH="$B/site" "$PY" "$REPO/scripts/gpu/flaggems_diag.py" --out "$RES/gpu_flaggems_diag.json" \
    --exclude-out "$G/fg_exclude.txt" 2>&1 | tee "$LOGS/fgdiag.txt" | tail -25
}

phase_hf() {
  say "hf (path a)"
  env PYTHONPATH="$REPO/robobrain_ros" "$PY" "$REPO/scripts/gpu/hf_baseline.py" --model "$MODEL" --out "$RES/gpu_a_hf.json" \
    2>&1 | grep -v -i warn | tee "$LOGS/hf.txt" | tail -5
  "$PY" -c "import torch; torch.cuda.empty_cache()" >/dev/null 2>&1
}

phase_start() {  # $1 = variant
  local v=$1
  say "start $v"
  PORT=$(port_of "$v"); echo "$PORT" > "$G/current_port"   # a port per variant: a lingering server can't block
  (ss -ltnp 2>/dev/null || true) | grep -E ":90[0-9][0-9] " | cut -c1-200
  "$PY" "$REPO/scripts/gpu/serve_variant.py" --variant "$v" --ops-file "$RES/flaggems_ops_$v.txt" \
    --out "$G/serve_$v.yaml" | tee "$LOGS/serve_$v.variant.txt"
  rm -f "$G/ready_$v.json" "$RES"/flaggems_ops_"$v".txt*
  # FlagGems ops that flaggems_diag.py saw crash: skipped through the benchmark shim (FLAGGEMS_EXCLUDE=none: all)
  local shim="" excl=""
  if [[ "$v" == flaggems* ]] && [ "${FLAGGEMS_EXCLUDE:-auto}" != none ]; then
    excl=${FLAGGEMS_EXCLUDE:-$(cat "$G/fg_exclude.txt" 2>/dev/null)}
    [ "$excl" = auto ] && excl=""
    [ -n "$excl" ] && shim="$REPO/scripts/gpu/flaggems_exclude:"
  fi
  echo "${excl:-(none)}" > "$RES/flaggems_exclude_$v.txt"; [ -n "$excl" ] && echo "FlagGems ops excluded: $excl"
  echo "$v" > "$G/current_variant"
  date +%s.%N > "$G/start_$v.t"
  # setsid: the server outlives this call (the machine keeps it while warm); the pid is the serve tool's.
  ( cd "$REPO" && setsid bash -c 'echo $$ > "$0"; exec "$@"' "$G/serve.pid" \
      env PYTHONPATH="$shim$G/rbsite:$B/site" PATH="$B/site/bin:$PATH" ROBOBRAIN_BENCH_FLAGGEMS_EXCLUDE="$excl" \
      "$PY" -m robobrain_ros.serve --config "$G/serve_$v.yaml" --python "$PY" \
      --model "$MODEL" --port $PORT --ready-file "$G/ready_$v.json" --log-file "$LOGS/vllm_$v.log" \
      >"$LOGS/serve_cli_$v.log" 2>&1 < /dev/null & )
  sleep 2; tail -3 "$LOGS/serve_cli_$v.log"
}

phase_wait() {
  local v; v=$(cat "$G/current_variant")
  say "wait $v"
  local pid; pid=$(cat "$G/serve.pid")
  while [ ! -f "$G/ready_$v.json" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "serve tool exited before ready:"; tail -30 "$LOGS/serve_cli_$v.log"; tail -60 "$LOGS/vllm_$v.log"; return 1
    fi
    sleep 2
  done
  "$PY" - "$G/start_$v.t" "$G/ready_$v.json" <<'EOF'
import json, sys
start = float(open(sys.argv[1]).read()); r = json.load(open(sys.argv[2]))
print('ready:', r)
EOF
  cp -f "$G/ready_$v.json" "$RES/ready_$v.json"
  grep -E "FlagGems enabled|op list written|Using .* backend|cudagraph|Graph capturing|KV cache|torch.compile" \
    "$LOGS/vllm_$v.log" | cut -c1-300 | tail -12
}

phase_bench() {  # $1 = variant, $2 = full|''
  local v=$1 full=${2:-} label=$1
  say "bench $v $full"
  local extra=()
  [ "$full" = full ] && extra=(--budgets default,401408,raw)
  [ "$full" = topic ] && { extra=(--node-image topic); label=${v}_topic; }
  # A node left over from a cut-short bench (its own session): end it by its params file under $LOGS.
  for p in $(pgrep -f "robobrain_ros.node.brain_node --ros-args --params-file $LOGS/" 2>/dev/null); do kill "$p"; done
  ps -eo pid,ppid,comm,args --sort=pid | grep -E "vllm|VLLM|robobrain_ros.serve" | grep -v grep | cut -c1-220 \
    > "$RES/processes_$v.txt"
  node_env "$PY" "$REPO/scripts/gpu/bench_serving.py" --base-url "http://127.0.0.1:$PORT/v1" --label "$label" \
    --log-dir "$LOGS/node_$label" --out "$RES/gpu_bc_$label.json" ${BENCH_ARGS:-} "${extra[@]}" 2>&1 \
    | tee "$LOGS/bench_$label.txt" | grep -v -i warn | tail -14
  curl -s "http://127.0.0.1:$PORT/metrics" > "$LOGS/metrics_$v.txt" 2>/dev/null
  if ls "$RES"/flaggems_ops_"$v".txt* >/dev/null 2>&1; then
    echo "FlagGems op lists (one per vLLM process that loaded the plugin):"
    for f in "$RES"/flaggems_ops_"$v".txt*; do
      local p=${f##*.txt.}; [ "$p" = "$f" ] && p=first
      echo "  $f: $(wc -l < "$f") ops; pid $p: $(cat /proc/$p/comm 2>/dev/null || echo '?')"
    done
  fi
}

phase_stop() {
  local v; v=$(cat "$G/current_variant" 2>/dev/null)
  say "stop $v"
  local pid; pid=$(cat "$G/serve.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { echo "serve tool still alive: SIGKILL its group"; kill -KILL -- "-$pid" 2>/dev/null; }
  sleep 3; nvidia-smi --query-gpu=memory.used --format=csv,noheader
}

trap collect EXIT
for ph in "$@"; do
  IFS=: read -r name a1 a2 <<< "$ph"
  case "$name" in
    check) phase_check ;;
    receive) phase_receive ;;
    setup) phase_setup || { echo "setup failed"; exit 1; } ;;
    hf) phase_hf ;;
    extra) phase_extra ;;
    fgdiag) phase_fgdiag ;;
    start) phase_start "$a1" ;;
    wait) phase_wait || { echo "wait failed"; collect; continue; } ;;
    bench) phase_bench "$a1" "$a2" ;;
    stop) phase_stop ;;
    *) echo "unknown phase $ph"; exit 2 ;;
  esac
  collect
done
say done
