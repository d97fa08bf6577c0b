#!/usr/bin/env bash
# On a GPU machine: runs the outside-user binary (tests/outside-user, built by scripts/outside_user.sh and carried
# in .gpu/) on CUDA and checks that a crate depending on earl-core gets CUDA without linking libtorch_cuda: the
# README snippet's model loads on cuda:0, the forward pass runs there, and libtorch_cuda came from earl-core's
# loader. The binary links libtorch_cpu/libtorch/libc10 and has no rpath: the loader needs torch's lib directory,
# taken from the machine's own torch 2.11 in `python3` (PYTHON overrides it).
# Usage: bench/outside_user_gpu.sh [BINARY]   (default .gpu/outside-user)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-.gpu/outside-user}
py=${PYTHON:-python3}
torch_lib="$($py -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
if readelf -d "$bin" 2>/dev/null | grep -q 'NEEDED.*libtorch_cuda'; then
    echo "$bin links libtorch_cuda itself: this check would prove nothing" >&2
    exit 1
fi
out="$(LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RUST_LOG=earl_core=debug \
    "$bin" fixtures/lm-tiny-gqa cuda 2>&1)" || { echo "$out"; exit 1; }
echo "$out"
fail() { echo "outside-user on GPU: FAILED: $1" >&2; exit 1; }
grep -q '^device: Cuda(0)$' <<<"$out" || fail "model not on cuda:0"
grep -q '^logits: \[2, 1, [0-9]*\] on Cuda(0)$' <<<"$out" || fail "forward pass not on cuda:0"
grep -q '^finite: true$' <<<"$out" || fail "non-finite logits"
grep -q '^libtorch_cuda: Loaded(' <<<"$out" || fail "libtorch_cuda not loaded by earl-core"
grep -q '^cuda available: true' <<<"$out" || fail "CUDA not available"
echo "outside-user on GPU: ok (CUDA used)"
