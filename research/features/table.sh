#!/usr/bin/env bash
# The docs/features.md table: every {features} x {learner} cell of one dataset's config, one
# after another on one thread (the strategies and seeds of a cell are in its config).
#   bash research/features/table.sh mnist10k   # or fashion
set -euo pipefail
ds=$1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for source in pixels self-supervised vae; do
  for learner in label-spreading linear-probe; do
    out=out/features/$ds-$source-$learner
    echo "$(date -u +%FT%TZ) $out (load: $(cut -d' ' -f1 /proc/loadavg))"
    activegen run "configs/features-$ds.toml" --set features.source=$source \
      --set learner.name=$learner --out "$out"
  done
done
echo "$(date -u +%FT%TZ) done"
