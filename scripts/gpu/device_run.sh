#!/usr/bin/env bash
# Issues 8 / 13 / 14 on the GPU machine: runs in the repository root there, one or more phases per call.
# The planned sequence of calls (carry, phases, minutes): scripts/gpu/README.md.
#
# Phases:
#   check              GPU, driver, Python, glibc, the image's package versions
#   receive            copy the carried .gpu/xfer/bundle.* into /tmp/stage (kept while the machine stays warm)
#   setup              check the pieces' sha256, unpack to /tmp/gpu (vLLM site + flag_gems 5.0.2 and 5.0.0 in
#                      gpubundle/fg/<version>), install robobrain_ros (its vLLM plugin entry points) into
#                      /tmp/gpu/rbsite, smoke-import vllm / xgrammar / both flag_gems / rclpy, check the plugin's
#                      load format, write the 7B and 32B model folders (make_model.py)
#   extra              install wheels carried in .gpu/extra into the bundle's site (added after the bundle)
#   fgdiag[:VERSION]   scripts/gpu/flaggems_diag.py with flag_gems VERSION (default $FLAGGEMS_VERSION, 5.0.2):
#                      a verdict per op and the suggested exclusions ($G/fg_exclude_VERSION.txt)
#   hf                 path (a): scripts/gpu/hf_baseline.py (7B)
#   start:VARIANT[:VERSION]  stop a server still running, wait until the port is free (else take the next
#                      one) and the GPU memory is released, rotate the variant's logs, write the YAML
#                      (serve_variant.py: [32b_]native|eager|flaggems|flaggems_none|flaggems_eager) and start
#                      `python3 -m robobrain_ros.serve` under setsid (returns at once). VERSION: flag_gems for
#                      flaggems variants (default $FLAGGEMS_VERSION); results are labelled VARIANT, or
#                      VARIANT_fgVERSION when VERSION is not 5.0.2.
#   wait               until the serve tool's --ready-file exists, it died, or $WAIT_MAX s (default 480) passed
#   bench:VARIANT[:goal|:compressed|:topic|:full]  paths (b) and (c) through the node at 1 / 8 / 32 goals
#                      (bench_serving.py): default the rgb8 image in the goal, the same frame as a JPEG in the goal
#                      and the frame from the camera topic, one after the other; full adds the image budgets.
#                      $BENCH_ARGS passes options (e.g. "--single 8 --reps 2").
#   fleet:VARIANT      8 brain nodes (own process, own 640x480 camera at 5 Hz) sharing the running server, 4 Point
#                      goals each at once, against the same 32 bodies posted directly: `python -m robobrain_ros.bench
#                      --only fleet` (robobrain_ros/bench/fleet.py) -> $RES/fleet_LABEL.json
#   consistency:VARIANT  python -m robobrain_ros.consistency against the running server: a native variant is
#                      compared with itself and saved as the reference of its architecture
#                      ($RES/consistency_ref_ARCH.json; a carried .gpu/ref/consistency_ref_ARCH.json is used
#                      when this machine has none); an eager or FlagGems variant is compared with that file,
#                      a FlagGems one with the same architecture's eager report as the gate's --baseline-file
#                      when this machine has one (consistency:[32b_]eager first).
#                      $CONSISTENCY_ARGS passes options (e.g. "--samples DIR").
#   stop               SIGTERM the serve tool (it stops the server's process group), wait for the GPU memory
# Environment: FLAGGEMS_VERSION (5.0.2), FLAGGEMS_EXCLUDE (ROBOBRAIN_FLAGGEMS_EXCLUDE for flaggems variants:
# unset = the plugin's platform default; `diag` = what the last fgdiag suggested), LOAD_FORMAT
# (robobrain_seeded; `dummy` if the plugin's loader fails), BENCH_ARGS, CONSISTENCY_ARGS, WAIT_MAX, PROFILE_NODE
# (1: bench samples the node with py-spy, unpacked from a carried .gpu/extra/py_spy-*.whl).
# Every phase appends to /tmp/gpu/results; after each phase results + logs are packed into $OUT/results.tgz
# and a summary is printed, so a call cut short still returns what it finished.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
G=/tmp/gpu
B=$G/gpubundle
RES=$G/results
LOGS=$G/logs
PORT=$(cat "$G/current_port" 2>/dev/null || echo 9010)
FLAGGEMS_VERSION="${FLAGGEMS_VERSION:-5.0.2}"
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

model_dir() { echo "$G/robobrain2_$1"; }        # 7b | 32b: the folders setup writes (make_model.py)
arch_of() { case "$1" in 32b_*) echo 32b;; *) echo 7b;; esac; }
label_of() {     # $1 variant, $2 flag_gems version: what results and logs are named after
  if [[ "$1" == *flaggems* ]] && [ "$2" != 5.0.2 ]; then echo "${1}_fg${2//./}"; else echo "$1"; fi
}
fg_site() {      # flag_gems VERSION's folder (fails loudly when setup did not unpack it)
  [ -d "$B/fg/$1/flag_gems" ] || { echo "no flag_gems $1 in $B/fg (have: $(ls "$B/fg" 2>/dev/null | tr '\n' ' '))" >&2; return 1; }
  echo "$B/fg/$1"
}
server_env() {   # $1 = flag_gems version; vLLM's site (the bundle) + robobrain_ros with its plugin entry points
  local fg; fg=$(fg_site "$1") || return 1; shift
  env PYTHONPATH="$G/rbsite:$fg:$B/site" PATH="$B/site/bin:$PATH" "$@"
}
port_free() {    # true when a server may listen on 127.0.0.1:$1 now (uvicorn binds with SO_REUSEADDR)
  "$PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
' "$1"
}
gpu_used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' '; }
server_alive() { local pid; pid=$(cat "$G/serve.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }
node_env() {     # the node's Python: the image's numpy/cv2/aiohttp + the ROS 2 runtime + the source tree
  # Camera frames through Fast DDS shared memory sized for 4K frames: the project's profile, as scripts/env.sh.
  local rsite="$B/ros/lib/python3.12/site-packages" wsite="$B/ros_ws/robobrain_interfaces/lib/python3.12/site-packages"
  # The wheels' vendored libraries (ros_*.libs) are found through LD_LIBRARY_PATH, as ros_wheels_bootstrapper
  # (a .pth that PYTHONPATH does not run) would set it.
  local vendored; vendored=$(ls -d "$rsite"/ros_*.libs 2>/dev/null | tr '\n' ':')
  env PYTHONPATH="$REPO/robobrain_ros:$rsite:$wsite" \
      LD_LIBRARY_PATH="$B/ros/lib:$B/ros_ws/robobrain_interfaces/lib:${vendored}${LD_LIBRARY_PATH:-}" \
      AMENT_PREFIX_PATH="$B/ros:$B/ros_ws/robobrain_interfaces" RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
      ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=42 ROS_LOG_DIR="$LOGS/ros" \
      FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$REPO/robobrain_ros/config/fastdds_large_frames.xml}" \
      "$@"
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
  # Fast DDS maps its shared-memory segments here (the frame profile: 64 MiB each, all of it zero-filled at start).
  df -h /dev/shm | tail -1
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
  # The model folders, in the background while the imports are checked (tokenizer training: CPU only).
  local a
  for a in 7b 32b; do
    "$PY" "$REPO/scripts/gpu/make_model.py" --arch $a --out "$(model_dir $a)" >"$LOGS/make_model_$a.txt" 2>&1 &
  done
  server_env 5.0.2 "$PY" - <<'EOF' 2>&1 | tail -15
import importlib.metadata as md, time
t = time.time()
import vllm
print('vllm', vllm.__version__, f'import {time.time() - t:.1f} s')
eps = [e for e in md.entry_points(group='vllm.general_plugins')]
print('vllm.general_plugins:', [(e.name, e.value) for e in eps])
try:   # structured outputs: xgrammar 0.2.x needs apache-tvm-ffi 0.1.15.post2 (vLLM's own pin fails)
    import xgrammar
    print('xgrammar', getattr(xgrammar, '__version__', '?'), 'ok')
except Exception as e:  # noqa: BLE001
    print(f'xgrammar FAILED: {type(e).__name__}: {e}')
try:
    from vllm.plugins import load_general_plugins
    load_general_plugins()
    from vllm.model_executor import model_loader
    formats = getattr(model_loader, '_LOAD_FORMAT_TO_MODEL_LOADER', {})
    print('load format robobrain_seeded registered:', 'robobrain_seeded' in formats,
          '' if 'robobrain_seeded' in formats else '(LOAD_FORMAT=dummy would serve, without consistency)')
except Exception as e:  # noqa: BLE001
    print(f'general plugins FAILED: {type(e).__name__}: {e}')
EOF
  local v
  for v in "$B"/fg/*/; do
    v=$(basename "$v")
    server_env "$v" "$PY" -c "import flag_gems; print('flag_gems', flag_gems.__version__, 'from', flag_gems.__file__.rsplit('/', 2)[0], 'vendor', getattr(flag_gems, 'vendor_name', '?'))" 2>&1 | tail -2
  done
  node_env "$PY" -c "
import rclpy, rclpy.action, sensor_msgs.msg
from robobrain_interfaces.action import Point
from robobrain_ros.node import brain_node
rclpy.init(); n = rclpy.create_node('smoke'); print('rclpy ok:', n.get_name(), Point.Goal().instruction == ''); n.destroy_node(); rclpy.shutdown()
" 2>&1 | tail -5
  wait   # the model folders
  for a in 7b 32b; do
    if [ -f "$(model_dir $a)/config.json" ]; then tail -1 "$LOGS/make_model_$a.txt" | cut -c1-120
    else tail -20 "$LOGS/make_model_$a.txt"; return 1; fi
  done
  echo "setup done in $((SECONDS - t0)) s"
}

phase_extra() {  # wheels carried in .gpu/extra (added after a bundle was built), installed into the bundle's site
  say extra
  ls "$REPO"/.gpu/extra/*.whl >/dev/null 2>&1 || { echo "no .gpu/extra wheels"; return 0; }
  "$PY" -m pip install -q --no-deps --no-index --target "$B/site" "$REPO"/.gpu/extra/*.whl 2>&1 | grep -v WARN | tail -3
}

phase_fgdiag() {  # $1 = flag_gems version
  local v=${1:-$FLAGGEMS_VERSION} fg
  say "fgdiag flag_gems $v (ops against aten on the model's shapes and layouts, one process each)"
  fg=$(fg_site "$v") || return 1
  env PYTHONPATH="$fg:$B/site" "$PY" "$REPO/scripts/gpu/flaggems_diag.py" --label "flag_gems $v" \
    --out "$RES/gpu_flaggems_diag_${v//./}.json" --exclude-out "$G/fg_exclude_$v.txt" 2>&1 \
    | tee "$LOGS/fgdiag_$v.txt" | grep -v "| ok |" | tail -45
}

phase_hf() {
  say "hf (path a)"
  env PYTHONPATH="$REPO/robobrain_ros" "$PY" "$REPO/scripts/gpu/hf_baseline.py" --model "$(model_dir 7b)" --out "$RES/gpu_a_hf.json" \
    2>&1 | grep -v -i warn | tee "$LOGS/hf.txt" | tail -5
  "$PY" -c "import torch; torch.cuda.empty_cache()" >/dev/null 2>&1
}

phase_start() {  # $1 = variant, $2 = flag_gems version
  local v=$1 fgv=${2:-$FLAGGEMS_VERSION} label arch fg
  label=$(label_of "$v" "$fgv"); arch=$(arch_of "$v")
  say "start $v (label $label, arch $arch, flag_gems $fgv)"
  [ -f "$(model_dir "$arch")/config.json" ] || { echo "no model folder $(model_dir "$arch"): run setup"; return 1; }
  fg=$(fg_site "$fgv") || return 1
  if server_alive; then echo "a server is still running: stopping it first"; phase_stop; fi
  # A port of its own: the last one + 1, so a socket the previous server still holds (about 25 s after it
  # stopped) cannot block the start; it waits up to 60 s for that port to be free, else takes the next.
  local port waited=0
  port=$(( $(cat "$G/last_port" 2>/dev/null || echo 9009) + 1 ))
  until port_free "$port"; do
    if [ $waited -ge 60 ]; then echo "port $port still held after 60 s: taking $((port + 1))"; port=$((port + 1)); waited=0; fi
    sleep 2; waited=$((waited + 2))
  done
  echo "$port" > "$G/last_port"; echo "$port" > "$G/current_port"; PORT=$port
  # The previous server's GPU memory must be back before vLLM measures what it may take.
  local used; used=$(gpu_used_mib); waited=0
  while [ "${used:-0}" -gt 4096 ] && [ $waited -lt 90 ]; do sleep 3; waited=$((waited + 3)); used=$(gpu_used_mib); done
  echo "port $port free; GPU memory used ${used:-?} MiB"
  [ "${used:-0}" -gt 4096 ] && nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  # Each start gets logs of its own: the serve tool appends to --log-file, so the previous run's log moves aside.
  local f
  for f in "$LOGS/vllm_$label.log" "$LOGS/serve_cli_$label.log"; do [ -f "$f" ] && mv -f "$f" "$f.prev"; done
  rm -f "$G/ready_$label.json" "$RES"/flaggems_ops_"$label".txt*
  local excl=() fe=${FLAGGEMS_EXCLUDE-}
  if [[ "$v" == *flaggems* ]] && [ -n "$fe" ]; then
    [ "$fe" = diag ] && fe=$(tr -d '\n' < "$G/fg_exclude_$fgv.txt" 2>/dev/null)
    excl=(--exclude "${fe:-none}")
  fi
  "$PY" "$REPO/scripts/gpu/serve_variant.py" --variant "$v" --ops-file "$RES/flaggems_ops_$label.txt" \
    --load-format "${LOAD_FORMAT:-robobrain_seeded}" "${excl[@]}" --out "$G/serve_$label.yaml" \
    | tee "$LOGS/serve_$label.variant.txt"
  [ -f "$G/serve_$label.yaml" ] || return 1
  "$PY" "$REPO/scripts/gpu/serve_variant.py" --variant "$v" --served-name > "$G/served_$label.txt"
  echo "$v" > "$G/current_variant"; echo "$label" > "$G/current_label"
  date +%s.%N > "$G/start_$label.t"
  # setsid: the server outlives this call (the machine keeps it while warm); the pid is the serve tool's.
  # A ROBOBRAIN_FLAGGEMS_EXCLUDE of this shell must not leak into a variant that leaves it to the plugin.
  ( cd "$REPO" && setsid bash -c 'echo $$ > "$0"; exec "$@"' "$G/serve.pid" \
      env -u ROBOBRAIN_FLAGGEMS_EXCLUDE PYTHONPATH="$G/rbsite:$fg:$B/site" PATH="$B/site/bin:$PATH" \
      "$PY" -m robobrain_ros.serve --config "$G/serve_$label.yaml" --python "$PY" \
      --model "$(model_dir "$arch")" --port "$port" --ready-file "$G/ready_$label.json" \
      --log-file "$LOGS/vllm_$label.log" >"$LOGS/serve_cli_$label.log" 2>&1 < /dev/null & )
  sleep 3; tail -5 "$LOGS/serve_cli_$label.log"
}

phase_wait() {
  local v; v=$(cat "$G/current_label")
  say "wait $v"
  local pid t0=$SECONDS; pid=$(cat "$G/serve.pid")
  while [ ! -f "$G/ready_$v.json" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "serve tool exited before ready:"; tail -30 "$LOGS/serve_cli_$v.log"; tail -60 "$LOGS/vllm_$v.log"; return 1
    fi
    if [ $((SECONDS - t0)) -ge "${WAIT_MAX:-480}" ]; then
      echo "not ready after ${WAIT_MAX:-480} s (still starting: call wait again)"; tail -5 "$LOGS/vllm_$v.log" | cut -c1-250
      return 1
    fi
    sleep 2
  done
  "$PY" - "$G/start_$v.t" "$G/ready_$v.json" <<'EOF'
import json, sys
start = float(open(sys.argv[1]).read()); r = json.load(open(sys.argv[2]))
print('ready:', r)
EOF
  cp -f "$G/ready_$v.json" "$RES/ready_$v.json"
  grep -E "FlagGems|flaggems|op list written|robobrain_seeded|Using .* backend|cudagraph|Graph capturing|KV cache|torch.compile|Loading weights took|Model loading took" \
    "$LOGS/vllm_$v.log" | cut -c1-300 | tail -12
}

current_server() {   # checks that the running server is VARIANT's; sets LABEL and MODEL_NAME
  local v=$1
  LABEL=$(cat "$G/current_label" 2>/dev/null); MODEL_NAME=$(cat "$G/served_$LABEL.txt" 2>/dev/null)
  if [ "$(cat "$G/current_variant" 2>/dev/null)" != "$v" ]; then
    echo "the running server is $(cat "$G/current_variant" 2>/dev/null || echo none), not $v: start:$v first"; return 1
  fi
  [ -f "$G/ready_$LABEL.json" ] || { echo "server $LABEL is not ready: wait first"; return 1; }
}

py_spy() {       # the py-spy executable, unpacked once from the carried wheel (pip --target keeps the site's bin/)
  local spy=$G/py-spy whl
  if [ ! -x "$spy" ]; then
    whl=$(ls "$REPO"/.gpu/extra/py_spy-*.whl 2>/dev/null | head -1)
    [ -n "$whl" ] || return 1
    "$PY" -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = next(n for n in z.namelist() if n.endswith("/scripts/py-spy"))
open(sys.argv[2], "wb").write(z.read(name))' "$whl" "$spy" && chmod +x "$spy" || return 1
  fi
  echo "$spy"
}

phase_bench() {  # $1 = variant, $2 = goal|compressed|topic|full|'' (goal, compressed and topic)
  local v=$1 mode=${2:-} LABEL MODEL_NAME
  current_server "$v" || return 1
  say "bench $LABEL ${mode:-goal+compressed+topic} (model $MODEL_NAME, port $PORT)"
  # A node left over from a cut-short bench (its own session): end it by its params file under $LOGS.
  local p
  for p in $(pgrep -f "robobrain_ros.node.brain_node --ros-args --params-file $LOGS/" 2>/dev/null); do kill "$p"; done
  ps -eo pid,ppid,comm,args --sort=pid | grep -E "vllm|VLLM|robobrain_ros.serve" | grep -v grep | cut -c1-220 \
    > "$RES/processes_$LABEL.txt"
  local runs=()
  case "$mode" in
    '') runs=(goal compressed topic) ;;
    goal|compressed|topic) runs=("$mode") ;;
    full) runs=(full) ;;
    *) echo "bench mode $mode: goal, compressed, topic or full"; return 1 ;;
  esac
  local r name extra
  for r in "${runs[@]}"; do
    name=$LABEL; extra=()
    case "$r" in
      topic) name=${LABEL}_topic; extra=(--node-image topic) ;;
      compressed) name=${LABEL}_compressed; extra=(--node-image compressed) ;;
      full) name=${LABEL}_full; extra=(--budgets "default,401408,raw") ;;
    esac
    # PROFILE_NODE=1: py-spy (from a carried .gpu/extra/py_spy-*.whl) samples the node in the largest bursts.
    if [ -n "${PROFILE_NODE:-}" ]; then
      if py_spy >/dev/null; then extra+=(--profile-node "$(py_spy)"); echo "profiling the node with $(py_spy)"
      else echo "PROFILE_NODE: no py-spy (carry .gpu/extra/py_spy-*.whl)"; fi
    fi
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    node_env "$PY" "$REPO/scripts/gpu/bench_serving.py" --base-url "http://127.0.0.1:$PORT/v1" \
      --model "$MODEL_NAME" --label "$name" --log-dir "$LOGS/node_$name" --out "$RES/gpu_bc_$name.json" \
      ${BENCH_ARGS:-} "${extra[@]}" 2>&1 | tee "$LOGS/bench_$name.txt" | grep -v -i warn | tail -14
  done
  curl -s "http://127.0.0.1:$PORT/metrics" > "$LOGS/metrics_$LABEL.txt" 2>/dev/null
  if ls "$RES"/flaggems_ops_"$LABEL".txt* >/dev/null 2>&1; then
    echo "FlagGems op lists (one per vLLM process that loaded the plugin):"
    for f in "$RES"/flaggems_ops_"$LABEL".txt*; do
      local q=${f##*.txt.}; [ "$q" = "$f" ] && q=first
      echo "  $f: $(wc -l < "$f") lines; pid $q: $(cat /proc/$q/comm 2>/dev/null || echo '?')"
    done
  fi
}

phase_fleet() {  # $1 = variant: the CPU benchmark's fleet section against the running server
  local v=$1 LABEL MODEL_NAME dir
  current_server "$v" || return 1
  dir=$G/fleet_$LABEL; rm -rf "$dir"
  say "fleet $LABEL (model $MODEL_NAME, port $PORT)"
  node_env "$PY" -m robobrain_ros.bench --server "http://127.0.0.1:$PORT/v1" --model "$MODEL_NAME" --only fleet \
    --out "$dir" 2>&1 | tee "$LOGS/fleet_$LABEL.txt" | grep -v -i warn | tail -8
  cp -f "$dir/benchmarks/cpu_results.json" "$RES/fleet_$LABEL.json" 2>/dev/null \
    || echo "fleet $LABEL: no results (see logs/fleet_$LABEL.txt)"
}

phase_consistency() {  # $1 = variant: [32b_]native -> the reference of its architecture; others -> compared with it
  local v=$1 LABEL MODEL_NAME arch ref rc
  current_server "$v" || return 1
  arch=$(arch_of "$v"); ref=$RES/consistency_ref_$arch.json
  local url="http://127.0.0.1:$PORT/v1" args=()
  if [[ "$v" != native && "$v" != 32b_native ]]; then   # eager and FlagGems variants: against the reference
    if [ ! -f "$ref" ] && [ -f "$REPO/.gpu/ref/consistency_ref_$arch.json" ]; then
      cp "$REPO/.gpu/ref/consistency_ref_$arch.json" "$ref"; echo "reference carried in .gpu/ref"
    fi
    [ -f "$ref" ] || { echo "no reference $ref: run consistency on ${arch/7b/}native first (or carry .gpu/ref/)"; return 1; }
    args=(--reference-file "$ref" --candidate "$url")
    # vLLM's eager mode of the same architecture, when measured, is the harmless baseline of a FlagGems run
    local eager; eager=$RES/consistency_$([ "$arch" = 32b ] && echo 32b_)eager.json
    [[ "$v" == *flaggems* && -f "$eager" ]] && args+=(--baseline-file "$eager")
  else
    args=(--reference "$url" --candidate "$url" --save-reference "$ref")
  fi
  say "consistency $LABEL (${args[*]})"
  # shellcheck disable=SC2086  # CONSISTENCY_ARGS is a list of options
  env PYTHONPATH="$REPO/robobrain_ros" "$PY" -m robobrain_ros.consistency "${args[@]}" \
    --json "$RES/consistency_$LABEL.json" ${CONSISTENCY_ARGS:-} 2>&1 | tee "$LOGS/consistency_$LABEL.txt" | tail -40
  rc=${PIPESTATUS[0]}
  echo "consistency $LABEL: exit $rc ($([ "$rc" = 0 ] && echo 'gate passed' || echo 'gate failed or error'))"
  echo "$rc" > "$RES/consistency_$LABEL.rc"
}

phase_stop() {
  local v pid spid; v=$(cat "$G/current_label" 2>/dev/null)
  say "stop $v"
  pid=$(cat "$G/serve.pid" 2>/dev/null) || return 0
  spid=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", ""))' "$G/ready_$v.json" 2>/dev/null)
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then echo "serve tool still alive after 60 s: SIGKILL its group"; kill -KILL -- "-$pid" 2>/dev/null; fi
  # The vLLM server (its own process group, started by the serve tool) must be gone too.
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    echo "vLLM server $spid still alive: SIGKILL its group"; kill -KILL -- "-$spid" 2>/dev/null || kill -KILL "$spid" 2>/dev/null
  fi
  rm -f "$G/current_variant"
  local used waited=0; used=$(gpu_used_mib)
  while [ "${used:-0}" -gt 4096 ] && [ $waited -lt 60 ]; do sleep 2; waited=$((waited + 2)); used=$(gpu_used_mib); done
  echo "GPU memory used: ${used:-?} MiB (after ${waited} s)"
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
    fgdiag) phase_fgdiag "$a1" ;;
    start) phase_start "$a1" "$a2" || echo "start failed" ;;
    wait) phase_wait || echo "wait failed" ;;
    bench) phase_bench "$a1" "$a2" ;;
    fleet) phase_fleet "$a1" ;;
    consistency) phase_consistency "$a1" ;;
    stop) phase_stop ;;
    *) echo "unknown phase $ph"; exit 2 ;;
  esac
  collect
done
say "done"
