"""Run an experiment: every strategy at every seed, plus the fully supervised reference.

The runner drives an experiment; its parts live by concern, and their public names are
re-exported here so that ``activegen.experiments.runner`` stays the one entry point:

- :mod:`~activegen.experiments.data_setup`: the pool and test sets, checked;
- :mod:`~activegen.experiments.plan`: :class:`RunSpec`, the runs to do;
- :mod:`~activegen.experiments.components`: learner, strategy and oracle from the config;
- :mod:`~activegen.experiments.one_run`: one run (:func:`run_one`, a pure function of its
  spec, so executors can schedule runs in any order and get the same rows);
- :mod:`~activegen.experiments.supervised`: the fully supervised reference;
- :mod:`~activegen.experiments.output`: the output folder's stamp, lock and temporaries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from activegen._device import resolve_device
from activegen.errors import ConfigError
from activegen.experiments.components import (
    build_oracle,
    build_strategy,
    cache_dir,
    make_learner_factory,
    prepare_context,
    warm_up_artifacts,
)
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.data_setup import (
    SMALL_TEST_SET,
    check_test_set_size,
    load_experiment_data,
    load_pool_and_tests,
    prepare_dataset,
)
from activegen.experiments.executors import Executor, make_executor
from activegen.experiments.one_run import run_one, save_query
from activegen.experiments.output import (
    CONFIG_FILE,
    LOCK_FILE,
    output_lock,
    prepare_output,
    remove_stale_temporaries,
    saved_config,
    store_finished,
)
from activegen.experiments.plan import RunSpec, pending, run_specs, select_runs
from activegen.experiments.progress import plain_progress, say
from activegen.experiments.results import SUPERVISED, discard_damaged_run, write_results
from activegen.experiments.supervised import run_supervised

__all__ = [
    "CONFIG_FILE", "LOCK_FILE", "SMALL_TEST_SET", "RunSpec", "build_oracle", "build_strategy",
    "cache_dir", "check_test_set_size", "load_experiment_data",
    "load_pool_and_tests", "make_learner_factory", "output_lock", "pending", "prepare_context",
    "prepare_dataset", "prepare_output", "remove_stale_temporaries", "resolve_device",
    "run_experiment", "run_one", "run_specs", "run_supervised", "save_query", "saved_config",
    "select_runs",
    "store_finished", "warm_up_artifacts",
]


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

    Finished runs are skipped and unfinished ones resume from their last round. ``specs``
    (e.g. from :func:`~activegen.experiments.plan.select_runs`) limits the runs to those, in
    that order; the others stay pending. On Ctrl-C
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
        todo = pending(config, out_dir)
        if specs is not None:  # a chosen part of the experiment, in its own order
            waiting = set(todo)
            todo = [s for s in specs if s in waiting]
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
    rounds_per_run = len(config.loop.settings().label_counts)
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
