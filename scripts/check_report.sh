#!/usr/bin/env bash
# The evaluation report in a real browser: renders a run's report.html and a two-run comparison page in headless
# Chromium and checks that every image loads, nothing logs an error, sorting works and a screenshot shows the
# gallery (earl-eval/src/report/chromium.rs). Chromium is the Debian package `chromium`, installed here when
# missing (as root, or with passwordless sudo). When it cannot be installed the check FAILS; set
# EARL_SKIP_CHROMIUM=1 to skip it explicitly on a machine without it. EARL_REPORT_SHOTS=DIR keeps the screenshots.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${EARL_SKIP_CHROMIUM:-0}" == 1 ]]; then
    echo "== report check in Chromium: SKIPPED because EARL_SKIP_CHROMIUM=1" >&2
    exit 0
fi
find_chromium() {
    local c
    for c in chromium chromium-browser; do
        command -v "$c" && return 0
    done
    return 1
}
if ! CHROMIUM=$(find_chromium); then
    echo "== installing the Debian package chromium (for the report check)"
    if [[ $(id -u) == 0 ]]; then
        AS_ROOT=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        AS_ROOT=(sudo -n)
    else
        echo "error: chromium is missing and cannot be installed (not root, no passwordless sudo);" \
            "install the Debian package chromium, or set EARL_SKIP_CHROMIUM=1 to skip this check" >&2
        exit 1
    fi
    if ! { "${AS_ROOT[@]}" apt-get update -qq &&
        "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }; then
        echo "error: apt-get could not install chromium; set EARL_SKIP_CHROMIUM=1 to skip this check" >&2
        exit 1
    fi
    CHROMIUM=$(find_chromium) || { echo "error: chromium was installed but is not on PATH" >&2; exit 1; }
fi
echo "== report check in $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
source scripts/env.sh
export EARL_CHROMIUM="$CHROMIUM" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
TEST=report::chromium::report_and_compare_render_in_headless_chromium
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# The test is #[ignore]d for plain `cargo test`; run exactly it, and fail if it did not run (a renamed test must not
# turn this check into a silent pass).
# `--workspace --all-targets`, as the test command builds: `-p earl-eval` alone would unify dependency features
# differently and rebuild them (minutes of CI).
cargo test --workspace --all-targets "$TEST" -- --ignored --exact 2>&1 | tee "$LOG"
grep -q "test $TEST ... ok" "$LOG" || { echo "error: $TEST did not run and pass" >&2; exit 1; }
