#!/usr/bin/env bash
# `earl eval run` end to end on a GPU over one benchmark fixture (MagicBrush, fixtures/bench-tiny) with the tiny
# random bundle and the stand-in judge (bench/loopback_judge.py): generation with the paper's settings (mode E,
# T=1, top-k 2048, the token cap the model's positions leave), judging over HTTP, the run directory and the report.
# Prints the time per sample. EARL_BIN names the `earl` binary (default target/release/earl).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EARL_BIN=${EARL_BIN:-target/release/earl}
OUT=${OUT:-/tmp/earl-eval-gpu}
PORT=${PORT:-18777}
python3 bench/loopback_judge.py "$PORT" &
JUDGE=$!
trap 'kill $JUDGE' EXIT
sleep 1
rm -rf "$OUT/run"
for bench in magicbrush; do
    "$EARL_BIN" eval run --benchmark "$bench" --data "fixtures/bench-tiny/$bench" --model fixtures/bundle-tiny \
        --vq fixtures/vq-tiny --out "$OUT/run" --device cuda --seed 5 --judge-url "http://127.0.0.1:$PORT/v1" \
        --judge-model loopback
done
python3 - "$OUT/run" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
recs = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
s = json.loads((run / "summary.json").read_text())
gen = [r["generate_s"] for r in recs]
toks = [len(r["generated_ids"]) for r in recs]
print(json.dumps({"samples": len(recs), "generate_s_per_sample": sum(gen) / len(gen), "tokens_per_sample":
                  sum(toks) / len(toks), "tokens_per_s": sum(toks) / sum(gen), "valid_images":
                  sum(r["valid_image"] for r in recs), "vie_all_mean": s["metrics"]["vie_all"]["mean"],
                  "report": (run / "report.html").stat().st_size}))
PY
