"""One run of an experiment: the pure function :func:`run_one` of its config and
:class:`~activegen.experiments.plan.RunSpec`, which writes the run's checkpoints, queries
and rows (the supervised reference included). Executors call it wherever runs execute."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from activegen._atomic import atomic_write_bytes, sync_directory
from activegen._device import resolve_device
from activegen.data.dataset import Dataset, float_to_images
from activegen.experiments.components import (
    build_cold_start,
    build_oracle,
    build_strategy,
    cache_dir,
    make_learner_factory,
    prepare_context,
)
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.data_setup import load_experiment_data
from activegen.experiments.inputs import RunInputs, run_inputs
from activegen.experiments.machine import log_machine, machine_record, other_kinds
from activegen.experiments.plan import RunSpec
from activegen.experiments.progress import phase
from activegen.experiments.results import (
    SUPERVISED,
    frame_from_rows,
    is_finished_run,
    write_run_frame,
)
from activegen.experiments.supervised import run_supervised
from activegen.loop import ActiveLearningLoop, RoundRecord, records_to_rows
from activegen.strategies import Query, Strategy


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
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # a few KB a round: zip compression costs more than it saves
    # Written before the round's checkpoint; its rename is made durable with the run's
    # final results (see ActiveLearningLoop._save), the data itself is fsynced now.
    atomic_write_bytes(path / f"round_{round_:04d}.npz", buffer.getvalue(), durable_rename=False,
                       sync=fsync)



def _stopping_recorder(config: ExperimentConfig, spec: RunSpec, pool: Dataset,
                       out_dir: Path, inputs: RunInputs | None) -> Any:
    """The run's stopping recorder (``[stopping]``; None without)."""
    if config.stopping is None:
        return None
    from activegen.experiments.stopping_record import StoppingRecorder

    X = pool.to_float() if inputs is None else inputs[0]
    return StoppingRecorder(config.stopping, X, spec.seed, out_dir, spec.run_id)


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
    device = resolve_device(config.device)
    inputs = run_inputs(config.features, pool, tests, cache_dir(config, out_dir))
    if spec.strategy == SUPERVISED:
        rows = run_supervised(config, pool, tests, spec.seed, cache_dir(config, out_dir),
                              inputs)
        write_run_frame(frame_from_rows(rows), result_path, machine_record(device))
        return result_path
    machine = machine_record(device)
    checkpoint = out_dir / "checkpoints" / f"{spec.run_id}.npz"
    # before anything is computed: a resumed run keeps rounds of the machines before it
    machines = log_machine(checkpoint, machine)
    strategy = build_strategy(config, spec.strategy)
    cold_start = build_cold_start(config, spec.strategy)
    for part in (strategy, cold_start):
        if part is None:
            continue
        if type(part).prepare is not Strategy.prepare:  # only strategies with artefacts
            phase(f"{spec.run_id}: preparing {part.name} (what it learns from the pool is "
                  "loaded, or trained once)")
        part.prepare(prepare_context(config, pool, out_dir))
    query_dir = out_dir / "queries" / spec.run_id
    recorder = _stopping_recorder(config, spec, pool, out_dir, inputs)
    loop = ActiveLearningLoop(
        pool=pool,
        make_learner=make_learner_factory(config, pool.n_classes),
        strategy=strategy,
        oracle=build_oracle(config, pool, spec.seed, out_dir),
        settings=config.loop.settings(),
        seed=spec.seed,
        test_sets=tests,
        checkpoint=checkpoint,
        on_round=on_round,
        query_sink=lambda r, q, y: save_query(query_dir, r, q, y, config.execution.fsync),
        fsync=config.execution.fsync,
        cache_dir=cache_dir(config, out_dir),
        cold_start=cold_start,
        inputs=inputs,
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
    write_run_frame(frame_from_rows(rows), result_path, machine, other_kinds(machines, machine),
                    strategy.provenance())
    return result_path

