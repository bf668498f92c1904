#!/usr/bin/env bash
# Set up activegen in ./.venv (or the active virtualenv with --here).
#   bash scripts/install.sh          # the package
#   bash scripts/install.sh --dev    # + test and lint tools
#
# PyTorch: if the environment already has torch (a user's own CUDA build, say), it is kept as
# it is. Otherwise torch==2.13.0 is installed first: on a machine whose pip is configured with
# a local wheel of that version (find-links) it takes that CPU wheel instead of downloading
# gigabytes of CUDA packages; the package itself only asks for torch>=2.1.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
use_here=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --here) use_here=1 ;;
    *) echo "install.sh: unknown option $arg (use --dev, --here)" >&2; exit 2 ;;
  esac
done

if [ "$use_here" -eq 0 ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python -m pip install --quiet --upgrade pip 2>/dev/null || true
if python -c "import torch" 2>/dev/null; then
  echo "install.sh: keeping the installed torch $(python -c 'import torch; print(torch.__version__)')"
else
  python -m pip install --quiet "torch==${ACTIVEGEN_TORCH_VERSION:-2.13.0}"
fi
python -m pip install --quiet -e ".${extras}"
echo "install.sh: ready ($(python -c 'import activegen, torch; print("activegen", activegen.__version__, "torch", torch.__version__)'))"
