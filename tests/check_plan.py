#!/usr/bin/env python3
"""`relorac check` reports the memory plan: check its numbers against the plan itself
and against the parameter counts.

For each spec: the per-class program bytes that `check --json` prints must equal the
extent of the buffers that `dump-ir --kernels` lists (offset + size, the plan's own
layout, read independently of the pool-size bookkeeping); in the ReLoRA phase the
gradient pool holds exactly the trainable parameters (adapters + full-rank ones) and
the optimizer pool two moments of each; in the full-rank phase the gradient pool holds
every parameter. Sizes are rounded up to 64 bytes per tensor, hence the slack.
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
        print(f'{name}: program {sum(plan["program"].values())} bytes; gradients + moments: full-rank '
              f'{plan["full_rank"]["grad"] + plan["full_rank"]["optim"]}, ReLoRA '
              f'{plan["relora"]["grad"] + plan["relora"]["optim"]}')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
