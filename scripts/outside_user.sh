#!/usr/bin/env bash
# Builds and runs tests/outside-user — a crate outside the workspace that depends on earl-core by path plus tch,
# as a library user's would — on the CPU, and checks that it gets libtorch's CUDA backend without linking it: the
# binary has no NEEDED entry for libtorch_cuda, yet earl-core loaded it (when the libtorch has one), and the README's
# snippet ran a forward pass. Cargo is started from outside the repository so that the project's .cargo/config.toml
# (found by searching the working directory's ancestors) and its profiles take no part.
# A user's environment is what tch asks for: LIBTORCH_USE_PYTORCH=1 with torch's python first on PATH at build time
# (scripts/env.sh sets both), and torch's lib directory on LD_LIBRARY_PATH at run time (nothing sets an rpath).
# Usage: scripts/outside_user.sh   (after scripts/setup.sh). The binary stays in tests/outside-user/target/debug;
# bench/outside_user_gpu.sh runs it on a GPU machine.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The caller's environment when it already points at a torch (scripts/test.sh sources env.sh first).
[[ -n "${LIBTORCH_USE_PYTORCH:-}" ]] || source "$repo/scripts/env.sh"
crate="$repo/tests/outside-user"
unset CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_RUSTFLAGS
cd "$(mktemp -d)"
cargo build --locked --manifest-path "$crate/Cargo.toml" --target-dir "$crate/target"
bin="$crate/target/debug/outside-user"
torch_lib="$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
if readelf -d "$bin" | grep -q 'NEEDED.*libtorch_cuda'; then
    echo "outside-user links libtorch_cuda itself: this check would prove nothing" >&2
    exit 1
fi
out="$(LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RUST_LOG=earl_core=debug \
    "$bin" "$repo/fixtures/lm-tiny-gqa" cpu 2>&1)"
echo "$out"
grep -q '^finite: true$' <<<"$out"
grep -q '^logits: \[2, 1, [0-9]*\] on Cpu$' <<<"$out"
if [[ -f "$torch_lib/libtorch_cuda.so" ]]; then
    # Loaded by earl-core at run time, not linked: exactly what a dependent crate gets.
    grep -q '^libtorch_cuda: Loaded(' <<<"$out"
else
    grep -q '^libtorch_cuda: Absent$' <<<"$out"
fi
echo "outside-user: ok"
