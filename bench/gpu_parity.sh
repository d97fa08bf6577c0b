#!/usr/bin/env bash
# Parity on a GPU: every fixture through `earl parity` on CUDA — the LMs in f32 and bf16, the vision tokenizers in
# f32 (TF32 off, the default), f32 with --allow-tf32 (to show what it costs) and bf16 — plus a tokenizer shaped like
# the one in the [fidelity] report (base 64, multipliers [1,1,2,2], 2 residual blocks, codebook 97) whose reference
# transformers computes on the CPU in f32, and the parity test binaries when they are given (EARL_TEST_BINS).
# Usage on a machine with torch 2.11 + transformers 5.17 in `python3`: bench/gpu_parity.sh [EARL_BINARY]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
earl=${1:-target/release/earl}
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
run() { echo "+ $*"; "$@" 2>&1 | tail -n 4; }
for m in lm-tiny-gqa lm-tiny-mha lm-tiny-orig; do
  for dt in f32 bf16; do run "$earl" parity --model fixtures/$m --reference fixtures/$m/reference.safetensors --device cuda --dtype $dt; done
done
vq_cases() {
  local dir=$1 ref=$2
  run "$earl" parity --model "$dir" --reference "$ref" --device cuda --dtype f32
  run "$earl" parity --model "$dir" --reference "$ref" --device cuda --dtype f32 --allow-tf32
  run "$earl" parity --model "$dir" --reference "$ref" --device cuda --dtype bf16
}
for m in vq-tiny vq-tiny-orig vq-tiny-wide; do vq_cases fixtures/$m fixtures/$m/reference.safetensors; done
tmp=$(mktemp -d)
$py - "$tmp/vq64" <<'PY'
import sys, torch
from transformers import Emu3VQVAE, Emu3VQVAEConfig
torch.manual_seed(97)
cfg = Emu3VQVAEConfig(codebook_size=97, embed_dim=4, latent_channels=4, base_channels=64, channel_multiplier=[1, 1, 2, 2],
                      num_res_blocks=2, attn_resolutions=[], hidden_size=128, num_attention_heads=1)
Emu3VQVAE(cfg).eval().save_pretrained(sys.argv[1])
PY
$py fixtures/make_fixtures.py --model "$tmp/vq64" --out "$tmp/vq64-ref.safetensors" --batch 2
vq_cases "$tmp/vq64" "$tmp/vq64-ref.safetensors"
for t in ${EARL_TEST_BINS:-}; do echo "+ $t"; EARL_FIXTURES=$PWD/fixtures "$t" 2>&1 | grep -E "^test |test result|on Cuda" ; done
