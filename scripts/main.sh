#!/usr/bin/env bash
# The main job, from a fresh clone: set-up, release build, `earl doctor`, then a real image edit end to end
# (VQ encode → EARL prompt → grid-constrained seeded sampling → VQ decode) of the bundled example image with the
# tiny random fixture bundle — pass --model/--vq (and a real image) through EARL_EDIT_ARGS for real weights.
# Output: out/edit.png and out/edit.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --release -p earl-cli
earl=target/release/earl
"$earl" doctor
mkdir -p out
# The random tiny model never chooses to start an image by itself, so the prefill writes the image header
# ({h}*{w} = source grid) and the grid constraint does the rest; real checkpoints use the default mode E.
"$earl" edit --image fixtures/bundle-tiny/example.png --instruction "Make the roof of the house blue" \
  --out out/edit.png --seed 0 --mode 'text:<|image start|>{h}*{w}<|image token|>' ${EARL_EDIT_ARGS:-}
