"""The same small experiment on a local Ray instance gives the local executor's rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _experiments import results_without_timings, small_config
from activegen.experiments.executors import RayExecutor, SerialExecutor
from activegen.experiments.runner import run_experiment

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'activegen[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs, no dashboard) for the module; startup takes seconds."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_local_rows(tmp_path: Path, local_ray: None) -> None:
    config = small_config(execution={"executor": "ray", "ray_num_cpus": 2})
    run_experiment(config, tmp_path / "ray", progress=False)  # joins the running instance
    run_experiment(config, tmp_path / "local", progress=False, executor=SerialExecutor())
    local = results_without_timings(tmp_path / "local")
    assert len(local) == 4 * 26
    pd.testing.assert_frame_equal(results_without_timings(tmp_path / "ray"), local)
    # The workers wrote checkpoints and every query into the shared output folder.
    assert len(list((tmp_path / "ray" / "checkpoints").glob("*.npz"))) == 4
    assert len(list((tmp_path / "ray" / "queries" / "margin__seed1").glob("*.npz"))) == 25


def test_ray_resumes_a_half_finished_folder(tmp_path: Path, local_ray: None) -> None:
    out = tmp_path / "out"
    config = small_config()
    run_experiment(config, out, progress=False)
    (out / "runs" / "random__seed1.csv").unlink()  # as if killed after its last round
    before = (out / "runs" / "margin__seed0.csv").stat().st_mtime_ns
    run_experiment(config, out, progress=False, executor=RayExecutor())
    assert (out / "runs" / "random__seed1.csv").exists()
    assert (out / "runs" / "margin__seed0.csv").stat().st_mtime_ns == before  # not rerun
    assert len(pd.read_csv(out / "results.csv")) == 4 * 26


def test_worker_without_the_output_folder_returns_its_files(tmp_path: Path,
                                                            local_ray: None) -> None:
    """A worker that cannot see the driver's folder (no shared file system) returns its rows,
    queries and checkpoint, and the driver writes them."""
    from activegen.experiments.executors import _run_on_ray, registry_snapshot
    from activegen.experiments.runner import RunSpec, store_finished

    config = small_config(seeds=[0], strategies=[{"name": "random"}])

    class ListQueue:
        def __init__(self) -> None:
            self.items: list = []

        def put(self, item) -> None:  # type: ignore[no-untyped-def]
            self.items.append(item)

    events = ListQueue()
    unseen = tmp_path / "not-on-this-node"
    finished = _run_on_ray(config, RunSpec("random", 0), str(unseen), events,
                           registry_snapshot(config))
    assert not unseen.exists()
    assert [r for _, r in events.items] == list(range(26))
    assert len([f for f in finished.files if f.startswith("queries/")]) == 25
    out = tmp_path / "driver"
    store_finished(out, finished)
    local = tmp_path / "local"
    run_experiment(config, local, progress=False)
    timings = ["fit_seconds", "query_seconds", "label_seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "runs" / "random__seed0.csv").drop(columns=timings),
        pd.read_csv(local / "runs" / "random__seed0.csv").drop(columns=timings))
    for name in finished.files:
        assert (out / name).exists()
    # the driver's manifest names the worker's machine (here the same one), and the node's
    # scratch folder keeps neither the run's CSV nor its manifest
    from activegen.experiments.machine import machine_record, run_machine

    assert finished.machine == machine_record()
    assert run_machine(out / "runs" / "random__seed0.csv") == machine_record()
    import hashlib
    import tempfile

    node_folder = hashlib.sha256(f"{unseen}|{config.fingerprint()}".encode()).hexdigest()[:16]
    scratch = Path(tempfile.gettempdir()) / "activegen-ray" / node_folder
    assert (scratch / "runs").is_dir()  # the folder the worker used
    assert not list((scratch / "runs").iterdir())
