"""Experiment configuration: a TOML file validated in full before any work starts.

Unknown keys, unknown component names and parameters, impossible budgets and absent classes
are all refused here (or in :func:`activegen.experiments.runner.load_experiment_data` for
what needs the data) with a message naming the key or value at fault.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from activegen.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where a dataset comes from and how it is prepared.

    The steps run in this order: load, select classes, subset, pad, resize, channels.
    """

    dataset: str = "digits"
    root: Path | None = None
    #: one split, or several concatenated into the pool (e.g. ["train", "test"])
    split: str | list[str] = "train"
    task: str | None = None
    classes: list[int | str] | None = Field(default=None, min_length=2)
    subset: int | None = Field(default=None, ge=2)
    pad_to: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    channels: Literal[1, 3] | None = None
    #: hold out this fraction of the data as a test set named "<name>-test" (seeded, stratified)
    test_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)
    split_seed: int = 0


class TestSetConfig(DataConfig):
    """A named test set; evaluated after every round."""

    name: str
    split: str = "test"

    @model_validator(mode="after")
    def _no_split_of_a_test_set(self) -> TestSetConfig:
        if self.test_fraction is not None:
            raise ValueError("test_fraction belongs in [data] (it splits the pool), not in a "
                             "test set")
        return self


class ComponentConfig(BaseModel):
    """A strategy, learner or oracle: its registered ``name``, an optional display ``label``,
    and its parameters as further keys (checked against the component's signature)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    label: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def display(self) -> str:
        return self.label or self.name


class LoopConfig(_Strict):
    initial: int = Field(ge=1)
    batch: int = Field(ge=1)
    budget: int = Field(ge=1)
    abstain_costs_budget: bool = True

    @model_validator(mode="after")
    def _budget_fits(self) -> LoopConfig:
        if self.budget < self.initial:
            raise ValueError(
                f"budget ({self.budget}) is below the initial labeled set ({self.initial})"
            )
        if self.budget > self.initial and self.budget - self.initial < self.batch:
            raise ValueError(
                f"budget ({self.budget}) leaves {self.budget - self.initial} labels after the "
                f"initial set, fewer than one batch ({self.batch})"
            )
        return self


class ReportConfig(_Strict):
    baseline: str = "random"
    label_counts: list[int] | None = None
    thresholds: list[float] = [0.95, 0.99]


class ExecutionConfig(_Strict):
    """Where and how many runs at once. It never changes results, so it is left out of the
    fingerprint: an experiment begun with one executor resumes with another.

    Attributes:
        executor: ``local`` (this machine: in-process for ``jobs = 1``, worker processes
            otherwise) or ``ray`` (a Ray cluster, or a local Ray instance).
        jobs: runs at once on this machine (``local``); CPUs of a local Ray instance
            (``ray``; default there: every core).
        ray_address: address of a running Ray cluster (e.g. ``ray://head:10001`` or
            ``auto``); none starts a local Ray instance.
        ray_num_cpus: CPUs of the local Ray instance (default: ``jobs`` if above 1, else all).
        fsync: fsync every round's checkpoint and query file. ``false`` keeps every write
            atomic (a killed run still resumes, nothing is half-written) but a power cut may
            lose recent rounds; use it where a disk's fsync costs more than a round.
    """

    executor: Literal["local", "ray"] = "local"
    jobs: int = Field(default=1, ge=1)
    ray_address: str | None = None
    ray_num_cpus: int | None = Field(default=None, ge=1)
    fsync: bool = True


class ExperimentConfig(_Strict):
    """One experiment: strategies × seeds on one pool, evaluated on named test sets."""

    name: str = "experiment"
    seeds: list[int] = Field(default_factory=lambda: list(range(5)), min_length=1)
    data: DataConfig = DataConfig()
    test_sets: list[TestSetConfig] = []
    learner: ComponentConfig = ComponentConfig(name="linear-svm")
    oracle: ComponentConfig = ComponentConfig(name="pool")
    strategies: list[ComponentConfig] = Field(min_length=1)
    loop: LoopConfig
    supervised: bool = True
    device: str = "auto"
    cache_dir: Path | None = None
    report: ReportConfig = ReportConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", device):
            raise ValueError(f"{device!r} is not one of: auto, cpu, cuda, cuda:<index>, mps")
        return device

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        labels = [s.display for s in self.strategies]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"strategies share the label(s) {dup}; give each a distinct 'label'")
        if "supervised" in labels:
            raise ValueError("'supervised' is reserved for the fully supervised reference")
        names = [t.name for t in self.test_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"test sets share a name: {names}")
        if not self.test_sets and self.data.test_fraction is None:
            raise ValueError("no test set: add [[test_sets]] or set data.test_fraction")
        return self

    def fingerprint(self) -> str:
        """A hash of everything that decides results.

        Left out: ``report`` (presentation), ``execution`` (which executor, how many jobs) and
        ``device`` (where the computation runs), so that an experiment started on a laptop
        resumes on a cluster or a GPU machine. On the CPU the rows are bitwise identical
        whichever executor ran them; a GPU may differ from the CPU in the last bits.
        """
        return _hash(self.model_dump(mode="json", exclude={"report", "execution", "device"}))

    def legacy_fingerprint(self) -> str:
        """The fingerprint folders made before ``[execution]`` existed hold (it included
        ``device``), so that they still resume."""
        return _hash(self.model_dump(mode="json", exclude={"report", "execution"}))


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def with_overrides(config: ExperimentConfig, *, device: str | None = None,
                   executor: str | None = None, jobs: int | None = None,
                   ray_address: str | None = None) -> ExperimentConfig:
    """``config`` with command-line overrides of where it runs (validated like the file)."""
    data = config.model_dump(mode="json")
    execution = dict(data["execution"])
    for key, value in (("executor", executor), ("jobs", jobs), ("ray_address", ray_address)):
        if value is not None:
            execution[key] = value
    if ray_address is not None and executor is None:
        execution["executor"] = "ray"
    data["execution"] = execution
    if device is not None:
        data["device"] = device
    return parse_config(data, "command line")


def check_components(config: ExperimentConfig) -> None:
    """Check every component name and parameter against the registries."""
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    LEARNERS.check_params(config.learner.name, config.learner.params, LEARNER_CONTEXT)
    ORACLES.check_params(config.oracle.name, config.oracle.params, ORACLE_CONTEXT)
    for i, strategy in enumerate(config.strategies):
        try:
            # Building checks parameter values too (a bad 'measure', say); constructors are
            # cheap by contract: heavy work happens in Strategy.prepare.
            STRATEGIES.build(strategy.name, strategy.params)
            STRATEGIES.get(strategy.name).check_learner(config.learner.name,
                                                        config.learner.params)
        except ConfigError as exc:
            raise ConfigError(f"strategies[{i}]: {exc}") from None
    labels = [s.display for s in config.strategies]
    if "baseline" in config.report.model_fields_set and config.report.baseline not in labels:
        raise ConfigError(
            f"report.baseline: {config.report.baseline!r} is not one of the strategies "
            f"({', '.join(labels)})"
        )


#: Arguments the runner passes to learners itself (a learner takes those it accepts):
#: labels_initial / labels_per_round let a deep learner grow its epochs per round. The
#: experiment's ``device`` is passed too, as a default: a ``device`` parameter set on the
#: learner (or a strategy) in the config wins.
LEARNER_CONTEXT = ("n_classes", "seed", "labels_initial", "labels_per_round")

#: Arguments the runner passes to oracles itself.
ORACLE_CONTEXT = ("pool", "seed", "cache_dir", "device", "n_classes")


def _format_validation_error(exc: ValidationError, source: str) -> str:
    """One line: the file, then each bad key path with what is wrong with it."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{where}: {msg}")
    return f"{source}: invalid configuration: " + "; ".join(problems)


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dictionary; raise :class:`ConfigError` naming each bad key."""
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    try:
        check_components(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, refusing a missing, binary or malformed one with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML experiment file."""
    return parse_config(read_toml(path), str(path))
