"""Planning an experiment's runs: every strategy at every seed (and the fully supervised
reference), and which of them are still to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

