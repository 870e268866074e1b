#!/usr/bin/env python3
"""bench/memory_table.py: the planned peak of every example in examples/, and the check that
no kernel buffer holds attention scores or whole logits.

For each examples/*.relora, with -D train.target=cpu -D train.precision=fp32 (the examples
say cuda/bf16) and the example's own settings otherwise, it reads `relorac check --json`:
the program's planned peak (`planned_bytes.program`, summed over classes: what a trainer
allocates, the larger phase) with the example's recompute level and, from the settings
table, with recompute = full. With --old RELORAC (a relorac built from an earlier commit)
it also prints that compiler's planned peak (its `planned_bytes.program`) for the same
spec and defines.

Then `relorac dump-ir --kernels` (example's settings) lists every buffer of the program
(flat element counts); none may have B·H·T·T, B·H·T·(T+1)/2 or B·H·T·T/2 elements
(attention scores or probabilities, whole or the causal half) for B the batch or the
micro-batch, H the heads or the kv heads, T seq_len; nor, when vocab >= 4096, B·T·vocab
(the whole logits). The counts are compared exactly because in the small examples such
sizes are no larger than ordinary activations (tiny's B·H·T·T/2 is also its B·T·2·dim, so
tiny's flat count alone cannot tell); the largest buffer is printed beside the bounds, and
for the paper's models it is below both. So shapes are checked too: in `relorac dump-ir
--after memplan` (the graph IR after the last pass, which the kernels are made from) no value may have the type
[B, H, T, T] (any leading dims whose product is B·H, B the batch or micro-batch,
H the heads or kv heads), nor (vocab >= 4096) [..., vocab] with B·T rows.
Stdlib only. usage: bench/memory_table.py [--relorac PATH] [--old PATH]
Prints a Markdown table; exit 1 if a buffer check fails.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = ['-D', 'train.target=cpu', '-D', 'train.precision=fp32']
GIB = 1024 ** 3


def check_json(relorac, spec, extra=()):
    r = subprocess.run([relorac, 'check', spec, '--json'] + CPU + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def peak(j):
    return sum(j['planned_bytes']['program'].values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--relorac', default=os.path.join(ROOT, 'build', 'relorac'))
    ap.add_argument('--old', default=None)
    a = ap.parse_args()
    bad = 0
    rows = []
    for spec in sorted(glob.glob(os.path.join(ROOT, 'examples', '*.relora'))):
        name = os.path.basename(spec)[:-len('.relora')]
        j = check_json(a.relorac, spec)
        if j is None:
            print(f'{name}: relorac check failed', file=sys.stderr)
            bad += 1
            continue
        t, m = j['train'], j['model']
        full = next(r for r in j['planned_settings'] if r['setting'] == 'recompute' and r['value'] == 'full')
        old = None
        if a.old:
            jo = check_json(a.old, spec)
            old = peak(jo) if jo and 'planned_bytes' in jo else None
        B, T, V = t['micro_batch'], t['seq_len'], m['vocab']
        H = m['heads']
        k = subprocess.run([a.relorac, 'dump-ir', spec, '--kernels'] + CPU, capture_output=True, text=True)
        sizes = []
        for line in k.stdout.splitlines():
            if line.startswith('kfunc'):
                break
            mm = re.match(r'\s+b\d+ (\S+) \w+\[(\d+)\]', line)
            if mm:
                sizes.append((int(mm.group(2)), mm.group(1)))
        if k.returncode != 0 or not sizes:
            print(f'{name}: relorac dump-ir --kernels failed', file=sys.stderr)
            bad += 1
            continue
        big, big_name = max(sizes)
        g = subprocess.run([a.relorac, 'dump-ir', spec, '--after', 'memplan'] + CPU, capture_output=True, text=True)
        shaped = []
        bh = {b * h for b in (B, t['batch']) for h in (m['heads'], m['kv_heads'])}
        for line in g.stdout.splitlines():
            mm = re.match(r'\s+%(\d+) = (\w+) .*: \w+\[([\d,]+)\]$', line)
            if not mm or mm.group(2) == 'global':  # weights ([dim, dim] may be [T, T])
                continue
            dims = [int(x) for x in mm.group(3).split(',')]
            nrows = lead = 1
            for x in dims[:-1]:
                nrows *= x
            for x in dims[:-2]:
                lead *= x
            if (len(dims) >= 3 and dims[-1] == T and dims[-2] == T and lead in bh) or \
                    (V >= 4096 and dims[-1] == V and nrows in {B * T, t['batch'] * T}):
                shaped.append(f'%{mm.group(1)} {mm.group(2)} {dims}')
        if g.returncode != 0:
            print(f'{name}: relorac dump-ir --after memplan failed', file=sys.stderr)
            bad += 1
            continue
        bs = {B, t['batch']}
        hs = {m['heads'], m['kv_heads']}
        bad_scores = {b * h * T * T // d for b in bs for h in hs for d in (1, 2)} | \
            {b * h * T * (T + 1) // 2 for b in bs for h in hs}
        scores = [s for s in sizes if s[0] in bad_scores]
        logits = [s for s in sizes if V >= 4096 and s[0] in {b * T * V for b in bs}]
        ok = not scores and not logits and not shaped
        rows.append((name, f'{t["batch"]}' + (f' ({B})' if B != t['batch'] else '') + f' x {T}', t['recompute'],
                     old, peak(j), full['program'], f'{big:,} ({big_name})', B * H * T * T // 2, B * T * V,
                     'ok' if not logits and not shaped and not scores else
                     'ok by shape; flat-count matches: ' + ', '.join(n for _, n in scores[:3]) + ' ...'
                     if not logits and not shaped else
                     'FAIL: ' + ', '.join([n for _, n in scores + logits][:5] + shaped[:5])))
        if not ok and (logits or shaped):
            bad += 1
        if scores:
            print(f'{name}: flat counts equal to B·H·T·T/2 etc. (shapes checked): {[n for _, n in scores][:8]}',
                  file=sys.stderr)
    print('| example | batch (micro) x seq | recompute | before (old) GiB | after GiB | after, full recompute GiB '
          '| largest buffer, elements | B·H·T·T/2 | B·T·vocab | buffers |')
    print('|---|---|---|---:|---:|---:|---|---:|---:|---|')
    for r in rows:
        old = f'{r[3] / GIB:.2f}' if r[3] is not None else '–'
        print(f'| {r[0]} | {r[1]} | {r[2]} | {old} | {r[4] / GIB:.2f} | {r[5] / GIB:.2f} | {r[6]} | {r[7]:,} | '
              f'{r[8]:,} | {r[9]} |')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
