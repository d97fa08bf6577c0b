#!/usr/bin/env bash
# VQ encode/decode throughput, EARL-rs then transformers Emu3VQVAE, same card, same run (real Emu3 tokenizer shape,
# random weights). Usage: bench/vq.sh [--device cuda] [--dtype bf16] [--batch 16] [--size 256]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
cargo build --release -q -p earl-cli
target/release/earl bench vq "$@"
.venv/bin/python bench/vq_baseline.py "$@"
