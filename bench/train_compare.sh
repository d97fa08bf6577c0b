#!/usr/bin/env bash
# SFT training throughput, EARL-rs vs PyTorch/transformers, same model shape and batches, on one GPU:
#   bench/train_compare.sh [--hidden 1024 --layers 8 --seq-len 2048 --batch 2 --steps 10 ...]
# Prints one JSON line per engine (tokens/s, step time, MFU, peak memory).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
cargo build --release -p earl-cli >&2
DEVICE=${DEVICE:-cuda}
target/release/earl bench train --device "$DEVICE" "$@"
.venv/bin/python bench/train_baseline.py --device "$DEVICE" "$@"
