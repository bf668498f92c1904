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
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from activegen._settings import describe_errors
from activegen.errors import ConfigError
from activegen.features.settings import FeaturesSettings

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

    @field_validator("split")
    @classmethod
    def _splits_once(cls, split: str | list[str]) -> str | list[str]:
        if isinstance(split, list):
            if not split:
                raise ValueError("names no split")
            repeated = sorted({s for s in split if split.count(s) > 1})
            if repeated:
                raise ValueError(f"names {repeated} more than once (the pool would hold each "
                                 "of its images twice)")
        return split


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
    and its settings as further keys. Once a config is parsed, the settings are the
    component's validated settings in full (its model's defaults and presets filled in), so
    the fingerprint and ``config.json`` say everything that was run."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    label: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def display(self) -> str:
        return self.label or self.name


class StrategyConfig(ComponentConfig):
    """A ``[[strategies]]`` entry: a strategy component, and who chooses its first batch.

    ``cold_start`` overrides ``loop.cold_start`` for this strategy alone: ``true`` (the
    strategy itself, e.g. TypiClust from its first label), ``false`` (the seeded uniform
    initial set), or a strategy table. Unset: ``loop.cold_start``.
    """

    cold_start: bool | ComponentConfig | None = None

    def first_batch(self, default: ComponentConfig | None) -> ComponentConfig | None:
        """The strategy that chooses this strategy's first batch, ``default`` being the
        loop's (None: the seeded uniform initial set)."""
        if self.cold_start is None:
            return default
        if self.cold_start is True:
            return ComponentConfig(name=self.name, **self.params)
        if self.cold_start is False:
            return None
        return self.cold_start


class LoopConfig(_Strict):
    """How many labels, in which steps: ``initial`` labels first (an experiment's seeded
    initial set, or a labeling session's first batch), ``batch`` per round after, ``budget`` in
    all (the first ones included)."""

    initial: int = Field(ge=1)
    #: queries per round; in an experiment also a list, the sizes of successive rounds, the
    #: last repeating (``[10, 30, 50, 100]`` after 10 initial labels: 10, 20, 50, 100, 200)
    batch: int | list[int]
    budget: int = Field(ge=1)
    abstain_costs_budget: bool = True
    #: the strategy that chooses the first batch while nothing is labeled (e.g.
    #: ``{ name = "typiclust", features = "pixels" }``); none: the initial labels are a seeded
    #: uniform draw (an experiment's, from the pool's labels) or random (a labeling session)
    cold_start: ComponentConfig | None = None

    def settings(self, budget: int | None = None) -> Any:
        """The engine's :class:`~activegen.engine.LoopSettings` (``budget``: another one)."""
        from activegen.engine import LoopSettings

        batch = self.batch if isinstance(self.batch, int) else tuple(self.batch)
        return LoopSettings(self.initial, batch, self.budget if budget is None else budget,
                            self.abstain_costs_budget)

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_sizes_are_positive(cls, value: Any) -> Any:
        # One message for both forms (pydantic's union error would name each branch)
        sizes = value if isinstance(value, list) else [value]
        if not sizes:
            raise ValueError("a batch schedule needs at least one size")
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int):
                raise ValueError(f"a batch size is a whole number, not {size!r}")
            if size < 1:
                raise ValueError("Input should be greater than or equal to 1")
        return value

    @model_validator(mode="after")
    def _budget_fits(self) -> LoopConfig:
        if self.budget < self.initial:
            raise ValueError(
                f"budget ({self.budget}) is below the initial labeled set ({self.initial})"
            )
        first = self.batch if isinstance(self.batch, int) else self.batch[0]
        if self.budget > self.initial and self.budget - self.initial < first:
            raise ValueError(
                f"budget ({self.budget}) leaves {self.budget - self.initial} labels after the "
                f"initial set, fewer than one batch ({first})"
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
    strategies: list[StrategyConfig] = Field(min_length=1)
    loop: LoopConfig
    supervised: bool = True
    #: what learners and strategies see of each example (the images, or a feature source's
    #: vectors, fitted once on the pool)
    features: FeaturesSettings = FeaturesSettings()
    device: str = "auto"
    cache_dir: Path | None = None
    report: ReportConfig = ReportConfig()
    execution: ExecutionConfig = ExecutionConfig()
    stopping: StoppingConfig | None = None
    #: defaults of every strategy's ``generator`` table (a preset name or settings)
    generator: dict[str, Any] | str | None = None
    #: defaults of every strategy's ``synthesis`` table (a preset name or settings)
    synthesis: dict[str, Any] | str | None = None

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
        """The strategy label the report tests the others against (:func:`default_baseline`)."""
        return default_baseline([s.display for s in self.strategies], self.report.baseline)

    def cold_start_of(self, label: str) -> ComponentConfig | None:
        """The strategy that chooses the first batch of the strategy labelled ``label``
        (None: the seeded uniform initial set)."""
        entry = next(s for s in self.strategies if s.display == label)
        return entry.first_batch(self.loop.cold_start)

    def fingerprint(self) -> str:
        """A hash of everything that decides results: the validated config, every component's
        settings in full, and :data:`FINGERPRINT_VERSION`.

        Left out: ``report`` (presentation), ``execution`` (which executor, how many jobs) and
        ``device`` (where the computation runs), so that an experiment started on a laptop
        resumes on a cluster or a GPU machine. On the CPU the rows are bitwise identical
        whichever executor ran them; a GPU may differ from the CPU in the last bits. The
        shared ``generator`` and ``synthesis`` tables are left out too: they are defaults,
        already in every strategy's settings, so a config that writes them per strategy (or
        a preset's values spelled out) has the same fingerprint.
        """
        payload = self.model_dump(mode="json", exclude={"report", "execution", "device",
                                                        "generator", "synthesis"})
        return _hash({"fingerprint_version": FINGERPRINT_VERSION, **payload})


#: Bumped when what a config's validated dump means changes; folders made with another
#: version are refused (their finished rows stay readable by ``activegen report``).
FINGERPRINT_VERSION = 2


def default_baseline(labels: list[str], chosen: str | None) -> str:
    """``chosen`` (``report.baseline``) if set, else ``random`` if it is one of the strategy
    ``labels``, else the first of them."""
    if chosen is not None:
        return chosen
    return "random" if "random" in labels else labels[0]


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


#: the components a config that names none runs
DEFAULT_LEARNER = "linear-svm"
DEFAULT_ORACLE = "pool"


def build_probe_learner(config: ExperimentConfig | Any, look: bool = False) -> Any:
    """The configured learner, unfitted, on the CPU: constructors are cheap, and building it
    tells which capabilities it has. Built as a ``probe`` (nothing the config names is
    called), unless ``look``: a strategy reads MC-dropout samples, and whether a torch-module
    factory's modules have dropout layers is known only by building one."""
    from activegen._settings import BuildContext
    from activegen.models import LEARNERS

    return LEARNERS.build(config.learner.name, config.learner.params,
                          BuildContext(n_classes=2, seed=0, device="cpu", probe=not look))


def shared_tables(data: Any) -> dict[str, Any]:
    """The config's shared ``[generator]`` / ``[synthesis]`` tables as validated settings
    (the defaults of every strategy's own tables of the same name)."""
    from activegen.generative.training import GeneratorSettings
    from activegen.strategies.synthesis import SynthesisSettings

    shared: dict[str, Any] = {}
    for key, model in (("generator", GeneratorSettings), ("synthesis", SynthesisSettings)):
        value = data.get(key) if isinstance(data, dict) else None
        if value is not None:
            try:
                shared[key] = model.model_validate(value)
            except ValidationError as exc:
                raise ConfigError(f"{key}: {describe_errors(exc, model)}") from None
    return shared


def validate_components(data: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    """``data`` with every component table's settings replaced by its validated settings in
    full (``kinds``: table → ``learner``/``strategy``/``oracle``; a list for ``strategies``);
    shared tables no strategy reads are refused."""
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    registries = {"learner": LEARNERS, "strategy": STRATEGIES, "oracle": ORACLES}
    shared = shared_tables(data)
    defaults = {"learner": {"name": DEFAULT_LEARNER}, "oracle": {"name": DEFAULT_ORACLE}}
    data = {**{k: v for k, v in defaults.items() if k in kinds}, **data}
    used: set[str] = set()

    def one(where: str, kind: str, entry: Any) -> Any:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return entry  # malformed: the model's validation names it
        heads = ("name", "label", "cold_start") if kind == "strategy" else ("name", "label")
        head = {k: entry[k] for k in heads if k in entry}
        params = {k: v for k, v in entry.items() if k not in heads}
        if isinstance(head.get("cold_start"), dict):
            head["cold_start"] = one(f"{where}.cold_start", kind, head["cold_start"])
        try:
            settings = registries[kind].validate(entry["name"], params, shared)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for key in shared:
            if key in type(settings).model_fields or _mixed_reads(settings, key):
                used.add(key)
        return {**head, **settings.model_dump(mode="json")}

    out = dict(data)
    for table, kind in kinds.items():
        value = data.get(table)
        if table == "strategies" and isinstance(value, list):
            out[table] = [one(f"strategies[{i}]", kind, e) for i, e in enumerate(value)]
        elif table == "loop" and isinstance(value, dict) and value.get("cold_start") is not None:
            out[table] = {**value, "cold_start": one("loop.cold_start", kind,
                                                     value["cold_start"])}
        elif table not in ("strategies", "loop") and value is not None:
            out[table] = one(table, kind, value)
    for key in shared:
        if key not in used:
            reads = ("trains a generator (gaal, gaal-retrieve, simple-gan" if key == "generator"
                     else "searches the latent space (gaal, gaal-retrieve")
            raise ConfigError(f"{key}: set, but no strategy {reads}, or a mixed schedule with "
                              "one)")
    return out


def _mixed_reads(settings: Any, key: str) -> bool:
    """Whether a mixed schedule's sub-strategies read the shared table ``key``."""
    dump = settings.model_dump()
    return any(isinstance(dump.get(role), dict) and key in dump[role]
               for role in ("primary", "secondary"))


def check_components(config: Any) -> None:
    """Check every strategy (the cold start's too) against the learner's capabilities, and
    the stopping criteria by name."""
    from activegen.models.capabilities import MCDropout, check_compatible
    from activegen.strategies import STRATEGIES

    def build(where: str, strategy: ComponentConfig) -> Any:
        # constructors are cheap by contract: heavy work happens in Strategy.prepare
        try:
            return STRATEGIES.build(strategy.name, strategy.params)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    strategies = [(f"strategies[{i}]", s) for i, s in enumerate(config.strategies)]
    built = [build(where, s) for where, s in strategies]
    learner = build_probe_learner(config, look=any(MCDropout in b.requires for b in built))
    if not config.features.is_pixels:
        _check_feature_rows(config, learner)
    for where, cold in _cold_starts(config):
        needs = build(where, cold).requires
        if needs:
            raise ConfigError(
                f"{where}: strategy {cold.name!r} reads the learner "
                f"({', '.join(c.__name__ for c in needs)}), but the cold start chooses before "
                "any learner is fitted: use typiclust or probcover (features = \"input\", "
                "\"vae\", \"backbone:<path>\", \"self-supervised\" or a pretrained backbone) "
                "or coreset (features = \"input\", \"self-supervised\" or a pretrained "
                "backbone)")
    for (where, _), strategy in zip(strategies, built, strict=True):
        try:
            check_compatible(strategy, learner)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if config.stopping is not None:
        from activegen.stopping import build_criterion

        for name, params in config.stopping.criteria.items():
            try:
                build_criterion(name, params)
            except ConfigError as exc:
                raise ConfigError(f"stopping.criteria: {exc}") from None


def _cold_starts(config: Any) -> list[tuple[str, ComponentConfig]]:
    """Every strategy that chooses a first batch, with where the config names it."""
    out = [] if config.loop.cold_start is None else [("loop.cold_start",
                                                      config.loop.cold_start)]
    for i, entry in enumerate(config.strategies):
        chooser = entry.first_batch(None)
        if chooser is not None:
            out.append((f"strategies[{i}].cold_start", chooser))
    return out


def _check_feature_rows(config: Any, learner: Any) -> None:
    """With ``[features]`` other than pixels every example is a feature vector: refuse the
    learner and the strategies that need images, naming them."""
    from activegen.strategies import STRATEGIES

    source = config.features.source
    if learner.needs_images:
        raise ConfigError(f"learner {config.learner.name!r} trains on images; with features "
                          f"= {source!r} the examples are feature vectors: use linear-probe, "
                          "label-spreading, logistic-regression, linear-svm or sklearn")
    components = [(f"strategies[{i}]", s) for i, s in enumerate(config.strategies)]
    for where, component in [*components, *_cold_starts(config)]:
        if STRATEGIES.build(component.name, component.params).needs_images:
            raise ConfigError(f"{where}: strategy {component.name!r} works on images (it "
                              f"trains a generator or a VAE on them); with features = "
                              f"{source!r} the examples are feature vectors")


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
    config = _parse(ExperimentConfig, data, source, {"learner": "learner", "oracle": "oracle",
                                                      "strategies": "strategy",
                                                      "loop": "strategy"})
    labels = [s.display for s in config.strategies]
    if config.report.baseline is not None and config.report.baseline not in labels:
        raise ConfigError(f"{source}: report.baseline: {config.report.baseline!r} is not one of "
                          f"the strategies ({', '.join(labels)})")
    return config


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: dict[str, Any], source: str, kinds: dict[str, str]) -> M:
    """``data`` as ``model``: its structure first (every bad key of the file at once), then
    each component's settings in full, then the strategy × learner checks."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    try:
        data = validate_components(data, kinds)
    except ConfigError as exc:
        raise ConfigError(f"{source}: invalid configuration: {exc}") from None
    try:
        config = model.model_validate(data)
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


def load_config(path: str | Path, changes: list[str] | None = None) -> ExperimentConfig:
    """Read and validate a TOML experiment file, with ``changes`` (``KEY=VALUE``: a dotted key
    and a TOML value, applied before validation; see :func:`apply_changes`)."""
    data = read_toml(path)
    if changes:
        data = apply_changes(data, changes)
    return parse_config(data, str(path) + ("" if not changes else f" with {changes}"))


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_:./@+-]*")


def apply_changes(data: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """``data`` with each ``KEY=VALUE`` set: ``KEY`` dotted through tables (``loop.budget``),
    ``VALUE`` a TOML value (``100``, ``"vae"``, ``{ name = "margin" }``, ``[0, 1]``); a
    bare word that is not TOML (``vae``, ``self-supervised``, ``timm:resnet18``) is a string,
    so that shells need no nested quotes for the common case.

    Raises:
        ConfigError: a change without ``=``, a value that is not TOML, or a key that goes
            through something other than a table.
    """
    import copy

    data = copy.deepcopy(data)
    for change in changes:
        key, eq, text = change.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set {change!r}: write KEY=VALUE (e.g. loop.budget=100)")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError as exc:
            if _BARE_WORD.fullmatch(text.strip()):
                value = text.strip()
            else:
                raise ConfigError(f"--set {change!r}: the value is not TOML ({exc}); "
                                  f"quote a string: {key}='\"...\"'") from None
        parts = key.strip().split(".")
        table = data
        for i, part in enumerate(parts[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {change!r}: {'.'.join(parts[:i + 1])} is not a "
                                  "table")
        table[parts[-1]] = value
    return data
