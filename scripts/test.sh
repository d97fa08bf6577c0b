#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, the fixtures regenerate-and-compare check against the Python
# reference (transformers 5.17.0 / torch 2.11.0), then every Rust test in the workspace (benches run once as tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
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
cargo test --workspace --all-targets "$@"
