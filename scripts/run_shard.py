"""Run one shard of an experiment's pending runs (for a few processes side by side).

Usage: python scripts/run_shard.py CONFIG OUT SHARD N_SHARDS [MAX_SEEDS]
Runs every N_SHARDS-th pending run starting at SHARD (only the first MAX_SEEDS seeds if
given; a killed run resumes from its checkpoint); generators are shared through the
cache's lock, and each run's CSV is written atomically, so shards never collide. Rebuild the
table afterwards with ``activegen report OUT`` (it reads runs/*.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from activegen.experiments.config import load_config
from activegen.experiments.runner import run_experiment, run_specs

if __name__ == "__main__":
    config_path, out, shard, n_shards = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:5])
    max_seeds = int(sys.argv[5]) if len(sys.argv) > 5 else None
    torch.set_num_threads(1)
    config = load_config(config_path)
    # Shard the full, fixed list (not the pending one, which shifts while other shards
    # finish runs); run_one skips runs whose CSV exists.
    todo = run_specs(config)
    if max_seeds is not None:
        todo = [s for s in todo if s.seed in config.seeds[:max_seeds]]
    run_experiment(config, out, specs=todo[shard::n_shards], progress=False)
