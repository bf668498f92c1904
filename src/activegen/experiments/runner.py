"""Run an experiment: every strategy at every seed, plus the fully supervised reference.

The runner composes data, learner, strategy, oracle and loop; it owns files. Each run is the
pure function :func:`run_one` of its :class:`RunSpec`, so executors (in-process now, worker
processes or Ray elsewhere) can schedule runs in any order and get the same rows.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activegen._atomic import atomic_write_bytes, atomic_write_text, sync_directory
from activegen._device import resolve_device
from activegen.data.combine import check_disjoint, concatenate
from activegen.data.dataset import Dataset, float_to_images
from activegen.data.registry import load_dataset
from activegen.engine import fit_learner
from activegen.errors import ConfigError, DataError
from activegen.experiments.config import DataConfig, ExperimentConfig, TestSetConfig
from activegen.experiments.executors import Executor, FinishedRun, make_executor
from activegen.experiments.progress import phase, plain_progress, say
from activegen.experiments.results import (
    SUPERVISED,
    discard_damaged_run,
    frame_from_rows,
    is_finished_run,
    write_results,
    write_run_csv,
    write_run_frame,
)
from activegen.loop import (
    ActiveLearningLoop,
    LoopSettings,
    RoundRecord,
    records_to_rows,
)
from activegen.models import LEARNERS, Learner
from activegen.models.capabilities import FitContext
from activegen.oracles import ORACLES, Oracle
from activegen.strategies import STRATEGIES, PrepareContext, Query, Strategy

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"

__all__ = ["RunSpec", "load_experiment_data", "resolve_device", "run_experiment", "run_one"]


# -- data ---------------------------------------------------------------------------------
def prepare_dataset(spec: Any, name: str | None = None) -> Dataset:
    """Load and transform one dataset as a :class:`DataConfig` describes it (a list of
    splits is concatenated in order)."""
    splits = [spec.split] if isinstance(spec.split, str) else list(spec.split)
    parts = [load_dataset(spec.dataset, split=s, root=spec.root, task=spec.task) for s in splits]
    ds = parts[0] if len(parts) == 1 else concatenate(parts, spec.dataset)
    if spec.classes is not None:
        ds = ds.select_classes(spec.classes)
    if spec.subset is not None:
        ds = ds.subset(spec.subset, seed=spec.split_seed)
    if spec.pad_to is not None:
        ds = ds.pad_to(spec.pad_to)
    if spec.size is not None:
        ds = ds.resize(spec.size)
    if spec.channels is not None:
        ds = ds.to_channels(spec.channels)
    return ds.renamed(name or spec.dataset)


def load_pool_and_tests(data: DataConfig, test_sets: Sequence[TestSetConfig]
                        ) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool (less any held-out split) and the named test sets, checked to match it.

    Shared by experiments and labeling sessions, so both refuse the same bad data alike.
    """
    pool = prepare_dataset(data)
    if pool.n_classes < 2:
        raise ConfigError(
            f"data: the pool has {pool.n_classes} class ({list(pool.classes)}); active learning "
            "needs at least 2 (check 'classes')"
        )
    tests: dict[str, Dataset] = {}
    if data.test_fraction is not None:
        pool, held_out = pool.split(data.test_fraction, data.split_seed)
        tests[held_out.name] = held_out
    for spec in test_sets:
        tests[spec.name] = prepare_dataset(spec, spec.name)
    for name, test in tests.items():
        if test.image_shape != pool.image_shape:
            raise ConfigError(
                f"test set {name!r} has images of {test.image_shape} (H, W, C) but the pool has "
                f"{pool.image_shape}; set its 'size' (and 'channels') to match"
            )
        if test.classes != pool.classes:
            raise ConfigError(
                f"test set {name!r} has classes {list(test.classes)} but the pool has "
                f"{list(pool.classes)}; select the same 'classes' in both"
            )
        check_test_set_size(name, test, data.test_fraction if name not in
                            {t.name for t in test_sets} else None)
        check_disjoint(pool, test, name)
    return pool, tests


#: Below this many images a test set's accuracy moves in steps of 2 % or more: warned.
SMALL_TEST_SET = 50


def check_test_set_size(name: str, test: Dataset, fraction: float | None = None) -> None:
    """Refuse a test set that lacks a class of the pool (its accuracy cannot speak for that
    class; a 1-image set scores only 0 or 1) and warn about one under
    :data:`SMALL_TEST_SET` images."""
    where = f"data.test_fraction = {fraction} gives the test set {name!r}" if fraction \
        else f"test set {name!r} has"
    present = np.unique(test.y)
    if len(present) < test.n_classes:
        raise ConfigError(
            f"{where} {len(test)} image(s), covering {len(present)} of the {test.n_classes} "
            "classes; every class needs at least one test image (raise the fraction, or "
            "give a larger test set)"
        )
    if len(test) < SMALL_TEST_SET:
        log.warning("%s only %d images: each accuracy moves in steps of %.1f %%; %d or more "
                    "are advised", where, len(test), 100 / len(test), SMALL_TEST_SET)


def load_experiment_data(config: ExperimentConfig) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool and the named test sets, checked against each other and the loop's sizes."""
    pool, tests = load_pool_and_tests(config.data, config.test_sets)
    if config.loop.initial > len(pool):
        raise ConfigError(
            f"loop.initial ({config.loop.initial}) exceeds the pool ({len(pool)} images)"
        )
    if config.loop.budget > len(pool) and not any(
        STRATEGIES.get(s.name).synthesizes for s in config.strategies
    ):
        raise ConfigError(
            f"loop.budget ({config.loop.budget}) exceeds the pool ({len(pool)} images)"
        )
    return pool, tests


# -- runs ---------------------------------------------------------------------------------
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


def cache_dir(config: ExperimentConfig, out_dir: Path) -> Path:
    return Path(config.cache_dir) if config.cache_dir else out_dir / "cache"


def device_default(config: ExperimentConfig, cls: type, params: dict[str, Any]
                   ) -> dict[str, Any]:
    """The experiment's device as a constructor argument for a component class that takes
    ``device`` (torch learners, GPU strategies) and whose config does not set its own, so
    one ``device`` / ``--device`` moves every torch path."""
    if "device" in params or "device" not in inspect.signature(cls).parameters:
        return {}
    return {"device": resolve_device(config.device)}


def make_learner_factory(config: ExperimentConfig, n_classes: int) -> Callable[[int], Learner]:
    """Builds fresh learners of the config (the engine prepares pool-prepared ones)."""
    params = config.learner.params
    context = device_default(config, LEARNERS.get(config.learner.name), params)

    def make(seed: int) -> Learner:
        return LEARNERS.build(config.learner.name, params, n_classes=n_classes, seed=seed,
                              **context)

    return make


def build_strategy(config: ExperimentConfig, label: str) -> Strategy:
    component = next(s for s in config.strategies if s.display == label)
    cls = STRATEGIES.get(component.name)
    return STRATEGIES.build(component.name, component.params,
                            **device_default(config, cls, component.params))


def prepare_context(config: ExperimentConfig, pool: Dataset, out_dir: Path,
                    show_progress: bool = False) -> PrepareContext:
    """What :meth:`Strategy.prepare` gets: one ``artifact_seed`` for the whole experiment, so
    one generator or VAE (cached under ``cache_dir``) serves every strategy and seed."""
    return PrepareContext(
        pool=pool,
        cache_dir=cache_dir(config, out_dir),
        device=resolve_device(config.device),
        artifact_seed=0,
        show_progress=show_progress,
    )


def warm_up_artifacts(config: ExperimentConfig, pool: Dataset, out_dir: Path,
                      specs: Iterable[RunSpec], show_progress: bool = False) -> int:
    """Call ``prepare`` once in the driver for each distinct (strategy, parameters) among
    ``specs`` whose class overrides it, so that its cached artifact (a generator, a VAE) is
    trained once before parallel runs start, instead of once per worker racing each other.

    Returns how many strategies were prepared.
    """
    seen: set[str] = set()
    prepared = 0
    labels = {spec.strategy for spec in specs if spec.strategy != SUPERVISED}
    for component in config.strategies:
        if component.display not in labels:
            continue
        key = json.dumps([component.name, component.params], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        strategy = build_strategy(config, component.display)
        if type(strategy).prepare is Strategy.prepare:
            continue
        log.info("preparing %s once before the parallel runs", component.display)
        strategy.prepare(prepare_context(config, pool, out_dir, show_progress))
        prepared += 1
    return prepared


def build_oracle(config: ExperimentConfig, pool: Dataset, seed: int, out_dir: Path) -> Oracle:
    return ORACLES.build(
        config.oracle.name,
        config.oracle.params,
        pool=pool,
        seed=seed,
        cache_dir=cache_dir(config, out_dir),
        device=resolve_device(config.device),
        n_classes=pool.n_classes,
    )


def save_query(path: Path, round_: int, query: Query, labels: np.ndarray,
               fsync: bool = True) -> None:
    """Persist one labeled query (atomically); synthesized images keep their latents."""
    arrays: dict[str, np.ndarray] = {
        "round": np.array(round_),
        "indices": query.indices,
        "labels": labels,
    }
    if query.samples is not None:
        arrays["images"] = float_to_images(query.samples)
        arrays["samples"] = query.samples
    if query.latents is not None:
        arrays["latents"] = np.asarray(query.latents)
    if query.scores is not None:
        arrays["scores"] = np.asarray(query.scores)
    # Query.meta: arrays (e.g. the synthesized images behind retrieved pool images) as
    # ``meta_<key>``, everything else (e.g. the generator's cache key) as one JSON string.
    plain = {}
    for key, value in query.meta.items():
        if isinstance(value, np.ndarray):
            arrays[f"meta_{key}"] = value
        else:
            plain[key] = value
    if plain:
        arrays["meta"] = np.array(json.dumps(plain, default=str))
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # a few KB a round: zip compression costs more than it saves
    # Written before the round's checkpoint; its rename is made durable with the run's
    # final results (see ActiveLearningLoop._save), the data itself is fsynced now.
    atomic_write_bytes(path / f"round_{round_:04d}.npz", buffer.getvalue(), durable_rename=False,
                       sync=fsync)


def run_supervised(config: ExperimentConfig, pool: Dataset, tests: dict[str, Dataset],
                   seed: int, cache: Path | None = None) -> list[dict[str, Any]]:
    """The learner trained on the whole pool with its true labels: the reference line.

    It takes the engine's fit path; its fit context is the round at which a run would have
    labeled the whole pool (the ``grow`` schedule trains as long as it would then).
    """
    X = pool.to_float()
    rounds = max(0, round((len(pool) - config.loop.initial) / config.loop.batch))
    context = FitContext(round=rounds, labels_initial=config.loop.initial,
                         labels_per_round=config.loop.batch)
    learner, fit_seconds = fit_learner(make_learner_factory(config, pool.n_classes), X, pool.y,
                                       seed=seed, round_=0, context=context, X_pool=X,
                                       cache_dir=cache)
    record = RoundRecord(
        round=0,
        n_labels=len(pool),
        n_train=len(pool),
        n_abstained=0,
        accuracy={name: learner.score(t.to_float(), t.y) for name, t in tests.items()},
        fit_seconds=fit_seconds,
        eval_seconds=0.0,
    )
    return records_to_rows([record], dataset=pool.name, strategy=SUPERVISED, seed=seed,
                           n_classes=pool.n_classes)


def _cold_start_and_stopping(config: ExperimentConfig, spec: RunSpec, pool: Dataset,
                             out_dir: Path) -> tuple[Callable[[], np.ndarray] | None, Any]:
    """The run's initial-set selector (``[loop] initial_strategy``; None: random) and its
    stopping recorder (``[stopping]``; None without)."""
    selector = None
    if config.loop.initial_strategy != "random":
        from activegen.strategies.cold_start import (
            backbone_features,
            initial_selection,
            vae_pool_features,
        )

        def selector() -> np.ndarray:
            kind = config.loop.initial_features
            features = (vae_pool_features(prepare_context(config, pool, out_dir))
                        if kind == "vae" else backbone_features(pool.to_float(), kind)
                        if kind.startswith("backbone:") else None)
            return initial_selection(config.loop.initial_strategy, pool.to_float(),
                                     config.loop.initial, spec.seed, pool.n_classes, features)
    recorder = None
    if config.stopping is not None:
        from activegen.experiments.stopping_record import StoppingRecorder

        recorder = StoppingRecorder(config.stopping, pool.to_float(), spec.seed, out_dir,
                                    spec.run_id)
    return selector, recorder


def run_one(
    config: ExperimentConfig,
    spec: RunSpec,
    out_dir: Path,
    data: tuple[Dataset, dict[str, Dataset]] | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
) -> Path:
    """Run (or resume) one run and write its rows to ``runs/<run_id>.csv``; returns the path.

    A run whose CSV exists is finished and is not run again.
    """
    out_dir = Path(out_dir)
    result_path = out_dir / "runs" / f"{spec.run_id}.csv"
    if is_finished_run(result_path):
        return result_path
    pool, tests = data if data is not None else load_experiment_data(config)
    if spec.strategy == SUPERVISED:
        rows = run_supervised(config, pool, tests, spec.seed, cache_dir(config, out_dir))
        write_run_frame(frame_from_rows(rows), result_path)
        return result_path
    resolve_device(config.device)
    strategy = build_strategy(config, spec.strategy)
    if type(strategy).prepare is not Strategy.prepare:  # only strategies with artefacts
        phase(f"{spec.run_id}: preparing the strategy (a generator or VAE is trained or "
              "loaded here)")
    strategy.prepare(prepare_context(config, pool, out_dir))
    query_dir = out_dir / "queries" / spec.run_id
    initial_selector, recorder = _cold_start_and_stopping(config, spec, pool, out_dir)
    loop = ActiveLearningLoop(
        pool=pool,
        make_learner=make_learner_factory(config, pool.n_classes),
        strategy=strategy,
        oracle=build_oracle(config, pool, spec.seed, out_dir),
        settings=LoopSettings(config.loop.initial, config.loop.batch, config.loop.budget,
                              config.loop.abstain_costs_budget),
        seed=spec.seed,
        test_sets=tests,
        checkpoint=out_dir / "checkpoints" / f"{spec.run_id}.npz",
        on_round=on_round,
        query_sink=lambda r, q, y: save_query(query_dir, r, q, y, config.execution.fsync),
        fsync=config.execution.fsync,
        cache_dir=cache_dir(config, out_dir),
        initial_selector=initial_selector,
        on_fitted=None if recorder is None else recorder.on_fitted,
        stop_when=None if recorder is None else recorder.should_stop,
    )
    records = loop.run()
    if recorder is not None:
        recorder.finish(config.loop.budget, spec.strategy, spec.seed)
    for folder in (query_dir, out_dir / "checkpoints"):  # the per-round renames, made durable
        if folder.is_dir():
            sync_directory(folder)
    rows = records_to_rows(records, dataset=pool.name, strategy=spec.strategy, seed=spec.seed,
                          n_classes=pool.n_classes)
    write_run_frame(frame_from_rows(rows), result_path)
    return result_path


# -- the experiment -----------------------------------------------------------------------
def prepare_output(config: ExperimentConfig, out_dir: Path, fresh: bool = False) -> None:
    """Claim ``out_dir`` for ``config``; refuse a folder that holds another experiment.

    ``fresh`` deletes earlier results first.
    """
    out_dir = Path(out_dir)
    stamp = out_dir / CONFIG_FILE
    if fresh and out_dir.exists():
        for sub in ("runs", "checkpoints", "queries"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        for name in (CONFIG_FILE, "results.csv"):
            (out_dir / name).unlink(missing_ok=True)
    if stamp.exists():
        try:
            previous = json.loads(stamp.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
        if not isinstance(previous, dict):
            raise DataError(f"{stamp}: unreadable; delete the folder or use --fresh")
        if previous.get("fingerprint") not in (config.fingerprint(), config.legacy_fingerprint()):
            raise ConfigError(
                f"{out_dir} holds results of a different configuration; use another --out "
                "folder, or --fresh to delete them"
            )
        if previous.get("config") == config.model_dump(mode="json"):
            return
        # Same results, new [report] settings: keep them for 'activegen report DIR'.
    else:
        if any((out_dir / "runs").glob("*.csv")):  # results of unknown origin: never mix
            raise ConfigError(
                f"{out_dir} holds runs but no {CONFIG_FILE} saying which configuration made "
                "them; use another --out folder, or --fresh to delete them"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": config.fingerprint(), "config": config.model_dump(mode="json")}
    atomic_write_text(stamp, json.dumps(payload, indent=2))


def saved_config(out_dir: Path) -> ExperimentConfig | None:
    """The configuration an output folder was made with, if any."""
    from activegen.experiments.config import parse_config

    stamp = Path(out_dir) / CONFIG_FILE
    if not stamp.exists():
        return None
    try:
        payload = json.loads(stamp.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{stamp}: not a configuration written by 'activegen run'") from None
    return parse_config(payload, str(stamp))


def pending(config: ExperimentConfig, out_dir: Path) -> list[RunSpec]:
    """The runs without a finished CSV that matches its manifest."""
    return [s for s in run_specs(config)
            if not is_finished_run(out_dir / "runs" / f"{s.run_id}.csv")]


def run_experiment(
    config: ExperimentConfig,
    out_dir: Path,
    fresh: bool = False,
    progress: bool = True,
    specs: Iterable[RunSpec] | None = None,
    executor: Executor | None = None,
) -> Path:
    """Run every pending run with the executor ``config.execution`` names (or ``executor``),
    then rebuild ``results.csv``; returns its path.

    Finished runs are skipped and unfinished ones resume from their last round. On Ctrl-C
    (``KeyboardInterrupt``) the runs still going are stopped, ``results.csv`` is rebuilt from
    the finished runs, and the interrupt is re-raised.
    """
    out_dir = Path(out_dir)
    resolve_device(config.device)  # a GPU this machine lacks is refused before any work
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: the output folder is a file; choose another --out")
    data = load_experiment_data(config)  # every data error surfaces before any work
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot create the output folder "
                          f"({exc.strerror or exc})") from None
    with output_lock(out_dir):
        remove_stale_temporaries(out_dir)
        prepare_output(config, out_dir, fresh=fresh)
        for spec in run_specs(config):  # a damaged finished run is recomputed, with a warning
            discard_damaged_run(out_dir / "runs" / f"{spec.run_id}.csv")
        todo = list(specs) if specs is not None else pending(config, out_dir)
        executor = executor if executor is not None else make_executor(config, data)
        if executor.parallel and todo:
            if progress and plain_progress():
                say("preparing what the runs share (generators, VAEs, experts)")
            warm_up_artifacts(config, data[0], out_dir, todo, show_progress=progress)
        try:
            _drive(config, out_dir, todo, executor, progress)
        finally:
            # Workers ended mid-write (Ctrl-C, an error elsewhere) leave temporary files.
            remove_stale_temporaries(out_dir)
            write_results(out_dir)  # atomic; holds every finished run, even after Ctrl-C
    return out_dir / "results.csv"


def _drive(config: ExperimentConfig, out_dir: Path, todo: list[RunSpec], executor: Executor,
           progress: bool) -> None:
    """Dispatch ``todo`` and show one progress display for all the runs, wherever they run."""
    rounds_per_run = len(LoopSettings(config.loop.initial, config.loop.batch,
                                      config.loop.budget).label_counts)
    totals = {s.run_id: 1 if s.strategy == SUPERVISED else rounds_per_run for s in todo}
    # Not a terminal (nohup, a pipe, a batch job): no bars, but a timestamped line per phase.
    plain = progress and plain_progress()
    started = time.monotonic()
    if plain:
        say(f"{config.name}: {len(todo)} run(s) to do")
    done = 0
    with _progress(progress and not plain) as bar:
        overall = bar.add_task(config.name, total=len(todo))
        bars: dict[str, Any] = {}

        def on_round(run_id: str, round_: int) -> None:
            if run_id not in bars:
                bars[run_id] = bar.add_task(f"  {run_id}", total=totals.get(run_id, 1))
            bar.update(bars[run_id], completed=min(round_ + 1, totals.get(run_id, 1)))

        events = executor.run(config, todo, out_dir, on_round)
        with contextlib.closing(events):
            for finished in events:
                store_finished(out_dir, finished)
                done += 1
                if plain:
                    say(f"run {done} of {len(todo)} finished: {finished.run_id} "
                         f"({time.monotonic() - started:.0f} s so far)")
                if finished.run_id in bars:
                    bar.update(bars[finished.run_id], visible=False)
                bar.advance(overall)
                write_results(out_dir)


def store_finished(out_dir: Path, finished: FinishedRun) -> None:
    """Write what a worker returned but could not write itself (no shared file system)."""
    for relative, payload in finished.files.items():
        target = out_dir / relative
        if not target.exists():
            atomic_write_bytes(target, payload)
    result_path = out_dir / "runs" / f"{finished.run_id}.csv"
    if not is_finished_run(result_path):
        write_run_csv(result_path, finished.csv_text)


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete the temporary files a killed writer left (``.<name>.<random>.tmp``, never
    renamed over anything); call it only while holding :func:`output_lock`."""
    stale = list(out_dir.glob(".*.tmp"))
    for sub in ("runs", "checkpoints", "queries"):
        if (out_dir / sub).is_dir():
            stale += (out_dir / sub).rglob(".*.tmp")
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    return stale


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` so that two ``activegen run`` never write one
    folder at once. The OS releases it when the process ends, however it ends."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; run one experiment per folder
        yield
        return
    with open(out_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{out_dir} is in use by another 'activegen run'; wait for it to finish or "
                "choose another --out folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
