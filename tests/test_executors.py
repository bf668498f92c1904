"""Executors give the rows of the in-process run; shared artifacts are trained once; devices."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from _experiments import results_without_timings, small_config
from activegen._atomic import atomic_write_text
from activegen._device import resolve_device
from activegen._settings import BuildContext, Settings
from activegen.errors import ConfigError
from activegen.experiments.config import with_overrides
from activegen.experiments.executors import (
    ProcessExecutor,
    SerialExecutor,
    make_executor,
    worker_threads,
)
from activegen.experiments.runner import run_experiment
from activegen.strategies import STRATEGIES, PrepareContext, Query, QueryState, Strategy


def test_process_executor_gives_the_serial_rows(tmp_path: Path) -> None:
    config = small_config()
    run_experiment(config, tmp_path / "serial", progress=False, executor=SerialExecutor())
    run_experiment(config, tmp_path / "procs", progress=False, executor=ProcessExecutor(2))
    serial = results_without_timings(tmp_path / "serial")
    assert len(serial) == 4 * 26  # 2 strategies × 2 seeds × 26 rounds
    pd.testing.assert_frame_equal(results_without_timings(tmp_path / "procs"), serial)
    for run in (tmp_path / "serial" / "runs").glob("*.csv"):
        mine = pd.read_csv(run).drop(columns=["fit_seconds", "query_seconds", "label_seconds"])
        theirs = pd.read_csv(tmp_path / "procs" / "runs" / run.name).drop(
            columns=["fit_seconds", "query_seconds", "label_seconds"])
        pd.testing.assert_frame_equal(mine, theirs)


def test_make_executor_follows_the_execution_table() -> None:
    assert isinstance(make_executor(small_config()), SerialExecutor)
    procs = make_executor(small_config(execution={"jobs": 3}))
    assert isinstance(procs, ProcessExecutor) and procs.jobs == 3
    ray = make_executor(small_config(execution={"executor": "ray", "jobs": 2}))
    assert type(ray).__name__ == "RayExecutor" and ray.num_cpus == 2 and ray.address is None


def test_worker_threads_share_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert worker_threads(1) == cores
    assert worker_threads(cores * 4) == 1
    assert worker_threads(2) * 2 <= max(cores, 2)


def test_overrides_change_where_not_what() -> None:
    config = small_config()
    other = with_overrides(config, jobs=4, device="cpu", ray_address="ray://head:10001")
    assert other.execution.jobs == 4 and other.execution.executor == "ray"
    assert other.device == "cpu"
    assert other.fingerprint() == config.fingerprint()
    assert small_config(seeds=[0, 2]).fingerprint() != config.fingerprint()
    with pytest.raises(ConfigError, match=r"execution\.jobs"):
        with_overrides(config, jobs=0)
    with pytest.raises(ConfigError, match="device"):
        with_overrides(config, device="gpu")


# -- shared artifacts ---------------------------------------------------------------------
class _SizeSettings(Settings):
    size: int = 1


class CachedArtifactStrategy(Strategy):
    """Random picks after a 'training' that is cached under cache_dir, keyed by its setting;
    each real training appends a line to ``trainings.log`` (appends are atomic)."""

    name: ClassVar[str] = "test-cached-artifact"

    Settings = _SizeSettings

    def __init__(self, settings: Any = None, **values: Any) -> None:
        super().__init__(settings, **values)
        self.size = self.settings.size
        self.artifact: np.ndarray | None = None

    def prepare(self, context: PrepareContext) -> None:
        cache = Path(context.cache_dir) / f"artifact-size{self.size}.npy"
        if cache.exists():
            self.artifact = np.load(cache)
            return
        time.sleep(0.3)  # "training": long enough for racing workers to overlap
        self.artifact = np.arange(self.size, dtype=np.float32)
        with open(Path(context.cache_dir) / "trainings.log", "a") as log:
            log.write(f"{self.size} {os.getpid()}\n")
        buffer = Path(context.cache_dir) / f".artifact-size{self.size}.npy"
        np.save(buffer, self.artifact)
        os.replace(buffer, cache)

    def query(self, state: QueryState, k: int) -> Query:
        available = np.flatnonzero(~state.queried)
        return Query.from_pool(state.rng.choice(available, size=k, replace=False))


if CachedArtifactStrategy.name not in STRATEGIES.names():
    STRATEGIES.register(CachedArtifactStrategy.name)(CachedArtifactStrategy)


def _artifact_config(cache: Path) -> Any:
    return small_config(
        seeds=[0, 1],
        cache_dir=str(cache),
        loop={"initial": 20, "batch": 10, "budget": 50},
        strategies=[
            {"name": "test-cached-artifact", "label": "a", "size": 1},
            {"name": "test-cached-artifact", "label": "b", "size": 1},
            {"name": "test-cached-artifact", "label": "c", "size": 2},
            {"name": "random"},
        ],
    )


def test_parallel_runs_share_one_trained_artifact_per_setting(tmp_path: Path) -> None:
    """6 runs of a strategy with two distinct settings in 2 worker processes: the driver
    trains each setting once before dispatch; the workers only load."""
    cache = tmp_path / "cache"
    cache.mkdir()
    config = _artifact_config(cache)
    run_experiment(config, tmp_path / "out", progress=False, executor=ProcessExecutor(2))
    trainings = (cache / "trainings.log").read_text().split()
    sizes, pids = trainings[0::2], {int(p) for p in trainings[1::2]}
    assert sorted(sizes) == ["1", "2"]
    assert pids == {os.getpid()}, "trained in the driver, not in the workers"
    assert len(pd.read_csv(tmp_path / "out" / "results.csv").groupby(["strategy", "seed"])) == 8


def test_serial_runs_train_once_per_setting_too(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    run_experiment(_artifact_config(cache), tmp_path / "out", progress=False)
    assert sorted((cache / "trainings.log").read_text().split()[0::2]) == ["1", "2"]


def test_a_failing_run_stops_the_experiment_and_keeps_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = small_config(seeds=[0], strategies=[{"name": "random"}])
    run_experiment(config, out, progress=False)
    atomic_write_text(out / "checkpoints" / "x.npz", "")  # unrelated file: ignored
    (out / "runs" / "random__seed0.csv").unlink()
    (out / "checkpoints" / "random__seed0.npz").write_bytes(b"damaged")
    with pytest.raises(Exception, match="damaged checkpoint"):
        run_experiment(config, out, progress=False, executor=ProcessExecutor(2))


# -- devices ------------------------------------------------------------------------------
def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("CPU") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "tpu"):
        with pytest.raises(ConfigError, match="not one of"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_requested_without_cuda_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        run_experiment(small_config(device="cuda:1"), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_beyond_the_visible_gpus_is_refused() -> None:
    assert resolve_device("cuda") == "cuda"
    with pytest.raises(ConfigError, match="visible"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


class DeviceProbe(CachedArtifactStrategy):
    """Records the device it was built with."""

    name: ClassVar[str] = "test-device-probe"

    def __init__(self, settings: Any = None, *, device: str = "auto", **values: Any) -> None:
        super().__init__(settings, **values)
        self.device = device

    @classmethod
    def from_settings(cls, settings: Any, context: BuildContext) -> DeviceProbe:
        return cls(settings, device=context.device)


if DeviceProbe.name not in STRATEGIES.names():
    STRATEGIES.register(DeviceProbe.name)(DeviceProbe)


def test_the_experiment_device_reaches_components_through_the_build_context() -> None:
    from activegen.experiments.runner import build_strategy

    config = small_config(device="cpu", strategies=[
        {"name": "test-device-probe", "label": "follows"}, {"name": "random"}])
    assert build_strategy(config, "follows").device == "cpu"
    assert build_strategy(config, "random").name == "random"
    with pytest.raises(ConfigError, match="device: unknown setting"):  # where, not what
        small_config(strategies=[{"name": "test-device-probe", "device": "cuda:3"}])
