#!/usr/bin/env python3
"""Compares two training runs (checkpoint directories): the losses (training and validation) of their metrics.jsonl and
the tensors of their trainer.safetensors. Reads safetensors with struct alone (no numpy), so
the reference run's values come from its files, not from the trainer's own comparison.

usage: mpi_compare.py REF RUN [--exact] [--tol T] [--loss-tol L]
  default: max over steps of |a - b| / |a| for the loss and, per F32 tensor, max|a - b| /
           max|a| must be <= T (1e-5); prints the worst of each.
  --loss-tol: the losses within L instead of T.
  --exact: the losses and every tensor's bytes must be identical."""
import json
import struct
import sys


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = (info["dtype"], data[base + lo : base + hi])
    return out


def losses(d):
    """{(step, key): value} for the training loss and, on evaluation steps, val_loss."""
    rows = {}
    with open(d + "/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            for key in ("loss", "val_loss"):
                if key in r:
                    rows[(r["step"], key)] = r[key]
    return rows


def main():
    args = sys.argv[1:]
    exact = "--exact" in args
    tol = 1e-5
    if "--tol" in args:
        tol = float(args[args.index("--tol") + 1])
    loss_tol = tol
    if "--loss-tol" in args:
        loss_tol = float(args[args.index("--loss-tol") + 1])
    values = [args[i + 1] for i, a in enumerate(args) if a in ("--tol", "--loss-tol")]
    ref, run = [a for a in args if not a.startswith("--") and a not in values][:2]
    la, lb = losses(ref), losses(run)
    if sorted(la) != sorted(lb) or not la:
        print(f"FAIL: the runs logged different steps: {sorted(la)} vs {sorted(lb)}")
        return 1
    worst_loss = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la)
    ta = read_st(ref + "/latest/trainer.safetensors")
    tb = read_st(run + "/latest/trainer.safetensors")
    if sorted(ta) != sorted(tb):
        print("FAIL: the checkpoints hold different tensors")
        return 1
    worst, worst_name, n = 0.0, "", 0
    for name, (dt, a) in ta.items():
        dtb, b = tb[name]
        if exact:
            if a != b:
                print(f"FAIL: tensor {name} differs")
                return 1
            continue
        if dt != "F32":
            continue
        va = struct.unpack(f"<{len(a) // 4}f", a)
        vb = struct.unpack(f"<{len(b) // 4}f", b)
        m = max(abs(v) for v in va) if va else 0.0
        if m == 0.0:
            continue
        r = max(abs(x - y) for x, y in zip(va, vb)) / m
        n += 1
        if r > worst:
            worst, worst_name = r, name
    if exact:
        if worst_loss != 0.0:
            print(f"FAIL: losses differ (worst relative difference {worst_loss:.3g})")
            return 1
        print(f"identical: {len(la)} losses (training and validation), {len(ta)} tensors")
        return 0
    print(f"losses: worst |a-b|/|a| {worst_loss:.3g} over {len(la)} (training and validation); "
          f"tensors: worst max|d|/max|ref| {worst:.3g} ({worst_name}) over {n} tensors")
    if worst_loss > loss_tol or worst > tol:
        print(f"FAIL: above the tolerance {loss_tol:g} (losses) or {tol:g} (tensors)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
