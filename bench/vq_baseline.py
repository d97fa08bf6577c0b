#!/usr/bin/env python3
"""Throughput of transformers 5.17.0 `Emu3VQVAE` encode and decode, the baseline for `earl bench vq`: the same
config (the released Emu3 tokenizer shape by default, random weights), batch, image size, dtype and device, timed
the same way (warm-up runs, then the mean over `--iters` with the device synchronised). Prints JSON lines with the
same keys as `earl bench vq`.

    .venv/bin/python bench/vq_baseline.py --device cuda --dtype bf16 --batch 16 --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from transformers import Emu3VQVAE, Emu3VQVAEConfig

TINY = dict(codebook_size=64, base_channels=32, channel_multiplier=[1, 1, 1, 1], num_res_blocks=1,
            attn_resolutions=[3], hidden_size=32)


def timed(fn, device: str, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / max(iters, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="emu3", choices=["emu3", "tiny"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=["f32", "bf16"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()

    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    cfg = Emu3VQVAEConfig(**(TINY if args.config == "tiny" else {}))
    torch.manual_seed(0)
    with torch.device(args.device):
        model = Emu3VQVAE(cfg).to(dtype).eval()
    images = torch.rand(args.batch, 3, args.size, args.size, device=args.device) * 2 - 1
    sizes = torch.tensor([[args.size, args.size]] * args.batch)
    with torch.no_grad():
        codes = torch.stack(list(model.encode(images.to(dtype), image_sizes=sizes).image_tokens))
        ops = {
            "encode": lambda: model.encode(images.to(dtype), image_sizes=sizes),
            "decode": lambda: model.decode(codes),
        }
        for op, fn in ops.items():
            ms = timed(fn, args.device, args.warmup, args.iters)
            print(json.dumps({
                "impl": f"transformers-{__import__('transformers').__version__}", "op": op, "config": args.config,
                "batch": args.batch, "size": args.size, "dtype": args.dtype, "device": args.device,
                "iters": args.iters, "ms_per_batch": round(ms, 3), "images_per_s": round(args.batch * 1e3 / ms, 1),
                "attn_implementation": model.config._attn_implementation,
            }))


if __name__ == "__main__":
    main()
