#!/usr/bin/env bash
# Idempotent set-up on a fresh machine that has only the Rust toolchain, Python 3 and pip:
# a project-local virtualenv with torch 2.11.0 (libtorch for tch 0.24.0) and the reference packages
# (transformers 5.17.0 etc.) used by fixtures/make_fixtures.py. Safe to run again: it only installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp=.venv/.earl-setup-v1
req=scripts/requirements.txt
if [[ -f $stamp ]] && cmp -s "$stamp" "$req"; then
  exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
echo "setup: installing $(tr '\n' ' ' < "$req")into .venv (first time: ~1-2 min, ~5 GB)" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
