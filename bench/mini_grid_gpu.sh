#!/usr/bin/env bash
# One seed-range of the EARL-mini grid on a GPU machine with a time limit (docs/mini.md, "Measured so far"): the
# grid's preparation, then `scripts/mini_grid.sh seeds SEEDS`, archiving the small files of every run (chain.json,
# summary.json, metrics, manifests, per-sample records; no weights, images or episodes) into $OUT/results.tgz every
# 20 s, so whatever finished comes back when the limit cuts the grid short.
#
#   OUT=/tmp/out bench/mini_grid_gpu.sh 0,1,2 [SECONDS]
#
# EARL (the binary, default target/release/earl), EARL_MINI_ENGINE (default graph), EARL_MINI_DETERMINISTIC
# (default 0) as scripts/mini_grid.sh. The work happens in $WORK (default /tmp/earl-mini-grid).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seeds=${1:?usage: bench/mini_grid_gpu.sh SEEDS [SECONDS]}
limit=${2:-540}
OUT=${OUT:?set OUT to the folder the archive goes to}
WORK=${WORK:-/tmp/earl-mini-grid}
export EARL=${EARL:-$PWD/target/release/earl} EARL_MINI=$WORK/world EARL_RUNS=$WORK/runs
export EARL_MINI_ENGINE=${EARL_MINI_ENGINE:-graph} EARL_MINI_DETERMINISTIC=${EARL_MINI_DETERMINISTIC:-0}
t0=$SECONDS
mkdir -p "$WORK"
{ bash scripts/mini_grid.sh tokenizers && bash scripts/mini_grid.sh data; } > "$OUT/prep.log" 2>&1 || exit 1
bash scripts/mini_grid.sh seeds "$seeds" > "$WORK/grid.log" 2>&1 &
grid=$!
# The eval images alone exceed the 16 MiB a file may have on the way back; per-sample records are dropped only if
# the rest still does not fit.
pack() {
  cp "$WORK/grid.log" "$OUT/grid.log" 2>/dev/null
  [[ -d $WORK/runs ]] || return 0
  local ex=(--exclude='*.safetensors' --exclude='*.png' --exclude=images --exclude=episodes --exclude='*.bin')
  tar czf "$OUT/results.tmp" -C "$WORK" "${ex[@]}" runs 2>/dev/null
  if (( $(stat -c %s "$OUT/results.tmp") > 15000000 )); then
    tar czf "$OUT/results.tmp" -C "$WORK" "${ex[@]}" --exclude=samples.jsonl runs 2>/dev/null
  fi
  mv "$OUT/results.tmp" "$OUT/results.tgz"
}
while (( SECONDS - t0 < limit )) && kill -0 "$grid" 2>/dev/null; do pack; sleep 20; done
if ! kill -0 "$grid" 2>/dev/null; then
  wait "$grid"; echo "grid done (rc $?) in $(( SECONDS - t0 )) s"
else
  echo "grid cut at $(( SECONDS - t0 )) s"
fi
pack
grep -E "SFT stages done|\(rc" "$WORK/grid.log" | tail -30
