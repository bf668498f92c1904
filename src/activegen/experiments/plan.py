"""Planning an experiment's runs: every strategy at every seed (and the fully supervised
reference), which of them are still to do, and a chosen part of them in a chosen order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from activegen.errors import ConfigError
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.results import SUPERVISED, is_finished_run


@dataclass(frozen=True)
class RunSpec:
    """One run: a strategy label (or ``supervised``) at one seed."""

    strategy: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.strategy}__seed{self.seed}"


def run_specs(config: ExperimentConfig) -> list[RunSpec]:
    """Every run of the experiment, seeds outermost so early results cover all strategies."""
    specs = [RunSpec(s.display, seed) for seed in config.seeds for s in config.strategies]
    if config.supervised:
        specs = [RunSpec(SUPERVISED, seed) for seed in config.seeds] + specs
    return specs



def pending(config: ExperimentConfig, out_dir: Path) -> list[RunSpec]:
    """The runs without a finished CSV that matches its manifest."""
    return [s for s in run_specs(config)
            if not is_finished_run(out_dir / "runs" / f"{s.run_id}.csv")]


def select_runs(config: ExperimentConfig, only: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None) -> list[RunSpec]:
    """The runs of the named strategies (``only``, in the order given; ``supervised`` is the
    fully supervised reference) at the named seeds, strategy by strategy: every selected seed
    of one strategy before the next, seeds in the config's order.

    ``None`` selects every strategy (in the config's order) or every seed. The runs are those of
    :func:`run_specs`, so a later run of the whole experiment finishes the rest in the same
    output folder. A strategy or seed the config lacks is a :class:`ConfigError`, raised before
    anything runs.
    """
    specs = run_specs(config)
    known = list(dict.fromkeys(s.strategy for s in specs))
    if only is not None:
        unknown = [label for label in only if label not in known]
        if unknown:
            raise ConfigError(f"--only: no strategy {', '.join(map(repr, unknown))} in the "
                              f"experiment; its strategies are: {', '.join(known)}")
    if seeds is not None:
        missing = [seed for seed in seeds if seed not in config.seeds]
        if missing:
            raise ConfigError(f"--seeds: no seed {', '.join(map(str, missing))} in the "
                              f"experiment; its seeds are: {', '.join(map(str, config.seeds))}")
    order = list(dict.fromkeys(only)) if only is not None else known
    chosen = [s for s in specs if s.strategy in order and (seeds is None or s.seed in seeds)]
    # strategy by strategy: stopping early leaves whole strategies, not every strategy at a
    # few seeds (run_specs goes seed by seed)
    return sorted(chosen, key=lambda s: (order.index(s.strategy), config.seeds.index(s.seed)))
