#!/usr/bin/env python3
"""FlagGems ops against aten on RoboBrain 2.0's shapes and layouts, one process per case; a verdict per op.

Why: vLLM with FlagGems 5.0.2 crashed at its first request on an H200, and its Hopper kernels for `mul`, `fill_`
and `sqrt` returned wrong numbers on sliced / strided inputs (../shared/FLAGGEMS.md), while every case of the
first version of this probe passed: it only tried contiguous inputs. The cases now cover what broke:
same-rank broadcasts, slices, transposes, non-contiguous views, more than 2^31 elements, GEMMs on row-stride
views and on an unaligned base pointer, plus the elementwise / cat / index ops the model runs on such inputs.

Each case runs in its own process (an illegal memory access poisons the CUDA context and is reported at a
later, innocent kernel): the inputs are made from a fixed seed, the case runs once with aten, the inputs are
made again and the case runs inside `flag_gems.use_gems()` (FlagGems on for that call only; the comparison
runs in aten), then a synchronize and the relative error ||out - ref|| / ||ref|| over every element of the
result (in float64 chunks, so the >2^31-element case fits). Verdicts:
  ok      relative error <= the case's tolerance (bf16 elementwise 1e-2, GEMMs 2e-2) and no NaN/inf where
          aten has none, same shape;
  wrong   it ran and answered, with other numbers (or shape);
  crash   a CUDA error (illegal memory access, misaligned address, launch failure), a signal or a timeout;
  error   FlagGems raised a Python exception (AssertionError, IndexError, AttributeError ...) for this input;
  harness the aten reference itself failed (a bug of this script): the case says nothing about FlagGems.
  skipped BIG cases in the CPU dry run.
Per op: the worst verdict over the cases that exercise it (cases naming several ops mark all of them; the
single-op cases tell them apart). Every op whose verdict is not ok goes into the suggested exclusion list
(--exclude-out, comma separated: ROBOBRAIN_FLAGGEMS_EXCLUDE / serve_variant.py --exclude; names as
flag_gems.enable(unused=...) takes them).

    python3 scripts/gpu/flaggems_diag.py --out diag.json --exclude-out exclude.txt       # GPU, FlagGems vs aten
    python3 scripts/gpu/flaggems_diag.py --device cpu --out /tmp/diag.json               # aten vs aten: checks
                                                                                        # this script (small shapes)
Options: --cases a,b (subset), --jobs N (processes at once), --timeout S (per case).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VIT = 4784      # patches of a 1288x728 frame (92 x 52): the ViT's rows
LLM = 1385      # prompt tokens of the benchmark's pointing query

# name: (FlagGems ops it exercises, tolerance, code). The code runs in the child with torch, F, r(*shape)
# (random bf16 on the device, N(0, 0.5)), d(n) (n on the GPU, n // 32 (>= 8) in the CPU dry run) and DEV;
# it defines make() -> tuple of inputs (runs in aten) and run(*inputs) -> tensor (the call under test).
# BIG cases need > 8 GB of device memory and are skipped in the CPU dry run.
E, G = 1e-2, 2e-2
CASES: dict[str, tuple[list[str], float, str]] = {
    # ---- contiguous: the first probe's cases (GEMMs of the ViT, merger and LLM, the profile run's 8192 rows)
    'linear_vit_qkv': (['addmm', 'mm'], G, 'make=lambda: (r(d(VIT),1280), r(3840,1280), r(3840)); run=F.linear'),
    'linear_vit_mlp_down_K3420': (['addmm', 'mm'], G,
                                  'make=lambda: (r(d(VIT),3420), r(1280,3420), r(1280)); run=F.linear'),
    'linear_merger_7b': (['addmm', 'mm'], G, 'make=lambda: (r(d(1196),5120), r(3584,5120), r(3584)); run=F.linear'),
    'linear_llm_qkv_prefill': (['addmm', 'mm'], G,
                               'make=lambda: (r(d(LLM),3584), r(4608,3584), r(4608)); run=F.linear'),
    'mm_llm_down': (['mm'], G, 'make=lambda: (r(d(LLM),18944), r(3584,18944)); run=F.linear'),
    'mm_lm_head_decode': (['mm'], G, 'make=lambda: (r(8,3584), r(d(152064),3584)); run=F.linear'),
    'mm_o_proj_M8192': (['mm'], G, 'make=lambda: (r(d(8192),3584), r(3584,3584)); run=F.linear'),
    'mm_32b_gate_up_M8192': (['mm'], G, 'make=lambda: (r(d(8192),5120), r(d(55296),5120)); run=F.linear'),
    'bmm_attn_scores': (['bmm'], G, 'make=lambda: (r(16,d(LLM),128), r(16,128,d(LLM))); run=torch.bmm'),
    'conv3d_patch_embed': (['conv3d'], G,
                           'make=lambda: (r(d(VIT),3,2,14,14), r(1280,3,2,14,14)); '
                           'run=lambda x,w: F.conv3d(x,w,stride=(2,14,14))'),
    'rms_norm_pieces': (['to_copy', 'pow_tensor_scalar', 'mean_dim', 'rsqrt'], E,
                        'make=lambda: (r(d(VIT),1280),); '
                        'run=lambda x: torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True)+1e-6)'),
    'embedding': (['embedding'], E,
                  'make=lambda: (torch.randint(0,d(151643),(d(LLM),),device=DEV), r(d(152064),3584)); run=F.embedding'),
    'softmax_fp32': (['softmax'], E,
                     'make=lambda: (torch.randn(32,d(152064),device=DEV),); run=lambda x: torch.softmax(x,-1)'),
    'argmax_decode': (['argmax'], 0.0,
                      'make=lambda: (torch.randn(32,d(152064),device=DEV),); run=lambda x: torch.argmax(x,-1).float()'),
    'cumsum': (['cumsum'], 0.0,
               'make=lambda: (torch.randint(1,100,(64,),device=DEV),); run=lambda x: torch.cumsum(x,0).float()'),
    'cos_sin_cat': (['cos', 'sin', 'cat'], E,
                    'make=lambda: (torch.randn(d(VIT),40,device=DEV),); '
                    'run=lambda x: torch.cat([x.cos(), x.sin()], -1)'),
    'silu_mul_contig': (['silu', 'mul'], E,
                        'make=lambda: (r(d(VIT),3420), r(d(VIT),3420)); run=lambda x,y: F.silu(x)*y'),
    'fill_contig': (['fill_scalar_'], 0.0, 'make=lambda: (r(d(LLM),3584),); run=lambda x: x.fill_(0.25)'),
    # ---- what broke on the H200 (../shared/FLAGGEMS.md)
    # the ViT's rotary step: x (tokens, heads, dim) * cos (tokens, 1, dim): same rank, broadcast in dim 1
    'mul_bcast_same_rank': (['mul'], E, 'make=lambda: (r(d(VIT),16,40), r(d(VIT),1,40)); run=lambda x,c: x*c'),
    'mul_bcast_same_rank_3584': (['mul'], E, 'make=lambda: (r(d(LLM),28,128), r(d(LLM),1,128)); run=lambda x,c: x*c'),
    'mul_sliced': (['mul'], E, 'make=lambda: (r(d(VIT),2560), r(d(VIT),1280)); run=lambda x,y: x[:, :1280]*y'),
    'mul_transposed': (['mul'], E, 'make=lambda: (r(1280,d(VIT)), r(d(VIT),1280)); run=lambda x,y: x.t()*y'),
    'mul_scalar_strided': (['mul'], E, 'make=lambda: (r(d(VIT),2560),); run=lambda x: x[:, ::2]*0.125'),
    'sqrt_sliced': (['sqrt'], E, 'make=lambda: (r(d(VIT),2560).abs(),); run=lambda x: x[:, 640:1920].sqrt()'),
    'sqrt_transposed': (['sqrt'], E, 'make=lambda: (r(1280,d(VIT)).abs(),); run=lambda x: x.t().sqrt()'),
    'fill_noncontig_view': (['fill_scalar_'], 0.0,
                            'make=lambda: (r(d(LLM),3584),); run=lambda x: (x[:, ::2].fill_(0.25), x)[1]'),
    'fill_transposed_view': (['fill_scalar_'], 0.0,
                             'make=lambda: (r(3584,d(LLM)),); run=lambda x: (x.t()[:, 100:200].fill_(-1.0), x)[1]'),
    'fill_tensor_noncontig': (['fill_tensor_'], 0.0,
                              'make=lambda: (r(d(LLM),3584), torch.tensor(0.5,device=DEV,dtype=torch.bfloat16)); '
                              'run=lambda x,v: (x[:, 1::3].fill_(v), x)[1]'),
    # 2^31 + 2^20 bf16 elements (4.3 GB): past 32-bit offsets
    'fill_over_2g_elements': (['fill_scalar_'], 0.0,
                              'BIG; make=lambda: (torch.empty(2**31 + 2**20, device=DEV, dtype=torch.bfloat16),); '
                              'run=lambda x: x.fill_(1.5)'),
    'mul_over_2g_elements': (['mul'], E,
                             'BIG; make=lambda: (torch.ones(2**31 + 2**20, device=DEV, dtype=torch.bfloat16),); '
                             'run=lambda x: x*0.5'),
    # GEMMs on row-stride views (a slice of a wider buffer) and on an unaligned base pointer (2 bytes off)
    'mm_row_stride_view': (['mm'], G,
                           'make=lambda: (r(d(8192),7168), r(3584,3584)); run=lambda a,w: a[:, :3584] @ w.t()'),
    'addmm_row_stride_view': (['addmm'], G,
                              'make=lambda: (r(d(VIT),2560), r(3840,1280), r(3840)); '
                              'run=lambda a,w,b: F.linear(a[:, 1280:],w,b)'),
    'mm_unaligned_base': (['mm'], G,
                          'make=lambda: (r(d(LLM)*3584+1), r(3584,3584)); '
                          'run=lambda buf,w: buf[1:].view(d(LLM),3584) @ w'),
    'mm_transposed_operand': (['mm'], G, 'make=lambda: (r(3584,d(LLM)), r(3584,3584)); run=lambda a,w: a.t() @ w'),
    'bmm_transposed': (['bmm'], G,
                       'make=lambda: (r(16,128,d(LLM)), r(16,128,d(LLM))); '
                       'run=lambda q,k: torch.bmm(q.transpose(1,2), k)'),
    # elementwise / cat / index on non-contiguous inputs
    'add_noncontig': (['add'], E, 'make=lambda: (r(d(VIT),2560), r(1280,d(VIT))); run=lambda x,y: x[:, ::2] + y.t()'),
    'sub_noncontig': (['sub'], E, 'make=lambda: (r(d(VIT),2560), r(1280,d(VIT))); run=lambda x,y: x[:, 1::2] - y.t()'),
    'div_noncontig': (['true_divide'], E,
                      'make=lambda: (r(d(VIT),2560), r(1280,d(VIT)).abs()+0.5); run=lambda x,y: x[:, ::2] / y.t()'),
    'exp_noncontig': (['exp'], E, 'make=lambda: (r(1280,d(VIT)),); run=lambda x: x.t().exp()'),
    'rsqrt_noncontig': (['rsqrt'], E, 'make=lambda: (r(d(VIT),2560).abs()+0.1,); run=lambda x: x[:, ::2].rsqrt()'),
    'silu_noncontig': (['silu'], E, 'make=lambda: (r(d(VIT),6840),); run=lambda x: F.silu(x[:, :3420])'),
    'silu_and_mul_halves': (['silu', 'mul'], E,
                            'make=lambda: (r(d(LLM),2*18944),); run=lambda x: F.silu(x[:, :18944]) * x[:, 18944:]'),
    'cat_noncontig': (['cat'], 0.0,
                      'make=lambda: (r(d(VIT),2560), r(1280,d(VIT))); '
                      'run=lambda x,y: torch.cat([x[:, ::2], y.t()], 0)'),
    'index_noncontig': (['index'], 0.0,
                        'make=lambda: (r(d(VIT),2560), torch.randperm(d(VIT),device=DEV)); '
                        'run=lambda x,i: x[:, ::2][i]'),
    'index_select_noncontig': (['index_select'], 0.0,
                               'make=lambda: (r(1280,d(VIT)), torch.randperm(d(VIT),device=DEV)); '
                               'run=lambda x,i: x.t().index_select(0,i)'),
    'copy_transposed': (['copy_'], 0.0,
                        'make=lambda: (r(1280,d(VIT)), r(d(VIT),1280)); run=lambda x,y: y.copy_(x.t())'),
    'to_copy_strided': (['to_copy'], E, 'make=lambda: (r(d(VIT),2560),); run=lambda x: x[:, ::2].float()'),
}

CHILD = r'''
import json, os, sys, torch, torch.nn.functional as F
DEV = os.environ['DIAG_DEVICE']; FULL = DEV != 'cpu'; VIT = {vit}; LLM = {llm}; BIG = False
def d(n):
    return n if FULL else max(8, n // 32)
def r(*s):
    return torch.randn(*s, device=DEV, dtype=torch.bfloat16) * 0.5
def fresh():
    torch.manual_seed(0)
    return make()
def sync():
    if FULL:
        torch.cuda.synchronize()
{setup}
ref = run(*fresh()); sync()
ref_shape = list(ref.shape)
print('REF', json.dumps({{'shape': ref_shape}}), flush=True)
info = {{}}
if FULL:
    import flag_gems
    info = {{'flag_gems': getattr(flag_gems, '__version__', '?'), 'vendor': getattr(flag_gems, 'vendor_name', '?')}}
    ctx = flag_gems.use_gems()
else:
    import contextlib
    ctx = contextlib.nullcontext()
inputs = fresh(); sync()
print('INFO', json.dumps(info), flush=True)
try:
    with ctx:
        out = run(*inputs)
        sync()
except Exception as e:   # a CUDA error reaches Python as RuntimeError / torch.AcceleratorError
    print('EXC', json.dumps({{'type': type(e).__name__, 'msg': str(e)[:600]}}), flush=True)
    sys.exit(3)
sync()
if list(out.shape) != ref_shape:
    print('RESULT', json.dumps({{'shape': list(out.shape), 'ref_shape': ref_shape}})); sys.exit(0)
a = out.reshape(-1); b = ref.reshape(-1)
num = den = 0.0; bad = 0; step = 1 << 26
for i in range(0, b.numel(), step):
    x = a[i:i + step].double(); y = b[i:i + step].double()
    finite = torch.isfinite(y)
    bad += int((~torch.isfinite(x) & finite).sum())
    num += float(((x - y)[finite]).pow(2).sum()); den += float(y[finite].pow(2).sum())
err = (num ** 0.5) / max(den ** 0.5, 1e-30) if den > 0 else (0.0 if num == 0 else float('inf'))
print('RESULT', json.dumps({{'rel_err': err, 'nonfinite': bad, 'numel': b.numel()}}))
'''

CUDA_CRASH = ('illegal memory access', 'misaligned address', 'unspecified launch failure', 'illegal instruction',
              'CUDA error', 'device-side assert', 'an illegal', 'cudaError', 'Triton Error [CUDA]', 'AcceleratorError')
ORDER = {'ok': 0, 'skipped': 0, 'harness': 0, 'error': 1, 'wrong': 2, 'crash': 3}


def child_code(setup: str) -> str:
    body = setup.replace('BIG; ', 'BIG = True\n').replace('; make=', '\nmake=').replace('; run=', '\nrun=')
    return CHILD.format(vit=VIT, llm=LLM, setup=body)


def run_case(name: str, device: str, timeout: float, env: dict) -> dict:
    ops, tol, setup = CASES[name]
    rec = {'case': name, 'ops': ops, 'tol': tol}
    if device == 'cpu' and setup.startswith('BIG'):
        return dict(rec, verdict='skipped', detail='needs > 8 GB of device memory (GPU only)', seconds=0.0)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, '-c', child_code(setup)], capture_output=True, text=True,
                              timeout=timeout, check=False, env=dict(env, DIAG_DEVICE=device))
    except subprocess.TimeoutExpired:
        return dict(rec, verdict='crash', detail=f'timeout after {timeout:.0f} s (hang)', seconds=timeout)
    rec['seconds'] = round(time.perf_counter() - start, 1)
    tagged = {}
    for line in proc.stdout.splitlines():
        tag, _, payload = line.partition(' ')
        if tag in ('REF', 'INFO', 'EXC', 'RESULT'):
            tagged[tag] = json.loads(payload)
    rec.update(tagged.get('INFO', {}))
    stderr_tail = ' | '.join([ln for ln in proc.stderr.splitlines() if ln.strip()][-4:])[-600:]
    if 'REF' not in tagged:   # the aten reference failed: a bug of this script or the machine, not FlagGems'
        return dict(rec, verdict='harness', detail=f'aten reference failed (exit {proc.returncode}): {stderr_tail}')
    if 'RESULT' in tagged and proc.returncode == 0:
        res = tagged['RESULT']
        if 'shape' in res:
            return dict(rec, verdict='wrong', detail=f"shape {res['shape']} vs aten {res['ref_shape']}")
        err, bad = res['rel_err'], res['nonfinite']
        rec.update(rel_err=err, nonfinite=bad, numel=res['numel'])
        ok = bad == 0 and err <= max(tol, 1e-6 if tol == 0 else tol)
        return dict(rec, verdict='ok' if ok else 'wrong',
                    detail=f'rel_err {err:.2e}' + (f', {bad} non-finite' if bad else ''))
    if 'EXC' in tagged:
        exc = tagged['EXC']
        text = f"{exc['type']}: {exc['msg']}"
        verdict = 'crash' if any(s in text for s in CUDA_CRASH) else 'error'
        return dict(rec, verdict=verdict, detail=text[:400])
    if proc.returncode < 0 or any(s in proc.stderr for s in CUDA_CRASH):
        return dict(rec, verdict='crash', detail=f'exit {proc.returncode}: {stderr_tail}')
    return dict(rec, verdict='error', detail=f'exit {proc.returncode}: {stderr_tail}')


def per_op(results: list[dict]) -> dict[str, dict]:
    ops: dict[str, dict] = {}
    for r in results:
        if r['verdict'] in ('skipped', 'harness'):
            continue
        for op in r['ops']:
            cur = ops.setdefault(op, {'verdict': 'ok', 'cases': {}})
            cur['cases'][r['case']] = r['verdict']
            if ORDER[r['verdict']] > ORDER[cur['verdict']]:
                cur['verdict'] = r['verdict']
    # An op named only alongside others in failing cases, but passing every case of its own, is not blamed:
    # e.g. silu in silu_and_mul_halves when silu_noncontig is ok and mul fails alone.
    for op, cur in ops.items():
        if cur['verdict'] == 'ok':
            continue
        own = [c for c in cur['cases'] if CASES[c][0] == [op]]
        failing_shared = [c for c, v in cur['cases'].items() if v != 'ok' and CASES[c][0] != [op]]
        failing_own = [c for c in own if cur['cases'][c] != 'ok']
        if own and not failing_own and failing_shared and all(
                any(o != op and ops[o]['verdict'] != 'ok' for o in CASES[c][0]) for c in failing_shared):
            cur['verdict'] = 'ok'
            cur['note'] = 'failing cases are explained by another op that fails alone'
    return dict(sorted(ops.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, required=True, help='JSON report')
    parser.add_argument('--exclude-out', type=Path, help='suggested exclusions, comma separated')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='cpu: aten against aten on small shapes (a check of this script, no FlagGems)')
    parser.add_argument('--cases', help='comma list of case names (default: all)')
    parser.add_argument('--jobs', type=int, default=8)
    parser.add_argument('--timeout', type=float, default=180.0)
    parser.add_argument('--label', default='', help='written into the report (e.g. the FlagGems version)')
    args = parser.parse_args(argv)
    names = list(CASES) if not args.cases else [c.strip() for c in args.cases.split(',') if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f'unknown cases: {unknown}')
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {n: pool.submit(run_case, n, args.device, args.timeout, env) for n in names}
        results = [futures[n].result() for n in names]
    ops = per_op(results)
    exclude = [op for op, v in ops.items() if v['verdict'] != 'ok']
    versions = sorted({r.get('flag_gems') for r in results if r.get('flag_gems')})

    print("\n| case | ops | verdict | detail | s |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {','.join(r['ops'])} | {r['verdict']} | {r.get('detail', '')[:90]} | "
              f"{r.get('seconds', 0):.0f} |")
    print("\n| op | verdict | cases not ok |\n|---|---|---|")
    for op, v in ops.items():
        bad = [c for c, verdict in v['cases'].items() if verdict != 'ok']
        print(f"| {op} | {v['verdict']} | {', '.join(bad)} |")
    counts = {k: sum(r['verdict'] == k for r in results) for k in ORDER}
    print(f"\ndevice {args.device}, flag_gems {versions or '-'}: {len(results)} cases "
          f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)}) in {time.perf_counter() - t0:.0f} s")
    print('suggested exclusions:', ','.join(exclude) or '(none)')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        'device': args.device, 'label': args.label, 'flag_gems': versions, 'counts': counts,
        'suggested_exclude': exclude, 'ops': ops, 'results': results,
        'cases': {k: {'ops': v[0], 'tol': v[1], 'code': v[2]} for k, v in CASES.items()},
    }, indent=1))
    if args.exclude_out:
        args.exclude_out.write_text(','.join(exclude) + '\n')
    return 1 if counts["harness"] else 0


if __name__ == '__main__':
    sys.exit(main())
