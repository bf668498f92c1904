"""Run an experiment's runs strategy by strategy (all seeds of one, then the next).

Usage: python scripts/run_by_strategy.py CONFIG OUT [--seeds N | --only-seeds K,K,...]
       [--only] [LABEL ...]

``activegen run`` orders its runs seed by seed; on a machine where the whole experiment may
not fit the time at hand, this runs the named strategies first (in the order given; the
fully supervised reference is ``supervised``), then the rest in the config's order, so that
stopping early leaves complete strategies with every seed rather than every strategy with a
few. ``--seeds N`` runs only the config's first N seeds (a smaller, still paired run);
``--only-seeds`` only the seeds listed; ``--only`` only the named strategies (e.g. to share
one experiment's runs between two processes, each with its own OUT, and merge the finished
``runs/`` afterwards). The rows are those ``activegen run CONFIG --out OUT`` writes (same
runs, same seeds, resumable); one process, torch with 1 thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from activegen.experiments.config import load_config
from activegen.experiments.runner import run_experiment, run_specs


def _parse(args: list[str]) -> tuple[str, Path, int | None, list[int] | None, bool, list[str]]:
    if len(args) < 2:
        sys.exit(__doc__)
    config_path, out, rest = args[0], Path(args[1]), args[2:]
    max_seeds: int | None = None
    only_seeds: list[int] | None = None
    only = False
    while rest[:1] in (["--seeds"], ["--only-seeds"], ["--only"]):
        flag = rest.pop(0)
        if flag == "--only":
            only = True
            continue
        if not rest:
            sys.exit(f"{flag} needs a value\n{__doc__}")
        value = rest.pop(0)
        try:
            if flag == "--seeds":
                max_seeds = int(value)
            else:
                only_seeds = [int(v) for v in value.split(",")]
        except ValueError:
            sys.exit(f"{flag} {value!r}: not a number (list)")
    return config_path, out, max_seeds, only_seeds, only, rest


if __name__ == "__main__":
    config_path, out, max_seeds, only_seeds, only, first = _parse(sys.argv[1:])
    torch.set_num_threads(1)
    config = load_config(config_path)
    specs = run_specs(config)
    if max_seeds is not None:
        specs = [s for s in specs if s.seed in config.seeds[:max_seeds]]
    if only_seeds is not None:
        missing = sorted(set(only_seeds) - set(config.seeds))
        if missing:
            sys.exit(f"{config_path}: no seed {missing}; its seeds are {config.seeds}")
        specs = [s for s in specs if s.seed in only_seeds]
    known = {s.strategy for s in specs}
    unknown = [label for label in first if label not in known]
    if unknown:
        sys.exit(f"{config_path}: no strategy {unknown}; its strategies are {sorted(known)}")
    if only:
        if not first:
            sys.exit("--only needs the strategies to run")
        specs = [s for s in specs if s.strategy in first]
    order = first + [s.strategy for s in specs if s.strategy not in first]
    rank = {label: i for i, label in enumerate(dict.fromkeys(order))}
    specs.sort(key=lambda s: (rank[s.strategy], config.seeds.index(s.seed)))
    run_experiment(config, out, specs=specs, progress=False)
