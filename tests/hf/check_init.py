#!/usr/bin/env python3
"""The other direction of the Hugging Face round trip: a model transformers initialises and
saves, which relorac's trainer then starts from (--init-from).

usage: check_init.py make SRC_DIR OUT_DIR VAL_FILE SEQ_LEN
         saves a randomly initialised model (config from SRC_DIR's config.json, weights with
         std 0.2, seed 11) to OUT_DIR and prints transformers' mean cross-entropy of VAL_FILE's
         one window (tokens 0..T-1 predicting 1..T; VAL_FILE holds exactly T + 1 bytes)
       check_init.py same A.safetensors B.safetensors
         every tensor of A equals B's of the same name bit for bit (B may hold more: a tied
         head); exits 1 naming the first that differs
"""
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM


def make(src, out, val, seq):
    cfg = AutoConfig.from_pretrained(src)
    cfg.initializer_range = 0.2
    torch.manual_seed(11)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(out)
    data = open(val, 'rb').read()
    if len(data) != seq + 1:
        sys.exit(f'{val}: {len(data)} bytes, want seq_len + 1 = {seq + 1}')
    ids = torch.tensor(list(data), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids[None, :seq]).logits[0].float()
    print(f'{F.cross_entropy(logits, ids[1:seq + 1]).item():.9g}')


def same(a_path, b_path):
    a, b = load_file(a_path), load_file(b_path)
    for name, t in sorted(a.items()):
        if name not in b:
            sys.exit(f'{b_path}: no {name}')
        u = b[name]
        bits = lambda x: x.contiguous().view(-1).view(torch.uint8)
        if t.dtype != u.dtype or t.shape != u.shape or not torch.equal(bits(t), bits(u)):
            sys.exit(f'{name}: {a_path} and {b_path} differ')
    print(f'  {len(a)} tensors bit for bit equal')


if __name__ == '__main__':
    if sys.argv[1] == 'make':
        make(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        same(sys.argv[2], sys.argv[3])
