#!/usr/bin/env python3
"""PyTorch/transformers baseline of `earl bench train`: the same Emu3-shaped random model (transformers
`Emu3ForCausalLM`, Emu3TextConfig with head_dim 128, GQA 4:1, MLP 14336/4096 of hidden, vocab 184622), the same
random left-padded batches (a quarter of each sequence masked as prompt), response-only cross-entropy in f32, AdamW
(0.9, 0.95, 1e-6, wd 0.1, fused on CUDA), clipping at 5.0; fp32 master weights with bf16 autocast (PyTorch's standard
mixed precision, the counterpart of EARL-rs's bf16 compute copy of fp32 masters). Prints one JSON line with
tokens/s, step time, MFU (same FLOP formula as EARL-rs) and peak memory (allocated and reserved by torch).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import Emu3ForCausalLM, Emu3TextConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--sdpa", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="transformers' gradient_checkpointing_enable (non-reentrant), as EARL's scripts")
    a = ap.parse_args()

    heads = max(a.hidden // 128, 1)
    cfg = Emu3TextConfig(hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=heads,
                         num_key_value_heads=max(heads // 4, 1), intermediate_size=a.hidden * 14336 // 4096,
                         max_position_embeddings=max(9216, a.seq_len))
    cfg._attn_implementation = a.sdpa
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = Emu3ForCausalLM(cfg).to(dev).train()
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = sum(p.numel() for p in model.parameters())
    decay = set(n for n, _ in model.named_parameters() if not any(s in n for s in ("bias", "norm")))
    groups = [{"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": 0.1},
              {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-6, fused=dev.type == "cuda")
    g = torch.Generator().manual_seed(1)

    def micro():
        ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq_len), generator=g).to(dev)
        mask = torch.ones_like(ids)
        labels = ids.clone()
        labels[:, : a.seq_len // 4] = -100
        return ids, mask, labels

    def global_batch():
        batches = [micro() for _ in range(a.grad_accum)]
        return batches, sum(int((l[:, 1:] != -100).sum()) for _, _, l in batches)

    def fwd_bwd(batches, targets):
        for ids, mask, labels in batches:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
                pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
                logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100, reduction="sum") / targets
            loss.backward()

    def step():
        opt.zero_grad(set_to_none=True)
        batches, targets = global_batch()
        fwd_bwd(batches, targets)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return sum(int(mask.sum()) for _, mask, _ in batches)

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tokens, secs = 0, 0.0
    for _ in range(a.steps):
        t0 = time.perf_counter()
        tokens += step()
        sync()
        secs += time.perf_counter() - t0
    # Forward + backward alone on the same kind of batches (no optimizer), as `earl bench train` reports it.
    fb = 0.0
    for _ in range(a.steps):
        batches, targets = global_batch()
        sync()
        t0 = time.perf_counter()
        fwd_bwd(batches, targets)
        sync()
        fb += time.perf_counter() - t0
    tps = tokens / secs
    matmul = params - cfg.vocab_size * a.hidden
    fpt = 6 * matmul + 6 * a.layers * heads * 128 * a.seq_len
    out = {"engine": "pytorch", "params": params, "hidden": a.hidden, "layers": a.layers, "seq_len": a.seq_len,
           "batch": a.batch, "grad_accum": a.grad_accum, "steps": a.steps, "dtype": a.dtype, "device": a.device,
           "attn": a.sdpa, "gradient_checkpointing": a.gradient_checkpointing, "tokens_per_s": tps, "step_time_s": secs / a.steps, "fwd_bwd_time_s": fb / a.steps,
           "mfu": tps * fpt / (a.peak_tflops * 1e12)}
    if dev.type == "cuda":
        out["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
