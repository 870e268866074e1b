#!/usr/bin/env python3
"""bench/recompute.py: fused attention against the unfused graph, and what activation
recomputation costs in time against what its extra FLOPs predict, measured in one run.

First it runs bench-attention (bench/attention.c, built as tests/bench-attention; --attention
BIN) at seq 256 and 1024 (B 2, H 8, head dim 64), forward + backward, fused against the
graph without attention-fuse, best of 5 calls each, and prints the two side by side.

For one spec (default bench/dim512.relora), it builds a trainer at each level of
train.recompute (none, selective, full; warm start --phase-steps, no merge inside the run),
reads each level's planned peak and the recompute pass's extra FLOPs per token from
`relorac check --json`, and runs the three trainers in turn, --rounds times (round-robin,
so that the machine's load falls on all of them alike), 2 x --phase-steps steps each
(full-rank, then ReLoRA). A phase's step time is the fastest step seen over every round
(the best of N: other sessions load this machine, and a step can only be slowed by
them), skipping each phase's first step. The prediction for a level is
none's step time x (1 + extra FLOPs per token / the phase's FLOPs per token, forward and
backward, docs/language.md §7.2). The claim checked is measured <= predicted (the
recomputed work runs at least as fast per FLOP as the step as a whole).
The load average is printed at the start and the end: on a shared machine the times are
only comparable within this one run.
Stdlib only. Usage: bench/recompute.py [--build DIR] [--attention BIN] [--phase-steps N]
                                       [--rounds R] [SPEC]
Prints a Markdown table and writes BUILD/bench-recompute/results.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = ('none', 'selective', 'full')


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('spec', nargs='?', default=os.path.join(ROOT, 'bench', 'dim512.relora'))
    ap.add_argument('--build', default=os.path.join(ROOT, 'build-bench'))
    ap.add_argument('--phase-steps', type=int, default=6)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--attention', default=os.path.join(ROOT, 'build', 'tests', 'bench-attention'))
    a = ap.parse_args()
    load_start = os.getloadavg()
    print(f'load average at the start: {load_start}', flush=True)
    attn = []
    for line in run([a.attention, '-t', str(a.threads), '-r', '5', '2,8,8,256,64', '2,8,8,1024,64']).splitlines():
        if line.startswith('{'):
            attn.append(json.loads(line))
    print('\n| seq | fused best ms | unfused best ms | unfused / fused | fused median ms | unfused median ms '
          '| planned MiB fused / unfused |')
    print('|---:|---:|---:|---:|---:|---:|---|')
    for T in sorted({r['T'] for r in attn}):
        f = next(r for r in attn if r['T'] == T and r['variant'] == 'fused')
        u = next(r for r in attn if r['T'] == T and r['variant'] != 'fused')
        print(f'| {T} | {f["best_s"] * 1e3:.2f} | {u["best_s"] * 1e3:.2f} | {u["best_s"] / f["best_s"]:.2f} | '
              f'{f["median_s"] * 1e3:.2f} | {u["median_s"] * 1e3:.2f} | {f["planned_bytes"] / 2**20:.1f} / '
              f'{u["planned_bytes"] / 2**20:.1f} |', flush=True)
    relorac = os.path.join(a.build, 'relorac')
    out_dir = os.path.join(a.build, 'bench-recompute')
    os.makedirs(out_dir, exist_ok=True)
    n = 2 * a.phase_steps
    data = os.path.join(ROOT, 'data', 'kjv.txt')
    if not os.path.exists(data):
        os.makedirs(os.path.dirname(data), exist_ok=True)
        with open(data, 'w') as f:
            f.write(run(['bible', '-f', 'gen1:1-rev22:21']))
    base = ['-D', 'train.target=cpu', '-D', 'train.precision=fp32', '-D', f'train.schedule.warm_start={a.phase_steps}',
            '-D', f'train.schedule.reset_every={10 * n}', '-D', 'train.schedule.restart_warmup=1',
            '-D', f'train.steps={10 * n}']
    info = {}
    for lv in LEVELS:
        d = base + ['-D', f'train.recompute={lv}']
        j = json.loads(run([relorac, 'check', a.spec, '--json'] + d, stderr=subprocess.DEVNULL))
        bin_ = os.path.join(out_dir, f'trainer-{lv}')
        run([relorac, 'build', a.spec, '-o', bin_] + d, stderr=subprocess.DEVNULL)
        row = next(r for r in j['planned_settings'] if r['setting'] == 'recompute' and r['value'] == lv)
        info[lv] = {'bin': bin_, 'plan': sum(j['planned_bytes']['program'].values()),
                    'flops': j['flops_per_token'], 'row': row,
                    'tokens': j['train']['batch'] * j['train']['seq_len'], 'best': {}}
    for r in range(a.rounds):
        for lv in LEVELS:
            with tempfile.TemporaryDirectory() as tmp:
                run([info[lv]['bin'], '--data', data, '--steps', str(n), '--out', tmp, '--eval-every', '0',
                     '--eval-batches', '1', '--threads', str(a.threads), '--quiet'])
                with open(os.path.join(tmp, 'metrics.jsonl')) as f:
                    steps = [json.loads(line) for line in f]
            for s in steps:
                ph = 'full_rank' if s['step'] < a.phase_steps else 'relora'
                if s['step'] in (0, a.phase_steps) or not s.get('tokens_per_s'):
                    continue
                t = info[lv]['tokens'] / s['tokens_per_s']
                best = info[lv]['best']
                best[ph] = min(best.get(ph, t), t)
            print(f'round {r + 1}: {lv}: ' + ', '.join(f'{ph} {t * 1000:.0f} ms' for ph, t in
                                                        sorted(info[lv]['best'].items())), flush=True)
    rows = []
    print('\n| level | phase | planned peak MiB | extra FLOPs/token | predicted step | measured step (best of '
          f'{a.rounds} x {a.phase_steps - 1}) | measured / predicted |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for lv in LEVELS:
        for ph in ('full_rank', 'relora'):
            t0 = info['none']['best'].get(ph)
            t = info[lv]['best'].get(ph)
            extra = info[lv]['row'].get(f'{ph}_extra_flops_per_token', 0.0)
            flops = info[lv]['flops'][ph]
            pred = t0 * (1 + extra / flops) if t0 else None
            rows.append({'level': lv, 'phase': ph, 'plan_bytes': info[lv]['plan'], 'extra_flops_per_token': extra,
                         'flops_per_token': flops, 'step_s': t, 'predicted_s': pred})
            print(f'| {lv} | {ph} | {info[lv]["plan"] / 2**20:,.1f} | {extra:,.0f} ({100 * extra / flops:.2f}%) | '
                  f'{pred * 1000:.0f} ms | {t * 1000:.0f} ms | {t / pred:.3f} |')
    with open(os.path.join(out_dir, 'results.json'), 'w') as f:
        json.dump({'spec': a.spec, 'rounds': a.rounds, 'phase_steps': a.phase_steps, 'rows': rows,
                   'attention': attn, 'loadavg_start': load_start, 'loadavg_end': os.getloadavg()}, f, indent=1)
    print(f'load average at the end: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
