"""The project's own decode-speed baseline: what a careful PyTorch user gets from an Emu3-shaped decoder without a
serving engine, so `earl bench decode` can be compared with it on the same card, in the same call.

Method (the same as ../shared/bench/torch_decode_baseline.py, written anew here): random bf16 weights of the real
Emu3 shape (32 layers, width 4096, GQA 32/8, SwiGLU 14336, vocabulary 184622), a KV cache allocated once for
prompt + new tokens, the prompt prefilled in one forward, then one decode step per new token. On CUDA the decode
step (embedding → layers → logits) is captured once in a CUDA graph and replayed; top-k sampling runs outside the
graph, as a user would write it. The bandwidth floor is the bytes of weights a step must read over the card's
measured device-to-device copy rate.

    python3 bench/decode_baseline.py [--batch 1 8 64] [--layers 32] [--new 1062] [--device cuda]

Prints one JSON line per batch size: ms per decode step, tokens/s, prefill ms, floor ms per step, copy TB/s.
`--device cpu` with small shapes (`--layers 1 --hidden 64 --vocab 512`) only checks that the script runs.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--intermediate", type=int, default=14336)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=184622)
    p.add_argument("--prompt", type=int, default=1090, help="prompt tokens (one 256x256 edit)")
    p.add_argument("--new", type=int, default=1062, help="new tokens (32x32 codes, row ends and specials)")
    p.add_argument("--top-k", type=int, default=2048)
    p.add_argument("--device", default="cuda")
    return p.parse_args()


class Decoder:
    """An Emu3-shaped Llama decoder with fused QKV and gate/up matrices and a static KV cache."""

    def __init__(self, a, device, dtype):
        g = torch.Generator(device="cpu").manual_seed(0)
        self.a, self.device, self.dtype = a, device, dtype
        self.head_dim = a.hidden // a.heads

        def rand(rows, cols):
            return (torch.randn(rows, cols, generator=g) * 0.02).to(device=device, dtype=dtype)

        qkv_rows = (a.heads + 2 * a.kv_heads) * self.head_dim
        self.layers = [
            {
                "qkv": rand(qkv_rows, a.hidden),
                "o": rand(a.hidden, a.heads * self.head_dim),
                "gate_up": rand(2 * a.intermediate, a.hidden),
                "down": rand(a.hidden, a.intermediate),
                "norm_attn": torch.ones(a.hidden, device=device, dtype=dtype),
                "norm_mlp": torch.ones(a.hidden, device=device, dtype=dtype),
            }
            for _ in range(a.layers)
        ]
        self.embed = rand(a.vocab, a.hidden)
        self.head = rand(a.vocab, a.hidden)
        self.norm = torch.ones(a.hidden, device=device, dtype=dtype)
        # RoPE θ = 1e6 (Emu3), half-rotation layout as in transformers' Llama.
        steps = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim
        freqs = torch.outer(torch.arange(a.prompt + a.new, device=device, dtype=torch.float32), 1e6 ** -steps)
        self.cos = torch.cat([freqs.cos(), freqs.cos()], -1).to(dtype)
        self.sin = torch.cat([freqs.sin(), freqs.sin()], -1).to(dtype)

    def weight_bytes_per_step(self):
        per_layer = sum(w.numel() for k, w in self.layers[0].items() if not k.startswith("norm"))
        return 2 * (self.a.layers * per_layer + self.head.numel())

    def new_cache(self, batch):
        shape = (self.a.layers, 2, batch, self.a.kv_heads, self.a.prompt + self.a.new, self.head_dim)
        return torch.zeros(shape, device=self.device, dtype=self.dtype)

    @staticmethod
    def rms(x, w):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(v + 1e-5)).to(x.dtype) * w

    def rope(self, x, pos):
        cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)  # [B or T, 1, D]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    def forward(self, ids, pos, cache, mask):
        """ids [B, T] at positions pos [T] (prefill) or [B, 1] (decode); mask [B or 1, 1, T, S] over the cache."""
        a, hd = self.a, self.head_dim
        b, t = ids.shape
        x = F.embedding(ids, self.embed)
        for i, layer in enumerate(self.layers):
            h = self.rms(x, layer["norm_attn"]) @ layer["qkv"].T
            q, k, v = h.split([a.heads * hd, a.kv_heads * hd, a.kv_heads * hd], -1)
            q = self.rope(q.view(b, t, a.heads, hd), pos).transpose(1, 2)
            k = self.rope(k.view(b, t, a.kv_heads, hd), pos).transpose(1, 2)
            v = v.view(b, t, a.kv_heads, hd).transpose(1, 2)
            slots = pos.reshape(-1)[-t:] if pos.dim() == 1 else pos[0]
            cache[i, 0].index_copy_(2, slots, k)
            cache[i, 1].index_copy_(2, slots, v)
            attn = F.scaled_dot_product_attention(q, cache[i, 0], cache[i, 1], attn_mask=mask, enable_gqa=True)
            x = x + attn.transpose(1, 2).reshape(b, t, -1) @ layer["o"].T
            gate, up = (self.rms(x, layer["norm_mlp"]) @ layer["gate_up"].T).chunk(2, -1)
            x = x + (F.silu(gate) * up) @ layer["down"].T
        return self.rms(x[:, -1], self.norm) @ self.head.T  # [B, V]


def copy_rate(device):
    """Device-to-device copy bytes per second (read + write), the floor's denominator."""
    src = torch.empty(1 << 31, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    t = time.perf_counter()
    reps = 10
    for _ in range(reps):
        dst.copy_(src)
    sync(device)
    return 2 * src.numel() * reps / (time.perf_counter() - t)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_top_k(logits, k, gen):
    vals, idx = logits.float().topk(min(k, logits.shape[-1]), -1)
    choice = torch.multinomial(vals.softmax(-1), 1, generator=gen)
    return idx.gather(-1, choice)  # [B, 1]


def run_batch(m, a, batch, device):
    cache = m.new_cache(batch)
    total = a.prompt + a.new
    ids = torch.randint(0, a.vocab, (batch, a.prompt), device=device)
    causal = torch.ones(a.prompt, total, device=device, dtype=torch.bool).tril()
    gen = torch.Generator(device=device).manual_seed(batch)
    sync(device)
    t = time.perf_counter()
    logits = m.forward(ids, torch.arange(a.prompt, device=device), cache, causal.view(1, 1, a.prompt, total))
    sync(device)
    prefill_ms = 1000 * (time.perf_counter() - t)
    # Static decode inputs: the token, its position and the mask row over the cache.
    tok = sample_top_k(logits, a.top_k, gen)
    pos = torch.full((batch, 1), a.prompt, device=device, dtype=torch.long)
    slots = torch.arange(total, device=device)
    mask = (slots <= pos).view(batch, 1, 1, total)
    step = lambda: m.forward(tok, pos, cache, mask)  # noqa: E731
    if device.type == "cuda":
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                step()  # warm-up off the default stream, as graph capture wants
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        replay = lambda: (graph.replay(), out)[1]  # noqa: E731
    else:
        replay = step
    # Warm-up writes went to slot `prompt`; the timed loop rewrites every slot it reads before reading it.
    steps = a.new - 1
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        logits = replay()
        tok.copy_(sample_top_k(logits, a.top_k, gen))
        pos.add_(1)
        mask.copy_((slots <= pos).view(batch, 1, 1, total))
    sync(device)
    ms = 1000 * (time.perf_counter() - t) / steps
    return prefill_ms, ms


def main():
    a = parse_args()
    device = torch.device(a.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.inference_mode():
        m = Decoder(a, device, dtype)
        rate = copy_rate(device) if device.type == "cuda" else float("nan")
        floor_ms = 1000 * m.weight_bytes_per_step() / rate if device.type == "cuda" else None
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for b in a.batch:
            prefill_ms, ms = run_batch(m, a, b, device)
            print(json.dumps({
                "impl": "bench/decode_baseline.py (torch static cache, decode step in a CUDA graph)",
                "gpu": name, "batch": b, "layers": a.layers, "hidden": a.hidden, "prompt": a.prompt, "new": a.new,
                "prefill_ms": round(prefill_ms, 1), "ms_per_step": round(ms, 3),
                "tokens_per_s": round(1000 * b / ms, 1), "floor_ms_per_step": floor_ms and round(floor_ms, 3),
                "copy_TBps": floor_ms and round(rate / 1e12, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
