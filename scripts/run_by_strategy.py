"""Run an experiment's runs strategy by strategy (all seeds of one, then the next).

Usage: python scripts/run_by_strategy.py CONFIG OUT [--seeds N] [LABEL ...]

``activegen run`` orders its runs seed by seed; on a machine where the whole experiment may
not fit the time at hand, this runs the named strategies first (in the order given; the
fully supervised reference is ``supervised``), then the rest in the config's order, so that
stopping early leaves complete strategies with every seed rather than every strategy with a
few. ``--seeds N`` runs only the config's first N seeds (a smaller, still paired run).
The rows are those ``activegen run CONFIG --out OUT`` writes (same runs, same seeds,
resumable); one process, torch with 1 thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from activegen.experiments.config import load_config
from activegen.experiments.runner import run_experiment, run_specs

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    config_path, out, first = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    max_seeds = None
    if first[:1] == ["--seeds"]:
        max_seeds, first = int(first[1]), first[2:]
    torch.set_num_threads(1)
    config = load_config(config_path)
    specs = run_specs(config)
    if max_seeds is not None:
        specs = [s for s in specs if s.seed in config.seeds[:max_seeds]]
    known = {s.strategy for s in specs}
    unknown = [label for label in first if label not in known]
    if unknown:
        sys.exit(f"{config_path}: no strategy {unknown}; its strategies are {sorted(known)}")
    order = first + [s.strategy for s in specs if s.strategy not in first]
    rank = {label: i for i, label in enumerate(dict.fromkeys(order))}
    specs.sort(key=lambda s: (rank[s.strategy], config.seeds.index(s.seed)))
    run_experiment(config, out, specs=specs, progress=False)
