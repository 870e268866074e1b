#!/usr/bin/env python3
"""The llama-350m of examples/llama-350m.relora in plain PyTorch modules, with the same
LoRA/ReLoRA math, timed for tests/gpu/run.sh.

Model: vocab 32100, dim 1024, 24 layers, 16 heads, SwiGLU hidden 2736, RMSNorm eps 1e-6,
RoPE theta 10000 (HF rotate_half), untied head, no biases, init std 0.02. Full-rank phase:
every weight trains. ReLoRA phase: the seven block linears are frozen W plus
s * B A on dropout(x) (rank 128, alpha 32, s = 0.25, dropout 0.1; A ~ U(+-1/sqrt(in)),
B = 0); embedding, norms and head train. AdamW (fused) with global-norm clipping at 1.0,
bf16 autocast over f32 master weights (the precision relorac's bf16 uses). Tokens are
random (speed only). Prints one JSON line: tokens/s, step time, peak memory.

usage: torch_ref.py --phase full|relora [--compile] [--batch 32] [--seq 512] [--steps 10] [--warmup 3]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, C, L, H, HIDDEN, EPS, THETA = 32100, 1024, 24, 16, 2736, 1e-6, 10000.0
RANK, ALPHA, DROPOUT = 128, 32, 0.1


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * self.weight


class Linear(nn.Module):
    """y = x W^T, plus s B A dropout(x) when the adapter is on (ReLoRA phase)."""

    def __init__(self, inp, out, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp) * 0.02)
        self.lora = lora
        if lora:
            self.weight.requires_grad_(False)
            self.a = nn.Parameter(torch.empty(RANK, inp).uniform_(-1 / math.sqrt(inp), 1 / math.sqrt(inp)))
            self.b = nn.Parameter(torch.zeros(out, RANK))
            self.scale = ALPHA / RANK

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + self.scale * F.linear(F.linear(F.dropout(x, DROPOUT, self.training), self.a), self.b)
        return y


def rope(x, cos, sin):  # x [B, H, T, D]
    d = x.shape[-1] // 2
    rot = torch.cat([-x[..., d:], x[..., :d]], dim=-1)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.n1, self.n2 = RMSNorm(C), RMSNorm(C)
        self.q, self.k, self.v, self.o = (Linear(C, C, lora) for _ in range(4))
        self.gate, self.up = Linear(C, HIDDEN, lora), Linear(C, HIDDEN, lora)
        self.down = Linear(HIDDEN, C, lora)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.n1(x)
        q, k, v = (m(h).view(b, t, H, C // H).transpose(1, 2) for m in (self.q, self.k, self.v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, C))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, lora, seq):
        super().__init__()
        self.emb = nn.Embedding(V, C)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(lora) for _ in range(L))
        self.norm = RMSNorm(C)
        self.head = nn.Parameter(torch.randn(V, C) * 0.02)
        inv = 1.0 / THETA ** (torch.arange(0, C // H, 2).float() / (C // H))
        f = torch.outer(torch.arange(seq).float(), inv)
        emb = torch.cat([f, f], dim=-1)
        self.register_buffer('cos', emb.cos()[None, None], persistent=False)
        self.register_buffer('sin', emb.sin()[None, None], persistent=False)

    def forward(self, idx, targets):
        x = self.emb(idx)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        logits = F.linear(self.norm(x), self.head)
        return F.cross_entropy(logits.float().view(-1, V), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--phase', choices=['full', 'relora'], required=True)
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--seq', type=int, default=512)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = 'cuda'
    model = Llama(a.phase == 'relora', a.seq).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, fused=True)
    fwd = torch.compile(model) if a.compile else model
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randint(0, V, (a.batch, a.seq + 1), device=dev, generator=g)
    idx, tgt = x[:, :-1].contiguous(), x[:, 1:].contiguous()

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = fwd(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    for _ in range(a.warmup):
        loss = step()
    torch.cuda.synchronize()
    warm = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = (time.time() - t0) / a.steps
    print(json.dumps({
        'impl': 'torch.compile' if a.compile else 'torch eager', 'phase': a.phase,
        'tokens_per_s': a.batch * a.seq / dt, 'step_s': dt, 'warmup_s': warm,
        'peak_allocated_bytes': torch.cuda.max_memory_allocated(),
        'peak_reserved_bytes': torch.cuda.max_memory_reserved(),
        'trainable_params': sum(p.numel() for p in params), 'loss': float(loss),
        'torch': torch.__version__}))


if __name__ == '__main__':
    main()
