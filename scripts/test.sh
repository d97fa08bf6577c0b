#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, the fixtures regenerate-and-compare check against the Python
# reference (transformers 5.17.0 / torch 2.11.0), then every Rust test in the workspace (benches run once as tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
# libtorch starts one OpenMP thread per core in every test thread that does tensor math, and the test harness runs
# one test thread per core too: on a small CI machine (2 cores) the two oversubscribe each other and the suite runs
# several times slower. Tests use tiny tensors, so one OpenMP thread each loses nothing.
export OMP_NUM_THREADS=1
# rustfmt and clippy ship with rustup's default profile; add them where a minimal toolchain left them out.
for tool in rustfmt clippy; do
    cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$tool"
done
echo "== rustfmt (rustfmt.toml: the project's width 120)"
cargo fmt --all --check
echo "== clippy (warnings are errors; the allowed lints are listed with reasons in Cargo.toml)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== fixtures: regenerate with the reference and compare with the committed goldens"
.venv/bin/python fixtures/make_fixtures.py --check
echo "== cargo test"
# One integration-test binary per package (tests/integration/main.rs, the files of each tests/ directory as its
# modules): each binary links libtorch, so fewer binaries build faster and take far less disk.
cargo test --workspace --all-targets "$@"
echo "== doc tests (the README's library snippet)"
# --workspace, as above: one feature set, so nothing is rebuilt (`-p earl-core` alone unifies other features).
cargo test --workspace --doc
echo "== examples (built with the workspace's features, so only they are linked; then run)"
cargo build -q --workspace --examples
target/debug/examples/edit_image
target/debug/examples/lm_parity
target/debug/examples/custom_reward 1
echo "== a crate outside the workspace that depends on earl-core (CUDA without the workspace's link arguments)"
scripts/outside_user.sh
echo "== the evaluation report in headless Chromium (installs the Debian package if missing; EARL_SKIP_CHROMIUM=1 skips)"
scripts/check_report.sh
