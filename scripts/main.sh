#!/usr/bin/env bash
# The main job, from a fresh clone: set-up, release build, `earl doctor`, then a forward pass of a fixture model
# and its parity check against the reference. (The image-edit issue turns this into `earl edit`.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --release -p earl-cli
earl=target/release/earl
"$earl" doctor
"$earl" forward --model fixtures/lm-tiny-gqa --ids 1,17,42,99,5
"$earl" parity --model fixtures/lm-tiny-orig --reference fixtures/lm-tiny-orig/reference.safetensors
