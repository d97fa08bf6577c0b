#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, the fixtures regenerate-and-compare check against the Python
# reference (transformers 5.17.0 / torch 2.11.0), then every Rust test in the workspace (benches run once as tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
echo "== fixtures: regenerate with the reference and compare with the committed goldens"
.venv/bin/python fixtures/make_fixtures.py --check
echo "== cargo test"
cargo test --workspace --all-targets "$@"
