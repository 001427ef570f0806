#!/usr/bin/env python3
"""Which FlagGems ops break on this GPU for RoboBrain2.0-7B's shapes (Qwen2.5-VL-7B: ViT + LLM), one by one.

vLLM with FlagGems enabled died with 'an illegal memory access' (docs/BENCHMARKS.md, GPU section). An
illegal access poisons the CUDA context and is reported at a later, innocent kernel, so each case runs in a
fresh process: the aten result is computed first, then flag_gems.enable(), the same call again, a device
synchronize, and the relative error against the aten result. Output: one line per case, a JSON report and
(--exclude-out) the FlagGems function names of the failing cases, for ROBOBRAIN_BENCH_FLAGGEMS_EXCLUDE.

    python3 scripts/gpu/flaggems_diag.py --out diag.json --exclude-out exclude.txt
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

# name: (FlagGems functions it exercises, code building `run` (a zero-argument callable) on the GPU in bf16)
VIT_TOKENS = 4784      # patches of a 1288x728 frame (92 x 52)
LLM_TOKENS = 1385      # prompt tokens of the benchmark's pointing query
CASES = {
    'linear_vit_qkv': (['addmm', 'mm'], f'x=r({VIT_TOKENS},1280); w=r(3840,1280); b=r(3840); run=lambda: F.linear(x,w,b)'),
    'linear_vit_mlp_up_N3420': (['addmm', 'mm'], f'x=r({VIT_TOKENS},1280); w=r(3420,1280); b=r(3420); run=lambda: F.linear(x,w,b)'),
    'linear_vit_mlp_down_K3420': (['addmm', 'mm'], f'x=r({VIT_TOKENS},3420); w=r(1280,3420); b=r(1280); run=lambda: F.linear(x,w,b)'),
    'mm_N3420_nobias': (['mm'], f'x=r({VIT_TOKENS},1280); w=r(3420,1280); run=lambda: F.linear(x,w)'),
    'linear_merger': (['addmm', 'mm'], 'x=r(1196,5120); w=r(5120,5120); b=r(5120); run=lambda: F.linear(x,w,b)'),
    'linear_llm_qkv_prefill': (['addmm', 'mm'], f'x=r({LLM_TOKENS},3584); w=r(4608,3584); b=r(4608); run=lambda: F.linear(x,w,b)'),
    'linear_llm_qkv_decode32': (['addmm', 'mm'], 'x=r(32,3584); w=r(4608,3584); b=r(4608); run=lambda: F.linear(x,w,b)'),
    'mm_llm_gate_up': (['mm'], f'x=r({LLM_TOKENS},3584); w=r(37888,3584); run=lambda: F.linear(x,w)'),
    'mm_llm_down': (['mm'], f'x=r({LLM_TOKENS},18944); w=r(3584,18944); run=lambda: F.linear(x,w)'),
    'mm_lm_head_decode': (['mm'], 'x=r(8,3584); w=r(152064,3584); run=lambda: F.linear(x,w)'),
    # vLLM's profile run pushes max_num_batched_tokens (8192) tokens through the LLM: the o_proj GEMM of that
    # run is where FlagGems' Hopper mm (host-TMA kernel, while autotuning) hit the illegal access in vLLM.
    'mm_o_proj_M8192': (['mm'], 'x=r(8192,3584); w=r(3584,3584); run=lambda: F.linear(x,w)'),
    'linear_qkv_M8192': (['addmm', 'mm'], 'x=r(8192,3584); w=r(4608,3584); b=r(4608); run=lambda: F.linear(x,w,b)'),
    'mm_gate_up_M8192': (['mm'], 'x=r(8192,3584); w=r(37888,3584); run=lambda: F.linear(x,w)'),
    'conv3d_patch_embed': (['conv3d'], f'x=r({VIT_TOKENS},3,2,14,14); w=r(1280,3,2,14,14); run=lambda: F.conv3d(x,w,stride=(2,14,14))'),
    'mul_rms_weight': (['mul'], f'x=r({VIT_TOKENS},1280); w=r(1280); run=lambda: x*w'),
    'to_float_pow_mean': (['to_copy', 'pow_tensor_scalar', 'mean_dim', 'rsqrt'],
                          f'x=r({VIT_TOKENS},1280); run=lambda: torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True)+1e-6)'),
    'fill_zero': (['fill_scalar_', 'zero_'], f'x=r({LLM_TOKENS},3584); run=lambda: x.clone().fill_(0)'),
    'embedding': (['embedding'], f'w=r(152064,3584); i=torch.randint(0,151643,({LLM_TOKENS},),device="cuda"); run=lambda: F.embedding(i,w)'),
    'silu_mul': (['silu', 'mul'], f'x=r({VIT_TOKENS},3420); y=r({VIT_TOKENS},3420); run=lambda: F.silu(x)*y'),
    'cat_index_select': (['cat', 'index_select'], f'x=r({VIT_TOKENS},1280); i=torch.randperm({VIT_TOKENS},device="cuda"); run=lambda: torch.cat([x.index_select(0,i), x])'),
    'softmax_fp32': (['softmax'], 'x=torch.randn(32,152064,device="cuda"); run=lambda: torch.softmax(x,-1)'),
    'argmax_decode': (['argmax'], 'x=torch.randn(32,152064,device="cuda"); run=lambda: torch.argmax(x,-1).float()'),
    'cumsum_arange': (['cumsum', 'arange'], 'x=torch.randint(1,100,(64,),device="cuda"); run=lambda: (torch.cumsum(x,0)+torch.arange(64,device="cuda")).float()'),
    'rotary_cos_sin': (['cos', 'sin', 'mul', 'cat'], f'x=torch.randn({VIT_TOKENS},40,device="cuda"); run=lambda: torch.cat([x.cos(), x.sin()], -1)'),
}

CHILD = r'''
import sys, torch, torch.nn.functional as F
torch.manual_seed(0)
def r(*s):
    return torch.randn(*s, device="cuda", dtype=torch.bfloat16) * 0.5
{setup}
ref = run().float()
torch.cuda.synchronize()
import flag_gems
flag_gems.enable()
out = run().float()
torch.cuda.synchronize()
err = ((out - ref).norm() / ref.norm().clamp_min(1e-12)).item()
print("RESULT", err)
'''


def run_case(name: str, setup: str, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, '-c', CHILD.replace('{setup}', setup.replace('; ', '\n'))],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {'case': name, 'ok': False, 'error': f'timeout {timeout} s', 'seconds': timeout}
    seconds = round(time.perf_counter() - start, 1)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT')]
    if proc.returncode == 0 and lines:
        err = float(lines[-1].split()[1])
        return {'case': name, 'ok': err < 2e-2, 'rel_err': err, 'seconds': seconds}
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-3:]
    return {'case': name, 'ok': False, 'error': ' | '.join(tail)[-400:], 'seconds': seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--exclude-out', type=Path)
    parser.add_argument('--jobs', type=int, default=6)
    parser.add_argument('--timeout', type=float, default=120.0)
    args = parser.parse_args(argv)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(run_case, name, setup, args.timeout) for name, (_, setup) in CASES.items()}
        results = [futures[name].result() for name in CASES]
    exclude = sorted({f for r in results if not r['ok'] for f in CASES[r['case']][0]})
    for r in results:
        status = 'ok  ' if r['ok'] else 'FAIL'
        detail = f"rel_err {r['rel_err']:.2e}" if 'rel_err' in r else r.get('error', '')
        print(f"{status} {r['case']:28s} {r['seconds']:6.1f} s  {detail}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'results': results, 'exclude': exclude,
                                    'cases': {k: {'ops': v[0], 'code': v[1]} for k, v in CASES.items()}}, indent=1))
    if args.exclude_out:
        args.exclude_out.write_text(','.join(exclude) + '\n')
    print('ops to exclude:', ','.join(exclude) or '(none)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
