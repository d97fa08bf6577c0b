#!/usr/bin/env bash
# Issue 13's acceptance numbers for the shipped model, measured as a user gets them: for COUNT fresh samples of
# s-test and c-test (and ood-test) under SEED (a seed no test uses), `earl edit` with its defaults — no --model (the
# binary finds models/earl-mini), run from another working directory, on the CPU, seed 5 — then `earl mini score`.
# The same samples' targets and unchanged sources are scored as they are and through the bundle's VQ (a model that
# copies its input perfectly produces the source's round trip: the copy baseline). Prints one summary line per
# split; per-sample JSON lines are in OUT/<split>.jsonl.
#   scripts/mini_acceptance.sh [COUNT=100] [SEED=909] [OUT=out/mini-acceptance]   (SPLITS="s-test c-test" for fewer)
# A rerun keeps the edits already made (OUT/<split>/<i>/edited.png).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${1:-100}
seed=${2:-909}
out=$(realpath -m "${3:-out/mini-acceptance}")
earl=$(realpath "${EARL:-target/release/earl}")
mkdir -p "$out"
for split in ${SPLITS:-s-test c-test ood-test}; do
  dir=$out/$split
  [[ -f $dir/$((count - 1))/scene.json ]] ||
    "$earl" mini sample --split "$split" --seed "$seed" --count "$count" --out "$dir" >/dev/null
  : >"$out/$split.jsonl"
  for ((i = 0; i < count; i++)); do
    d=$dir/$i
    [[ -f $d/edited.png ]] ||
      (cd /tmp && "$earl" edit --image "$d/source.png" --instruction "$(cat "$d/instruction.txt")" \
        --out "$d/edited.png" --seed 5 --device cpu >/dev/null 2>&1)
    model=$("$earl" mini score --sample "$d" --image "$d/edited.png" 2>/dev/null)
    target=$("$earl" mini score --sample "$d" --image "$d/target.png" 2>/dev/null)
    source=$("$earl" mini score --sample "$d" --image "$d/source.png" 2>/dev/null)
    echo "{\"i\": $i, \"model\": $model, \"target\": $target, \"source\": $source}" >>"$out/$split.jsonl"
  done
  rt=$("$earl" mini roundtrip --vq models/earl-mini/vq --split "$split" --seed "$seed" --count "$count" --device cpu)
  python3 - "$out/$split.jsonl" "$split" "$rt" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rt = json.loads(sys.argv[3])
mean = lambda k: sum(r[k]["overall"] for r in rows) / len(rows)
print(f"{sys.argv[2]}: n {len(rows)}, model {mean('model'):.2f}, target {mean('target'):.2f}, "
      f"unchanged source {mean('source'):.2f}, target through the VQ {rt['target_roundtrip_overall']:.2f}, "
      f"copy through the VQ {rt['source_roundtrip_overall']:.2f}")
PY
done
