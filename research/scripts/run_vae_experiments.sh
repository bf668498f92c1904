#!/usr/bin/env bash
# Runs the scaled VAE-augmentation experiments of docs/vae-augmentation.md on a CPU, niced,
# one thread (the machine is shared), each into out/<config name>/ (resumable: re-running skips finished runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for cfg in "$@"; do
  name=$(basename "$cfg" .toml)
  echo "== $(date -u +%T) $name"
  /usr/bin/time -f "$name wall %e s" nice -n 10 python -m activegen.cli run "$cfg" --out "out/$name" --quiet
done
echo "== $(date -u +%T) done"
