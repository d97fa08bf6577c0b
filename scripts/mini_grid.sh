#!/usr/bin/env bash
# EARL-mini end to end (docs/mini.md, "Training the grid"): the world's tokenizers, its datasets, a fresh model per
# seed, the paper's six comparisons as experiment chains, and their table. Meant for one GPU; every phase resumes.
#
#   scripts/mini_grid.sh tokenizers   # the shipped bundle's BPE + VQ (EARL_MINI_TRAIN_TOKENIZERS=1: train them anew
#                                     # on world images and texts), shared by every seed; VQ round-trip check
#   scripts/mini_grid.sh data         # s-train, c-train and s-train with CoT, through the VQ
#   scripts/mini_grid.sh init         # the initial model of seed $EARL_MINI_SEED
#   scripts/mini_grid.sh chains [C…]  # the chains of seed $EARL_MINI_SEED (default: all six, SFT first)
#   scripts/mini_grid.sh pipeline     # the six chains of seed $EARL_MINI_SEED at once on one GPU: the three SFTs
#                                     # together, then every evaluation and RL chain together (the model is too
#                                     # small to fill the GPU alone; every process keeps its own seeds)
#   scripts/mini_grid.sh seeds 0,1,2  # the pipelines of several seeds: a seed's SFTs start as soon as the previous
#                                     # seed's are done, next to its evaluations and RL chains
#   scripts/mini_grid.sh table        # earl experiment compare over the six chains, for the seeds $EARL_MINI_SEEDS
#                                     # (comma-separated; default $EARL_MINI_SEED), with each row's minutes
#
# Variables: EARL (the binary, default target/release/earl), EARL_MINI (the world's directory, default
# runs/mini-world), EARL_RUNS (default runs), EARL_MINI_SEED (default 0), EARL_MINI_COUNT (samples per training
# split, default 30000), VQ_STEPS / VQ_BATCH / VQ_LR (vision tokenizer training), EARL_MINI_DEVICE (default cuda),
# EARL_MINI_DETERMINISTIC (1: every chain runs with --deterministic; default 1 on CUDA), EARL_MINI_ENGINE (the
# decode engine of evaluations and RL rollouts: eager, graph or auto, the default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
earl=${EARL:-target/release/earl}
export EARL_MINI=${EARL_MINI:-runs/mini-world}
export EARL_RUNS=${EARL_RUNS:-runs}
export EARL_MINI_SEED=${EARL_MINI_SEED:-0}
export EARL_MINI_DEVICE=${EARL_MINI_DEVICE:-cuda}
count=${EARL_MINI_COUNT:-30000}
chains_all=(sft_s sft_sc sft_think_s sft_s__rl_s sft_s__rl_sc sft_think_s__rl_sc)
timed() {
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  echo "[mini_grid] $(( SECONDS - t0 )) s (rc $rc): $*" >&2
  return "$rc"
}
# Runs `earl` with --deterministic when EARL_MINI_DETERMINISTIC=1 (the default on CUDA: it makes a seed's table
# reproducible; docs/mini.md, "Determinism").
det=()
[[ ${EARL_MINI_DETERMINISTIC:-$([[ $EARL_MINI_DEVICE == cuda* ]] && echo 1 || echo 0)} == 1 ]] && det=(--deterministic)
# libtorch's CPU ops use one OpenMP thread per core in every process; several processes at once then spin against
# each other and crawl (seen on the GPU machine: three `mini data` at once made no progress in ten minutes). Each
# process of a phase that runs N at once gets cores/N threads.
threads_for() {
  local n; n=$(nproc)
  export OMP_NUM_THREADS=$(( n / $1 > 0 ? n / $1 : 1 ))
}
# Waits for every pid and fails when any of them failed (plain `wait` forgets their exit codes).
wait_all() {
  local rc=0
  for p in "$@"; do wait "$p" || rc=$?; done
  return "$rc"
}

phase=${1:?usage: scripts/mini_grid.sh tokenizers|data|init|chains|pipeline|seeds|table}
shift
case $phase in
  tokenizers)
    # The world's data never changes with the grid's seed: the tokenizers are trained once, on seed 0's samples.
    # By default they are the shipped bundle's, so every run of the grid reads the same codes.
    if [[ ${EARL_MINI_TRAIN_TOKENIZERS:-0} != 1 ]]; then
      mkdir -p "$EARL_MINI/tok" "$EARL_MINI/vq"
      cp models/earl-mini/tokenizer.json "$EARL_MINI/tok/"
      cp models/earl-mini/vq/* "$EARL_MINI/vq/"
    fi
    [[ -f $EARL_MINI/tok/tokenizer.json ]] ||
      timed "$earl" tokenizer train --world 0 --world-count 20000 --codebook 1024 --merges 512 --out "$EARL_MINI/tok"
    # The shipped VQ: these settings under a 480 s limit, its step-4500 checkpoint (docs/mini.md, "Vision").
    [[ -f $EARL_MINI/vq/model.safetensors ]] ||
      timed "$earl" --allow-tf32 vq train --world 0 --steps "${VQ_STEPS:-6000}" --batch "${VQ_BATCH:-48}" \
        --lr "${VQ_LR:-1e-3}" --save-every 500 --device "$EARL_MINI_DEVICE" --out "$EARL_MINI/vq"
    for split in s-test c-test ood-test; do
      timed "$earl" mini roundtrip --vq "$EARL_MINI/vq" --split "$split" --count 100 --device "$EARL_MINI_DEVICE"
    done
    ;;
  data)
    # The three datasets are independent: written at once.
    threads_for 3
    pids=()
    for split in s-train c-train; do
      timed "$earl" mini data --split "$split" --count "$count" --vq "$EARL_MINI/vq" --out "$EARL_MINI/data/$split" \
        --device "$EARL_MINI_DEVICE" & pids+=($!)
    done
    timed "$earl" mini data --split s-train --count "$count" --cot --vq "$EARL_MINI/vq" \
      --out "$EARL_MINI/data/s-train-cot" --device "$EARL_MINI_DEVICE" & pids+=($!)
    wait_all "${pids[@]}"
    ;;
  init)
    [[ -f $EARL_MINI/init-$EARL_MINI_SEED/model.safetensors ]] ||
      "$earl" mini init --tokenizer "$EARL_MINI/tok" --seed "$EARL_MINI_SEED" --out "$EARL_MINI/init-$EARL_MINI_SEED"
    ;;
  chains)
    (( $# )) || set -- "${chains_all[@]}"
    for c in "$@"; do
      timed "$earl" "${det[@]}" experiment run "experiments/mini/$c.toml" --no-verify
    done
    ;;
  pipeline | seeds)
    # pipeline: the six chains of seed $EARL_MINI_SEED at once. seeds 0,1,2: the pipelines of those seeds, each
    # seed's three SFTs starting as soon as the previous seed's are done (its evaluations and RL chains then run
    # next to them). Up to nine processes at once.
    threads_for 8
    # A chain that fails under --deterministic (an op with no deterministic kernel) resumes without it, and says so.
    chain() {
      timed "$earl" "${det[@]}" experiment run "experiments/mini/$1.toml" --no-verify "${@:2}" && return 0
      (( ${#det[@]} )) || return 1
      echo "[mini_grid] $1 failed under --deterministic; resuming it without" >&2
      timed "$earl" experiment run "experiments/mini/$1.toml" --no-verify "${@:2}"
    }
    # The SFT stages of the three SFT chains, at once.
    sft_stages() {
      local p=() c
      for c in sft_s sft_think_s sft_sc; do chain "$c" --until sft & p+=($!); done
      wait_all "${p[@]}"
    }
    # Everything after them: each chain's evaluations, and the RL chains (their SFT stages are done).
    after_sft() {
      local p=() c
      for c in "${chains_all[@]}"; do chain "$c" & p+=($!); done
      wait_all "${p[@]}"
    }
    seeds=$EARL_MINI_SEED
    [[ $phase == seeds ]] && seeds=${1:?usage: scripts/mini_grid.sh seeds 0,1,2}
    IFS=, read -ra seed_list <<< "$seeds"
    pids=()
    for s in "${seed_list[@]}"; do
      export EARL_MINI_SEED=$s
      bash scripts/mini_grid.sh init
      t0=$SECONDS
      sft_stages || echo "[mini_grid] seed $s: an SFT stage failed" >&2
      echo "[mini_grid] seed $s: SFT stages done in $(( SECONDS - t0 )) s" >&2
      after_sft & pids+=($!)
    done
    wait_all "${pids[@]}"
    ;;
  table)
    files=()
    for c in "${chains_all[@]}"; do files+=("experiments/mini/$c.toml"); done
    "$earl" experiment compare "${files[@]}" --seeds "${EARL_MINI_SEEDS:-$EARL_MINI_SEED}" --times
    ;;
  *)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
