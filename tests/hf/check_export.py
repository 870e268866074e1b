#!/usr/bin/env python3
"""Loads a relorac checkpoint directory in transformers and compares its loss with
relorac's on one token window.

usage: check_export.py CKPT_DIR VAL_FILE SEQ_LEN RELORAC_VAL_LOSS [CLASS]

VAL_FILE holds exactly SEQ_LEN + 1 bytes, so relorac's every validation window is the
whole file (tokens 0..T-1 predicting 1..T) and its val_loss is the mean cross-entropy
of that one window. This script computes the same mean with the transformers class
CLASS (LlamaForCausalLM unless given; GPT2LMHeadModel for GPT-2) (logits of tokens 0..T-1 against tokens 1..T, without the shift
transformers' own `labels` argument applies) and fails when they differ by more than
1e-4 nats, or when a tensor is missing, left over or unused.
"""
import json
import sys

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ckpt, val_path, seq_len, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    cls_name = sys.argv[5] if len(sys.argv) > 5 else 'LlamaForCausalLM'
    cls = getattr(transformers, cls_name)
    data = open(val_path, 'rb').read()
    if len(data) != seq_len + 1:
        sys.exit(f'{val_path}: {len(data)} bytes, want seq_len + 1 = {seq_len + 1}')
    cfg = AutoConfig.from_pretrained(ckpt)
    model, info = AutoModelForCausalLM.from_pretrained(ckpt, output_loading_info=True)
    if type(model) is not cls:
        sys.exit(f'{ckpt}: loaded as {type(model).__name__}, not {cls_name}')
    bad = {k: v for k, v in info.items() if v}  # missing, unexpected, mismatched keys; errors
    if bad:
        sys.exit(f'{ckpt}: loading reported {bad}')
    if model.dtype != torch.float32:
        sys.exit(f'{ckpt}: loaded as {model.dtype}, relorac trains float32')
    model.eval()
    ids = torch.tensor(list(data), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids[None, :seq_len]).logits[0].float()
    got = F.cross_entropy(logits, ids[1:seq_len + 1]).item()
    raw = json.load(open(f'{ckpt}/config.json'))
    if cls_name == 'LlamaForCausalLM':
        print(f'{ckpt}: LlamaForCausalLM hidden {cfg.hidden_size}, layers {cfg.num_hidden_layers}, '
              f'heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}, act {cfg.hidden_act}, '
              f'eps {cfg.rms_norm_eps}, rope {getattr(cfg, "rope_parameters", None)}, tied {raw["tie_word_embeddings"]}')
    else:
        print(f'{ckpt}: {cls_name} n_embd {cfg.n_embd}, n_layer {cfg.n_layer}, n_head {cfg.n_head}, '
              f'n_inner {cfg.n_inner}, act {cfg.activation_function}, eps {cfg.layer_norm_epsilon}, '
              f'tied {raw.get("tie_word_embeddings", True)}')
    print(f'  val loss: relorac {want:.7f}, transformers {got:.7f}, difference {abs(got - want):.2e}')
    if not abs(got - want) <= 1e-4:
        sys.exit('  FAIL: the losses differ by more than 1e-4')


if __name__ == '__main__':
    main()
