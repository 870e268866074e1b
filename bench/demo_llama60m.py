#!/usr/bin/env python3
"""bench/demo_llama60m.py: the ReLoRA paper's 60M model trained at its real batch (64 x 512
tokens) on this kind of machine (2 cores, 24 GB), fp32 on the CPU, into the ReLoRA phase.

It builds examples/llama-60m.relora with -D train.target=cpu -D train.precision=fp32
-D train.schedule.warm_start=10 and the memory settings given (default: full
recomputation), reads the planned peak from `relorac check --json` (the program's: the
larger of its two phases), makes a token file from the King James Bible (bytes as token
ids, bench/make_tokens.py; any tokens do for speed and memory), and trains 20 steps: 10
full-rank, the switch, 10 ReLoRA. The trainer runs with --total-steps 20 --warmup 2
--restart-warmup 2 so that the learning rate is not ~0 over so short a run, one
validation batch at the end, and writes its final checkpoint.

Peak RSS is the child's ru_maxrss (os.wait4): the whole process, final evaluation and
checkpoint included. Throughput is the trainer's tokens_per_s (timed around the step),
the median over each phase's steps after its first. Stdlib only.
With --deadline HH:MM (UTC) the trainer gets SIGTERM at the end of a step when the step
after the one in hand would end past it: it finishes the step in hand, writes its
checkpoint and exits 143, and the summary covers the steps done. On a shared machine pick --steps and --warm-start so that the run
crosses the switch well before the deadline.
usage: bench/demo_llama60m.py [--build DIR] [--recompute LEVEL] [--micro-batch B]
                              [--steps N] [--warm-start N] [--deadline HH:MM]
                              [--threads N] [--out DIR]
Prints a summary and writes OUT/demo.json.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, 'examples', 'llama-60m.relora')


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


def vm_hwm(pid, peak, stop):
    """Polls /proc/PID/status for VmHWM (the kernel's own peak RSS) until stop is set."""
    while not stop.is_set():
        try:
            with open(f'/proc/{pid}/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        time.sleep(0.5)


def cpu_model():
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return None


def watch_deadline(p, deadline, metrics, t0, stop):
    """Sends p SIGTERM at a step's end when the step after the one now in hand would end past
    deadline (UTC HH:MM today): the trainer finishes the step in hand (about one step time
    after the last), writes its checkpoint and exits. The step time is that of the last
    step, from when its line reached METRICS (the first one's includes the start-up)."""
    hh, mm = (int(x) for x in deadline.split(':'))
    now = time.gmtime()
    end = time.mktime((now.tm_year, now.tm_mon, now.tm_mday, hh, mm, 0, 0, 0, 0)) - time.timezone
    seen, last = 0, t0
    while not stop.is_set():
        try:
            with open(metrics) as f:
                n = sum(1 for line in f if line.strip())
        except OSError:
            n = 0
        if n > seen:
            t = time.time()
            per = (t - last) / (n - seen)
            seen, last = n, t
            if t + 2 * per > end:
                print(f'deadline {deadline} UTC: {n} steps done, the last in {per:.0f} s; SIGTERM', flush=True)
                p.send_signal(signal.SIGTERM)
                return
        time.sleep(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(ROOT, 'build-bench'))
    ap.add_argument('--recompute', default='full')
    ap.add_argument('--micro-batch', type=int, default=0, help='0: the batch (no accumulation)')
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--warm-start', type=int, default=10, help='full-rank steps (built in with -D)')
    ap.add_argument('--run-warm-start', type=int, default=None,
                    help='the trainer\'s --warm-start: full-rank steps of this run (default: the built-in)')
    ap.add_argument('--reuse', action='store_true', help='keep OUT\'s trainer and token files if present')
    ap.add_argument('--deadline', default=None, help='UTC HH:MM: stop (SIGTERM) before a step ends past it')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=os.path.join(ROOT, 'build-bench', 'demo-llama60m'))
    a = ap.parse_args()
    relorac = os.path.join(a.build, 'relorac')
    os.makedirs(a.out, exist_ok=True)
    defines = ['-D', 'train.target=cpu', '-D', 'train.precision=fp32', f'-D', f'train.schedule.warm_start={a.warm_start}',
               '-D', f'train.recompute={a.recompute}']
    if a.micro_batch:
        defines += ['-D', f'train.micro_batch={a.micro_batch}']

    check = json.loads(run([relorac, 'check', SPEC, '--json'] + defines, stderr=subprocess.DEVNULL))
    plan = sum(check['planned_bytes']['program'].values())
    phases = {ph: sum(check['planned_bytes'][ph].values()) for ph in ('full_rank', 'relora')}
    binary = os.path.join(a.out, 'llama60m')
    t0 = time.time()
    if not (a.reuse and os.path.exists(binary)):
        run([relorac, 'build', SPEC, '-o', binary] + defines, stderr=subprocess.DEVNULL)
    build_s = time.time() - t0

    data_dir = os.path.join(ROOT, 'data')
    os.makedirs(data_dir, exist_ok=True)
    kjv = os.path.join(data_dir, 'kjv.txt')
    if not os.path.exists(kjv) or os.path.getsize(kjv) == 0:
        text = run(['bible', '-f', 'gen1:1-rev22:21'])
        with open(kjv, 'w') as f:
            f.write(text)
    train_bin, val_bin = os.path.join(a.out, 'train.bin'), os.path.join(a.out, 'val.bin')
    with open(kjv, 'rb') as f:
        size = len(f.read())
    head = os.path.join(a.out, 'kjv-head.txt')
    with open(kjv, 'rb') as f, open(head, 'wb') as g:
        g.write(f.read(size - 200000))
    tail = os.path.join(a.out, 'kjv-tail.txt')
    with open(kjv, 'rb') as f, open(tail, 'wb') as g:
        f.seek(size - 200000)
        g.write(f.read())
    if not (a.reuse and os.path.exists(train_bin) and os.path.exists(val_bin)):
        run([sys.executable, os.path.join(ROOT, 'bench', 'make_tokens.py'), head, train_bin])
        run([sys.executable, os.path.join(ROOT, 'bench', 'make_tokens.py'), tail, val_bin])

    ckpt = os.path.join(a.out, 'run')
    if os.path.isdir(ckpt):
        shutil.rmtree(ckpt)
    warm = a.warm_start if a.run_warm_start is None else a.run_warm_start
    cmd = [binary, '--data', train_bin, '--val-data', val_bin, '--data-kind', 'tokens', '--steps', str(a.steps),
           '--total-steps', str(a.steps), '--warmup', '2', '--restart-warmup', '2', '--eval-every', '0',
           '--eval-batches', '1', '--checkpoint-every', '0', '--log-every', '1', '--threads', str(a.threads),
           '--out', ckpt] + ([] if a.run_warm_start is None else ['--warm-start', str(a.run_warm_start)])
    print('$ ' + ' '.join(cmd), flush=True)
    load_start = os.getloadavg()
    t0 = time.time()
    p = subprocess.Popen(cmd)
    peak, stop = [0], threading.Event()
    th = threading.Thread(target=vm_hwm, args=(p.pid, peak, stop), daemon=True)
    th.start()
    if a.deadline:
        threading.Thread(target=watch_deadline, args=(p, a.deadline, os.path.join(ckpt, 'metrics.jsonl'), t0, stop),
                         daemon=True).start()
    _, status, ru = os.wait4(p.pid, 0)
    stop.set()
    wall = time.time() - t0
    stopped = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGTERM
    if status != 0 and not stopped:
        print(f'the trainer failed (wait status {status})', file=sys.stderr)
        return 1
    rss = ru.ru_maxrss * 1024
    steps = []
    with open(os.path.join(ckpt, 'metrics.jsonl')) as f:
        for line in f:
            steps.append(json.loads(line))
    full = [s['tokens_per_s'] for s in steps if 0 < s['step'] < warm and s.get('tokens_per_s')]
    lora = [s['tokens_per_s'] for s in steps if warm < s['step'] < a.steps and s.get('tokens_per_s')]
    events = {s['step']: s.get('events') for s in steps if s.get('events')}
    out = {
        'spec': 'examples/llama-60m.relora', 'defines': defines, 'batch': check['train']['batch'],
        'seq_len': check['train']['seq_len'], 'planned_program_bytes': plan, 'planned_phase_bytes': phases,
        'peak_rss_bytes': rss, 'vm_hwm_bytes': peak[0], 'rss_over_plan': rss / plan, 'build_s': build_s,
        'wall_s': wall, 'tokens_per_s_full_rank': statistics.median(full) if full else None,
        'tokens_per_s_relora': statistics.median(lora) if lora else None,
        'losses': [s['loss'] for s in steps], 'val_loss': [s.get('val_loss') for s in steps if 'val_loss' in s],
        'events': events, 'loadavg_start': load_start, 'loadavg_end': os.getloadavg(),
        'stopped_by_deadline': stopped, 'steps_asked': a.steps, 'warm_start_built': a.warm_start, 'warm_start_run': warm,
        'cpu': cpu_model(), 'date_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t0)),
        'step_s': [round(64 * 512 / s['tokens_per_s'], 1) for s in steps if s.get('tokens_per_s')],
    }
    with open(os.path.join(a.out, 'demo.json'), 'w') as f:
        json.dump(out, f, indent=1)
    gib = 1024 ** 3
    print(f'planned peak {plan / gib:.3f} GiB (full-rank phase {phases["full_rank"] / gib:.3f}, ReLoRA '
          f'{phases["relora"] / gib:.3f}); peak RSS {rss / gib:.3f} GiB ({100 * (rss / plan - 1):+.1f}%); '
          f'VmHWM {peak[0] / gib:.3f} GiB')
    print(f'{len(steps)} steps in {wall:.0f} s (build {build_s:.0f} s); events {events}')
    print(f'tokens/s (median after each phase\'s first step): full-rank {out["tokens_per_s_full_rank"]}, '
          f'ReLoRA {out["tokens_per_s_relora"]}; load average at the end {out["loadavg_end"]}')
    print(f'losses: {" ".join(f"{x:.3f}" for x in out["losses"])}; validation {out["val_loss"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
