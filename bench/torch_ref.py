#!/usr/bin/python3
# torch_ref.py: the PyTorch eager reference for bench/run.py. The same LLaMA-style model as a
# relorac spec (RMSNorm, RoPE rotate_half, SwiGLU, causal attention by matmuls, untied head,
# byte-level cross-entropy), fp32, AdamW + global grad clip, one mode per process:
#   full: every parameter trains;   lora: the 7 block linears are frozen W (requires_grad=False)
#   plus A [r,in] (kaiming) / B [out,r] (zeros) adapters, y = x W^T + s·(x A^T) B^T, s = alpha/r,
#   as PEFT / the ReLoRA reference code do; embedding, norms and head train at full rank.
#   peft: the same LoRA, but made by PEFT (get_peft_model on plain nn.Linear layers), which is
#   what users run; embedding, norms and head are made trainable again after PEFT froze them.
# --compile wraps the model in torch.compile (inductor); the first steps then include the
# compilation, which the caller's warm-up skip must cover.
# Runs under any torch >= 1.13 (--compile needs 2.x, --mode peft needs peft):
#   python3 bench/torch_ref.py --mode full ...
# Prints one JSON object: per-step seconds (perf_counter around fwd+bwd+clip+step) and losses.
import argparse
import json
import math
import os
import sys
import time

# bench/profile.py would shadow the standard library's profile module, which torch.compile
# imports (through cProfile): keep this script's folder off the import path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Linear(torch.nn.Module):
    """A bias-free linear, optionally with a LoRA adapter on a frozen W."""

    def __init__(self, n_in, n_out, std, rank=0, alpha=1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in) * std)
        self.rank = rank
        if rank > 0:
            self.weight.requires_grad_(False)
            self.lora_a = torch.nn.Parameter(torch.empty(rank, n_in))
            torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.lora_b = torch.nn.Parameter(torch.zeros(n_out, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.rank > 0:
            y = y + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale
        return y


def plain_linear(n_in, n_out, std, rank=0, alpha=1.0):
    """torch.nn.Linear without bias, W ~ N(0, std): what PEFT wraps (the adapter is its own)."""
    m = torch.nn.Linear(n_in, n_out, bias=False)
    torch.nn.init.normal_(m.weight, std=std)
    return m


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        d, hid, std, r, al = a.dim, a.hidden, a.init_std, a.rank, a.alpha
        self.heads, self.hd = a.heads, a.dim // a.heads
        self.rms1, self.rms2 = RMSNorm(d, a.eps), RMSNorm(d, a.eps)
        lin = plain_linear if a.mode == "peft" else Linear
        self.q, self.k, self.v, self.o = (lin(d, d, std, r, al) for _ in range(4))
        self.gate, self.up = lin(d, hid, std, r, al), lin(d, hid, std, r, al)
        self.down = lin(hid, d, std, r, al)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        n = self.rms1(x)
        # q, k, v: [B, H, T, hd]
        q = self.q(n).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.k(n).view(B, T, self.heads, self.hd).transpose(1, 2)
        v = self.v(n).view(B, T, self.heads, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        h = x + self.o(y)
        n = self.rms2(h)
        return h + self.down(F.silu(self.gate(n)) * self.up(n))


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embedding = torch.nn.Parameter(torch.randn(a.vocab, a.dim) * a.init_std)
        self.blocks = torch.nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim, a.eps)
        self.head = torch.nn.Parameter(torch.randn(a.vocab, a.dim) * a.init_std)
        hd = a.dim // a.heads
        inv = 1.0 / (a.rope ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(a.seq_len).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)  # rotate_half layout: [T, hd]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        T = a.seq_len
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, x, y):
        h = F.embedding(x, self.embedding)
        for b in self.blocks:
            h = b(h, self.cos, self.sin, self.mask)
        logits = F.linear(self.norm(h), self.head)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["full", "lora", "peft"], required=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    p.add_argument("--data", default="data/kjv.txt")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    for name, default in [("vocab", 256), ("dim", 512), ("layers", 8), ("heads", 8),
                          ("hidden", 1376), ("seq_len", 256), ("batch", 4), ("rank", 128)]:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=default)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--rope", type=float, default=10000.0)
    p.add_argument("--init-std", dest="init_std", type=float, default=0.02)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip", type=float, default=1.0)
    a = p.parse_args()
    rank = a.rank
    if a.mode in ("full", "peft"):
        a.rank = 0  # peft: the Model has plain layers; PEFT adds the adapters below

    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    model = Model(a)
    if a.mode == "peft":
        import peft

        cfg = peft.LoraConfig(r=rank, lora_alpha=a.alpha, lora_dropout=0.0, bias="none",
                              target_modules=["q", "k", "v", "o", "gate", "up", "down"])
        model = peft.get_peft_model(model, cfg)
        for name, q in model.named_parameters():
            if "lora_" not in name and (name.endswith("embedding") or name.endswith("head")
                                        or ".rms" in name or "norm." in name):
                q.requires_grad_(True)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    run = torch.compile(model) if a.compile else model
    with open(a.data, "rb") as f:
        data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()
    g = torch.Generator().manual_seed(0)
    B, T = a.batch, a.seq_len
    times, losses = [], []
    for _ in range(a.steps):
        off = torch.randint(0, data.numel() - T - 1, (B,), generator=g)
        x = torch.stack([data[o:o + T] for o in off.tolist()])
        y = torch.stack([data[o + 1:o + T + 1] for o in off.tolist()])
        t0 = time.perf_counter()
        loss = run(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    json.dump({"mode": a.mode, "compile": a.compile, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "batch": B, "seq_len": T, "trainable": sum(q.numel() for q in params),
               "total": sum(q.numel() for q in model.parameters()),
               "step_s": times, "loss": losses}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
