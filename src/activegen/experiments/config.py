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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from activegen.errors import ConfigError

#: an image side in pixels (a zero or negative one is refused here, not by torch later)
_Side = Annotated[int, Field(ge=1)]
#: a seed: numpy's SeedSequence takes only non-negative integers
_Seed = Annotated[int, Field(ge=0)]
#: a fraction of the fully supervised accuracy
_Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


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
    pad_to: tuple[_Side, _Side] | None = None
    size: tuple[_Side, _Side] | None = None
    channels: Literal[1, 3] | None = None
    #: hold out this fraction of the data as a test set named "<name>-test" (seeded, stratified)
    test_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)
    split_seed: int = Field(default=0, ge=0)


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
    #: how the initial labeled set is chosen: uniform ``random`` (default), or the cold-start
    #: ``typiclust`` / ``probcover`` on ``initial_features`` (``pixels``, the pool ``vae`` or
    #: ``backbone:<path>``, a local torchvision ResNet-18 state dict)
    initial_strategy: Literal["random", "typiclust", "probcover"] = "random"
    initial_features: str = "pixels"

    @field_validator("initial_features")
    @classmethod
    def _known_features(cls, value: str) -> str:
        if value in ("pixels", "vae"):
            return value
        if value.startswith("backbone:"):
            from activegen.strategies.cold_start import check_backbone_spec

            check_backbone_spec(value)  # the file must be there before any work
            return value
        raise ValueError(f"initial_features {value!r}: use 'pixels', 'vae' or "
                         f"'backbone:<path to a torchvision resnet18 state dict>'")

    @model_serializer(mode="wrap")
    def _drop_defaults(self, handler: Any) -> dict[str, Any]:
        # The cold-start keys are left out at their defaults, so that fingerprints (and the
        # folders of experiments made before they existed) stay as they were.
        data = handler(self)
        if self.initial_strategy == "random":
            data.pop("initial_strategy", None)
            data.pop("initial_features", None)
        return data

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


class StoppingConfig(_Strict):
    """Stopping criteria recorded on every run (:mod:`activegen.stopping`): each criterion
    (a name → its parameters) is fed the model's predictions on a fixed random stop set of
    ``stop_set`` pool points every round; the run records the round each first fires."""

    criteria: dict[str, dict[str, Any]] = Field(default_factory=lambda: {
        "stabilizing-predictions": {}, "max-uncertainty": {}, "overall-uncertainty": {},
        "classification-change": {}})
    stop_set: int = Field(default=1000, ge=1)
    #: end each run at the round where this criterion first fires (after that round's
    #: evaluation); None: run to the budget
    stop_on: str | None = None

    @model_serializer(mode="wrap")
    def _drop_unset_stop_on(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self.stop_on is None:  # fingerprints of recording-only configs stay as before
            data.pop("stop_on", None)
        return data

    @model_validator(mode="after")
    def _stop_on_is_recorded(self) -> StoppingConfig:
        if self.stop_on is not None and self.stop_on not in self.criteria:
            raise ValueError(f"stop_on: {self.stop_on!r} is not one of the criteria "
                             f"({', '.join(self.criteria)})")
        return self


class ReportConfig(_Strict):
    #: the strategy the others are tested against; none: ``random`` if it is one of the
    #: strategies, else the first strategy (see :attr:`ExperimentConfig.baseline`)
    baseline: str | None = None
    label_counts: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    thresholds: list[_Fraction] = Field(default=[0.95, 0.99], min_length=1)


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
        threads: threads each run uses for torch and numpy's BLAS/OpenMP, in this process and
            in workers alike. Default 1: a learner's floating-point sums depend on the thread
            count (a logistic regression's accuracies differ with 1 and 2 threads), so a fixed
            count keeps rows identical whatever the executor, ``jobs`` or machine; runs go in
            parallel with ``jobs`` instead, and a busy machine has no threads waiting on
            each other.
    """

    executor: Literal["local", "ray"] = "local"
    jobs: int = Field(default=1, ge=1)
    ray_address: str | None = None
    ray_num_cpus: int | None = Field(default=None, ge=1)
    fsync: bool = True
    threads: int = Field(default=1, ge=1)


class ExperimentConfig(_Strict):
    """One experiment: strategies × seeds on one pool, evaluated on named test sets."""

    name: str = "experiment"
    seeds: list[_Seed] = Field(default_factory=lambda: list(range(5)), min_length=1)
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
    stopping: StoppingConfig | None = None

    @model_serializer(mode="wrap")
    def _drop_unset_stopping(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self.stopping is None:  # fingerprints of configs without [stopping] stay as before
            data.pop("stopping", None)
        return data

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        return check_device_name(device)

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

    @property
    def baseline(self) -> str:
        """The strategy label the report tests the others against: ``report.baseline`` if
        set, else ``random`` if it is one of the strategies, else the first strategy."""
        labels = [s.display for s in self.strategies]
        if self.report.baseline is not None:
            return self.report.baseline
        return "random" if "random" in labels else labels[0]

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


def check_device_name(device: str) -> str:
    """``device`` if it names a device kind activegen knows, else ``ValueError`` listing them
    (whether this machine has it is checked later, before any work)."""
    if not re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", device):
        raise ValueError(f"{device!r} is not one of: auto, cpu, cuda, cuda:<index>, mps")
    return device


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


def build_probe_learner(name: str, params: dict[str, Any]) -> Any:
    """The configured learner, unfitted, on the CPU: constructors are cheap, and building it
    checks parameter values and tells which capabilities it has."""
    from activegen.models import LEARNERS

    probe = dict(params)
    if "device" in probe:
        probe["device"] = "cpu"
    try:
        return LEARNERS.build(name, probe, n_classes=2, seed=0)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"learner {name!r}: {exc}") from None


def check_components(config: ExperimentConfig) -> None:
    """Check every component name and parameter against the registries, and every strategy
    against the learner's capabilities."""
    from activegen.models import LEARNERS
    from activegen.models.capabilities import check_compatible
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    LEARNERS.check_params(config.learner.name, config.learner.params, LEARNER_CONTEXT)
    ORACLES.check_params(config.oracle.name, config.oracle.params, ORACLE_CONTEXT)
    learner = build_probe_learner(config.learner.name, config.learner.params)
    for i, strategy in enumerate(config.strategies):
        try:
            # Building checks parameter values too (a bad 'measure', say); constructors are
            # cheap by contract: heavy work happens in Strategy.prepare.
            check_compatible(STRATEGIES.build(strategy.name, strategy.params), learner)
        except ConfigError as exc:
            raise ConfigError(f"strategies[{i}]: {exc}") from None
    if config.stopping is not None:
        from activegen.stopping import build_criterion

        for name, params in config.stopping.criteria.items():
            try:
                build_criterion(name, params)
            except ConfigError as exc:
                raise ConfigError(f"stopping.criteria: {exc}") from None
    labels = [s.display for s in config.strategies]
    if config.report.baseline is not None and config.report.baseline not in labels:
        raise ConfigError(
            f"report.baseline: {config.report.baseline!r} is not one of the strategies "
            f"({', '.join(labels)})"
        )


#: Arguments the runner passes to learners itself. The experiment's ``device`` is passed too,
#: as a default: a ``device`` parameter set on the learner (or a strategy) in the config wins.
#: (The round and the per-example extras reach a learner by its ``FitContext``.)
LEARNER_CONTEXT = ("n_classes", "seed")

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


def _apply_shared_table(data: dict[str, Any], source: str, table: str,
                        keys: tuple[str, ...], check_with: str,
                        merge: Callable[[str, dict[str, Any], dict[str, Any]],
                                        dict[str, Any] | None],
                        users: str) -> dict[str, Any]:
    """``data`` with its ``[table]`` written into every strategy that ``merge`` says uses it,
    a strategy's own keys winning; the table itself is removed. Refused, naming the key: a
    table that is not a table, an unknown key, a bad value (checked once, by building the
    strategy ``check_with`` from the table alone), a table that no strategy uses."""
    if table not in data:
        return data
    shared = data[table]
    if not isinstance(shared, dict):
        raise ConfigError(f"{source}: invalid configuration: {table}: a table of {table} "
                          f"settings, not {shared!r}")
    unknown = sorted(set(shared) - set(keys))
    if unknown:
        raise ConfigError(
            f"{source}: invalid configuration: {table}.{unknown[0]}: unknown key; the "
            f"{table} keys are: {', '.join(keys)}"
        )
    from activegen.strategies import STRATEGIES

    try:  # its values, checked once here rather than once per strategy
        STRATEGIES.build(check_with, dict(shared))
    except ConfigError as exc:
        message = str(exc).removeprefix(f"strategy {check_with!r}: ")
        raise ConfigError(f"{source}: invalid configuration: {table}: {message}") from None
    strategies = data.get("strategies")
    merged, used = [], False
    for entry in strategies if isinstance(strategies, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            merged.append(entry)  # malformed: the model's validation names it
            continue
        own = {k: v for k, v in entry.items() if k not in ("name", "label")}
        params = merge(name, own, shared)
        if params is None:
            merged.append(entry)
            continue
        used = True
        head = {k: entry[k] for k in ("name", "label") if k in entry}
        merged.append({**head, **params})
    if not used:
        raise ConfigError(f"{source}: invalid configuration: {table}: set, but no strategy "
                          f"{users}")
    rest = {k: v for k, v in data.items() if k != table}
    return {**rest, "strategies": merged}


def apply_generator_table(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``data`` with its ``[generator]`` table written into every strategy that trains a
    generator (``gaal``, ``simple-gan``, ``gaal-retrieve``, a ``mixed`` schedule's GAAL), a
    strategy's own keys winning; the table itself is removed.

    The generator's settings are written once instead of once per strategy, and the result is
    the config as if they had been written per strategy: the same fingerprint, the same
    generator cache keys, so converting a config neither restarts its runs nor retrains its
    generators. A table with an unknown key or a bad value, or one that no strategy uses, is
    refused here, naming the key.
    """
    from activegen.strategies.gaal import GENERATOR_SETTINGS, with_generator_settings

    return _apply_shared_table(
        data, source, "generator", GENERATOR_SETTINGS, "simple-gan", with_generator_settings,
        "trains a generator (gaal, simple-gan, gaal-retrieve, or a mixed schedule with one)")


def apply_synthesis_table(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``data`` with its ``[synthesis]`` table (GAAL's latent-search settings: ``optimizer``,
    ``band``, ``diversity``, ``realism``, …) written into every strategy that synthesizes
    (``gaal``, ``gaal-retrieve``, a ``mixed`` schedule's GAAL), a strategy's own keys winning;
    as :func:`apply_generator_table`: same fingerprint as written per strategy, refused
    naming the key when unknown, bad or unused."""
    from activegen.strategies.gaal import SYNTHESIS_SETTINGS, with_synthesis_settings

    return _apply_shared_table(
        data, source, "synthesis", SYNTHESIS_SETTINGS, "gaal", with_synthesis_settings,
        "synthesizes queries (gaal, gaal-retrieve, or a mixed schedule with one)")


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dictionary; raise :class:`ConfigError` naming each bad key."""
    data = apply_synthesis_table(apply_generator_table(data, source), source)
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
