# Source this file to build or run the project by hand: `source scripts/env.sh` (after scripts/setup.sh).
# It points cargo's libtorch discovery (torch-sys, LIBTORCH_USE_PYTORCH=1) at the project-local virtualenv.
_earl_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$_earl_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset _earl_root
