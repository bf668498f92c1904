"""Train SimCLR encoders on a pool with some settings; accuracy on the pool only (tuning).

    python tune_ssl.py DATASET '{"epochs": 10, "width": 16}' ... [--threads 1]

Each settings JSON trains (or loads from /tmp/activegen-tune) one encoder; the pool's labels
are read only to draw labeled sets and to score the pool points outside them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common import splits
from evaluate import accuracies, table

from activegen.features.self_supervised import SelfSupervisedSettings, SelfSupervisedSource

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = 1
for a in sys.argv[1:]:
    if a.startswith("--threads="):
        threads = int(a.split("=")[1])
name, specs = args[0], args[1:]
Xp, yp, _, _ = splits(name)
cache = Path(os.environ.get("TUNE_CACHE", "/tmp/activegen-tune"))
for spec in specs:
    settings = SelfSupervisedSettings(**json.loads(spec))
    source = SelfSupervisedSource(settings, cache_dir=cache, threads=threads, display="lines")
    load = os.getloadavg()[0]
    source.fit(Xp)
    rec = source.training
    t = time.perf_counter()
    F = source.transform(Xp)
    extract = time.perf_counter() - t
    r = accuracies(F, yp, None, None)
    print(f"{name} {spec}: train {rec.seconds:.0f} s ({'cached' if rec.from_cache else 'now'}, "
          f"{rec.threads} thr, load {load:.1f}), extract {len(Xp) / extract:.0f} img/s, "
          f"loss {rec.losses[0]:.3f}->{rec.losses[-1]:.3f} | {table(r)}", flush=True)
