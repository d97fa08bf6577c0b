#!/usr/bin/env bash
# The main job, from a fresh clone: set-up, release build, `earl doctor`, then a real image edit end to end
# (VQ encode → EARL prompt → grid-constrained seeded sampling → VQ decode) with the shipped EARL-mini bundle
# (models/earl-mini, found by the binary itself: no --model), on the bundle's example world image and instruction,
# then the exact verifier's score of the result. Pass other flags through EARL_EDIT_ARGS (e.g. --model/--vq and an
# image of yours through EARL_EDIT_IMAGE / EARL_EDIT_INSTRUCTION for real weights).
# Output: out/edit.png, out/edit.json and the verifier's JSON on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --release -p earl-cli
earl=target/release/earl
"$earl" doctor
mkdir -p out
bundle=models/earl-mini
image=${EARL_EDIT_IMAGE:-$bundle/example/source.png}
instruction=${EARL_EDIT_INSTRUCTION:-$(cat "$bundle/example/instruction.txt")}
echo "== earl edit --image $image --instruction \"$instruction\" (the bundle's defaults, seed 5, CPU)"
"$earl" edit --image "$image" --instruction "$instruction" --out out/edit.png --seed 5 --device cpu ${EARL_EDIT_ARGS:-}
if [[ -z ${EARL_EDIT_IMAGE:-} ]]; then
  echo "== the exact verifier on out/edit.png (target: $bundle/example/target.png)"
  "$earl" mini score --sample "$bundle/example" --image out/edit.png
fi
