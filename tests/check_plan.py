#!/usr/bin/env python3
"""`relorac check` reports the memory plan: check its numbers against the plan itself
and against the parameter counts.

For each spec: the per-class program bytes that `check --json` prints must equal the
extent of the buffers that `dump-ir --kernels` lists (offset + size, the plan's own
layout, read independently of the pool-size bookkeeping); in the ReLoRA phase the
gradient pool holds exactly the trainable parameters (adapters + full-rank ones) and
the optimizer pool two moments of each; in the full-rank phase the gradient pool holds
every parameter; and the program needs the larger of its two phases, no more (phase-aware
planning: the gradients and moments only one phase uses share bytes with the other
phase's). The table of settings agrees with the plan on the spec's own settings, and
moves the right way with each. Sizes are rounded up to 64 bytes per tensor, hence the
slack.
usage: check_plan.py RELORAC EXAMPLES_DIR
"""
import json
import re
import subprocess
import sys

relorac, examples = sys.argv[1], sys.argv[2]
failed = passed = 0


def expect(cond, what):
    global failed, passed
    if cond:
        passed += 1
    else:
        failed += 1
        print('FAIL', what)


for name in ['tiny', 'parallel', 'gpt2-small', 'llama-60m']:
    spec = f'{examples}/{name}.relora'
    j = json.loads(subprocess.run([relorac, 'check', spec, '--json'], capture_output=True, text=True,
                                  check=True).stdout)
    plan, params = j['planned_bytes'], j['params']
    k = subprocess.run([relorac, 'dump-ir', spec, '--kernels'], capture_output=True, text=True, check=True).stdout
    extent = {}
    n_bufs = 0
    for m in re.finditer(r'^  b\d+ \S+ (\w+)\[(\d+)\] (\w+)\+(\d+)$', k, re.M):
        size = 2 if m.group(1) == 'bf16' else 4
        numel, cls, off = int(m.group(2)), m.group(3), int(m.group(4))
        end = off + (numel * size + 63) // 64 * 64
        extent[cls] = max(extent.get(cls, 0), end)
        n_bufs += 1
    expect(n_bufs > 0, f'{name}: dump-ir --kernels lists buffers')
    for cls, b in plan['program'].items():
        expect(extent.get(cls, 0) == b, f'{name}: class {cls}: check says {b} bytes, the plan\'s buffers end at '
               f'{extent.get(cls, 0)}')
    n_tensors = len(re.findall(r'^  global @', subprocess.run([relorac, 'dump-ir', spec], capture_output=True,
                                                              text=True).stdout, re.M))
    slack = 64 * n_tensors
    if 'relora' in plan:
        r = plan['relora']
        expect(abs(r['grad'] - 4 * params['relora_trainable']) <= slack,
               f'{name}: ReLoRA grad pool {r["grad"]} vs 4 x {params["relora_trainable"]} trainable')
        expect(r['optim'] == 2 * r['grad'], f'{name}: ReLoRA optimizer pool {r["optim"]} = 2 x grad {r["grad"]}')
    if 'full_rank' in plan:
        f = plan['full_rank']
        expect(abs(f['grad'] - 4 * params['total']) <= slack,
               f'{name}: full-rank grad pool {f["grad"]} vs 4 x {params["total"]} parameters')
    if 'relora' in plan and 'full_rank' in plan:
        saved = (plan['full_rank']['grad'] + plan['full_rank']['optim']) - (plan['relora']['grad'] + plan['relora']['optim'])
        want = 3 * 4 * (params['relora_frozen'] - params['lora'])
        expect(abs(saved - want) <= 3 * slack, f'{name}: ReLoRA saves {saved} bytes of gradients and moments, '
               f'3 x 4 x (frozen - lora) = {want}')
        total = {ph: sum(plan[ph].values()) for ph in ('program', 'full_rank', 'relora')}
        expect(total['program'] == max(total['full_rank'], total['relora']),
               f'{name}: program {total["program"]} bytes, phases {total["full_rank"]} and {total["relora"]}')
        print(f'{name}: program {sum(plan["program"].values())} bytes; gradients + moments: full-rank '
              f'{plan["full_rank"]["grad"] + plan["full_rank"]["optim"]}, ReLoRA '
              f'{plan["relora"]["grad"] + plan["relora"]["optim"]}')
    # the settings table: its rows for the spec's own settings are the plan above; memory
    # falls with recomputation and with smaller micro-batches, rises with one layout for
    # both phases; recomputation's extra FLOPs rise with the level
    rows = j['planned_settings']
    program = sum(plan['program'].values())
    for row in rows:
        expect(row['ok'], f'{name}: {row["setting"]} = {row["value"]} compiles')
        if row['spec']:
            expect(row['program'] == program, f'{name}: the spec\'s {row["setting"]} row has program '
                   f'{row["program"]}, the plan {program}')
    by = {(r['setting'], r['value']): r for r in rows}
    phases = [ph for ph in ('full_rank', 'relora') if ph in plan]
    levels = [by[('recompute', v)] for v in ('none', 'selective', 'full')]
    for ph in phases:
        expect(levels[0][ph] > levels[1][ph] > levels[2][ph], f'{name}: {ph} falls none > selective > full: '
               f'{[r[ph] for r in levels]}')
        key = ph + '_extra_flops_per_token'
        expect(levels[0][key] <= levels[1][key] < levels[2][key], f'{name}: {ph} recompute FLOPs rise')
    micro = sorted((int(v), r) for (k, v), r in by.items() if k == 'micro_batch')
    for (b1, r1), (b2, r2) in zip(micro, micro[1:]):
        for ph in phases:
            expect(r1[ph] < r2[ph], f'{name}: {ph}: micro_batch {b1} plans {r1[ph]}, {b2} {r2[ph]}')
    on, off = by[('phase-aware planning', 'on')], by[('phase-aware planning', 'off')]
    expect(on['program'] == max(on[ph] for ph in phases), f'{name}: phase-aware: program is the larger phase')
    expect(off['program'] >= on['program'], f'{name}: one layout for both phases needs no less')
    print(f'{name}: recompute none/selective/full: ' + ', '.join(f'{r["program"]}' for r in levels) +
          f' bytes; micro-batches {[b for b, _ in micro]}: {[r["program"] for _, r in micro]}; '
          f'one layout for both phases: {off["program"]}')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
