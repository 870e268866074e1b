#!/usr/bin/env python3
"""Independent computation of the numbers in the check goldens (params, FLOPs, memory),
written from the architectures' definitions, not from relorac's code. Run it with a
relorac binary to compare: `numbers.py RELORAC` checks `relorac check --json` of every
golden against these numbers (formulas: docs/language.md section 7)."""
import json, os, subprocess, sys

def arch(name, V, d, L, H, KV, T, B, rank, block, targets, trainable, tied=False, pos=False,
         final_norm_bias=False, recompute='none'):
    hd = d // H
    # (name, params per layer, list of linears (name, in, out), activations kept per token,
    #  of those the ones selective recomputation drops: norm outputs, the GLU's act and product)
    mods = []
    for kind, mname, *a in block:
        if kind == 'rmsnorm':
            mods.append((mname, d, [], d, d))
        elif kind == 'layernorm':
            mods.append((mname, 2 * d if a[0] else d, [], d, d))
        elif kind == 'attention':
            bias = a[0]
            lin = [('q', d, H * hd), ('k', d, KV * hd), ('v', d, KV * hd), ('o', H * hd, d)]
            lin = [(mname + '.' + n, i, o) for n, i, o in lin]
            extra = (H + 2 * KV) * hd + H * hd + H  # q, k, v, output before o, a log-sum-exp per head
            mods.append((mname, sum(i * o + (o if bias else 0) for _, i, o in lin), lin, d + extra, 0))
        elif kind == 'swiglu':
            hid, bias = a
            lin = [(mname + '.gate', d, hid), (mname + '.up', d, hid), (mname + '.down', hid, d)]
            mods.append((mname, sum(i * o + (o if bias else 0) for _, i, o in lin), lin, d + 4 * hid, 2 * hid))
        elif kind == 'linear':
            i, o, bias = a
            mods.append((mname, i * o + (o if bias else 0), [(mname, i, o)], o, 0))
    elementwise = {'llama': 2 * d, 'parallel': 2 * d, 'gpt2': 2 * d + 4 * d}[name.split(':')[0]]
    emb = V * d
    posn = T_ctx[name] * d if pos else 0
    fnorm = 2 * d if final_norm_bias else d
    head = 0 if tied else V * d
    total = emb + posn + L * sum(m[1] for m in mods) + fnorm + head
    adapted = [l for m in mods for l in m[2] if any(fnmatch(t, l[0]) for t in targets)]
    lora = L * sum(rank * (i + o) for _, i, o in adapted)
    # full-rank trainables in the ReLoRA phase
    tr = 0
    if 'embedding' in trainable: tr += emb
    if 'positions' in trainable: tr += posn
    if 'head' in trainable: tr += head
    for m in mods:
        for ln, i, o in m[2]:
            if 'biases' in trainable and bias_of(name, ln): tr += L * o
    if 'norms' in trainable:
        tr += fnorm + L * sum(m[1] for m in mods if not m[2])
    frozen = total - tr
    mm = L * sum(i * o for m in mods for _, i, o in m[2]) + V * d
    mm_frozen = L * sum(i * o for _, i, o in adapted)
    head_tr = ('embedding' in trainable) if tied else ('head' in trainable)
    if not head_tr: mm_frozen += V * d
    attn = 12 * H * hd * T * L * sum(1 for b in block if b[0] == 'attention')
    f_full = 6 * mm + attn
    f_rel = 6 * (mm - mm_frozen) + 4 * mm_frozen + 6 * lora + attn
    per_layer = sum(m[3] for m in mods) + elementwise
    cheap = sum(m[4] for m in mods)
    ax = rank * len(adapted)  # A x per adapted linear, ReLoRA phase
    # embedding and final norm outputs, the head's dx (taken with the chunked loss), one
    # chunk of N d / V rows of V logits: 4 d per token, never the [N, V] logits
    kept_head = 4 * d
    if recompute == 'full':    # every block's input, plus one block's values while re-run
        act_full = B * T * (L * d + per_layer + kept_head)
        act_rel = B * T * (L * d + per_layer + ax + kept_head)
    else:
        drop = cheap if recompute == 'selective' else 0
        act_full = B * T * (L * (per_layer - drop) + kept_head)
        act_rel = B * T * (L * (per_layer - drop + ax) + kept_head)
    mem = {}
    # the precision policy (docs/language.md 7.3): f32 everywhere; bf16 adds a bf16 copy of
    # every adapted W (a ReLoRA run); activations' bf16 copies are not counted
    copies = L * sum(i * o for _, i, o in adapted) if lora else 0
    for prec, extra_w, act_by in (('fp32', 0, 4), ('bf16', 2 * copies, 4)):
        by = 4
        fr = dict(weights=total * by + extra_w, gradients=total * by, optimizer=2 * total * by,
                  activations=act_full * act_by)
        fr['total'] = sum(fr.values())
        rl = dict(weights=(total + lora) * by + extra_w, gradients=(tr + lora) * by, optimizer=2 * (tr + lora) * by,
                  activations=act_rel * act_by)
        rl['total'] = sum(rl.values())
        mem[prec] = {'full_rank': fr, 'relora': rl}
    return dict(total=total, lora=lora, relora_frozen=frozen, relora_trainable=tr + lora, matmul=mm,
                frozen_mm=mm_frozen, attention=attn, full_rank=f_full, relora=f_rel, memory=mem)

def fnmatch(pat, s):
    import fnmatch as f
    return f.fnmatchcase(s, pat)

def bias_of(name, linear):
    return name.startswith('gpt2')

T_ctx = {}

def llama(d, hid, H, L, B, recompute='none'):
    T_ctx['llama'] = 1024
    return arch('llama', 32100, d, L, H, H, 512, B, 128,
                [('rmsnorm', 'rmsnorm_1'), ('attention', 'attention', False), ('rmsnorm', 'rmsnorm_2'),
                 ('swiglu', 'swiglu', hid, False)],
                ['attention.q', 'attention.k', 'attention.v', 'attention.o', 'swiglu.gate', 'swiglu.up', 'swiglu.down'],
                ['embedding', 'norms', 'head'], recompute=recompute)

def expected():
    T_ctx['llama'] = 1024
    T_ctx['gpt2'] = 1024
    T_ctx['parallel'] = 256
    out = {
        'llama-60m': llama(512, 1376, 8, 8, 64),
        'llama-60m-selective': llama(512, 1376, 8, 8, 64, 'selective'),
        'llama-60m-full': llama(512, 1376, 8, 8, 16, 'full'),    # micro_batch 16 of 64
        'llama-130m': llama(768, 2048, 12, 12, 64),
        'llama-250m': llama(768, 2560, 16, 24, 32),
        'llama-350m': llama(1024, 2736, 16, 24, 32),
        'llama-1b3': llama(2048, 5461, 32, 24, 16),
        'tiny': arch('llama', 256, 128, 4, 4, 4, 128, 8, 8,
                     [('rmsnorm', 'rmsnorm_1'), ('attention', 'attention', False), ('rmsnorm', 'rmsnorm_2'),
                      ('swiglu', 'swiglu', 344, False)],
                     ['attention.*', 'swiglu.*'], ['embedding', 'norms', 'head']),
        'parallel': arch('parallel', 256, 256, 6, 8, 2, 256, 16, 16,
                         [('layernorm', 'layernorm', False), ('attention', 'attention', False),
                          ('swiglu', 'swiglu', 1024, False)],
                         ['*'], ['embedding', 'positions', 'norms', 'head', 'biases'], final_norm_bias=True),
        'gpt2-small': arch('gpt2', 50257, 768, 12, 12, 12, 1024, 16, 64,
                           [('layernorm', 'ln_1', True), ('attention', 'attention', True), ('layernorm', 'ln_2', True),
                            ('linear', 'fc', 768, 3072, True), ('linear', 'proj', 3072, 768, True)],
                           ['attention.*', 'fc', 'proj'], ['embedding', 'positions', 'norms', 'biases'],
                           tied=True, pos=True, final_norm_bias=True),
    }
    wide = lambda rank, B: arch('llama', 256, 256, 4, 4, 4, 128, B, rank,
                                [('rmsnorm', 'rmsnorm_1'), ('attention', 'attention', False),
                                 ('rmsnorm', 'rmsnorm_2'), ('swiglu', 'swiglu', 688, False)],
                                ['attention.*', 'swiglu.*'], ['embedding', 'positions', 'norms', 'head', 'biases'])
    out['variant'] = wide(8, 8)               # tiny_wide: dim 256, hidden 688, default trainable
    out['tiny-overrides'] = wide(16, 8)       # -D model.dim=256 -D adapter.rank=16 -D ...hidden=688
    return out

def main():
    exp = expected()
    assert exp['llama-350m']['total'] == 368174080, exp['llama-350m']['total']
    assert exp['llama-350m']['relora_trainable'] == 125608960
    assert exp['gpt2-small']['total'] == 124439808
    if len(sys.argv) < 2:
        for k, v in exp.items():
            print(k, v['total'], v['relora_trainable'], v['full_rank'], v['relora'])
        return 0
    relorac = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    bad = 0
    for name, e in exp.items():
        args = []
        if os.path.exists(os.path.join(here, name + '.args')):
            args = [l.strip() for l in open(os.path.join(here, name + '.args')) if l.strip()]
        r = subprocess.run([relorac, 'check', name + '.relora', '--json'] + args, cwd=here, capture_output=True,
                           text=True)
        j = json.loads(r.stdout)
        got = dict(total=j['params']['total'], lora=j['params']['lora'], relora_frozen=j['params']['relora_frozen'],
                   relora_trainable=j['params']['relora_trainable'], matmul=j['flops_per_token']['matmul_params'],
                   frozen_mm=j['flops_per_token']['relora_frozen_matmul_params'],
                   attention=j['flops_per_token']['attention'], full_rank=j['flops_per_token']['full_rank'],
                   relora=j['flops_per_token']['relora'],
                   memory={p: {ph: j['memory_bytes'][p][ph] for ph in ('full_rank', 'relora')} for p in ('fp32', 'bf16')})
        for k in e:
            if e[k] != got[k]:
                bad += 1
                print(f'{name}: {k}: expected {e[k]}, relorac says {got[k]}')
        print(f'{name}: {"ok" if not bad else "checked"}')
    return 1 if bad else 0

if __name__ == '__main__':
    sys.exit(main())
