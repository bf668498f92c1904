"""Executors: where the runs of an experiment execute — in this process, in local worker
processes, or on a Ray cluster — with the same rows whichever one ran them.

An executor takes the pending :class:`~activegen.experiments.plan.RunSpec` s and yields each
finished run as it completes; the driver (:func:`~activegen.experiments.runner.run_experiment`)
writes ``results.csv`` and shows one progress display. Each run is the pure function
:func:`~activegen.experiments.one_run.run_one` of its spec, so the order in which runs finish
changes nothing, and the rows are bitwise identical on the CPU for a given seed.

Stopping: closing the iterator an executor returned (the driver does so on Ctrl-C or on an
error) cancels runs not yet started and ends the running ones. Every finished round is already
in its checkpoint (written atomically), so the next ``activegen run`` resumes from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from activegen.data.dataset import Dataset
from activegen.errors import ConfigError
from activegen.experiments.config import ExperimentConfig

#: ``on_round(run_id, round)``: called in the driver each time a run finishes a round.
RoundCallback = Callable[[str, int], None]

#: How often (seconds) the driver wakes to forward progress while it waits for runs.
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as the driver receives it.

    Attributes:
        run_id: ``<strategy>__seed<k>``.
        csv_text: the run's rows (its ``runs/<run_id>.csv``).
        files: further files (path relative to the output folder → bytes) that the run wrote
            where the driver cannot see them — a Ray worker without the shared output folder
            returns its queries and final checkpoint here. Empty when the worker wrote to the
            driver's folder itself.
        machine: the machine record of the worker that computed the run, for the manifest
            the driver writes when the worker could not (``None``: the worker wrote it).
        resumed_from: with ``machine``, the other kinds of machine that computed rounds of
            the run before it was resumed.
        artefacts: with ``machine``, the trained artefacts the run's strategy used (a
            generator's key and trainer).
    """

    run_id: str
    csv_text: str
    files: dict[str, bytes] = field(default_factory=dict)
    machine: dict[str, str] | None = None
    resumed_from: tuple[dict[str, str], ...] = ()
    artefacts: tuple[dict[str, Any], ...] = ()


class Executor(Protocol):
    """Runs specs and yields each :class:`FinishedRun` as it completes (in any order)."""

    #: Whether runs execute concurrently (the driver then trains shared artifacts first).
    parallel: bool

    def run(self, config: ExperimentConfig, specs: Sequence[Any], out_dir: Path,
            on_round: RoundCallback) -> Iterator[FinishedRun]:
        """Run ``specs``; closing the returned iterator stops the runs still going."""
        ...


def make_executor(config: ExperimentConfig,
                  data: tuple[Dataset, dict[str, Dataset]] | None = None) -> Executor:
    """The executor ``config.execution`` asks for (``data``: already loaded, for in-process)."""
    execution = config.execution
    if execution.executor == "ray":
        # A local instance gets ray_num_cpus, else jobs when set above 1, else every core.
        cpus = execution.ray_num_cpus or (execution.jobs if execution.jobs > 1 else None)
        return RayExecutor(address=execution.ray_address, num_cpus=cpus)
    if execution.jobs == 1:
        return SerialExecutor(data)
    return ProcessExecutor(execution.jobs, data)


# -- in this process ----------------------------------------------------------------------
class SerialExecutor:
    """One run after another in this process (the default for ``jobs = 1``)."""

    parallel = False

    def __init__(self, data: tuple[Dataset, dict[str, Dataset]] | None = None) -> None:
        self.data = data

    def run(self, config: ExperimentConfig, specs: Sequence[Any], out_dir: Path,
            on_round: RoundCallback) -> Iterator[FinishedRun]:
        from activegen.experiments.data_setup import load_experiment_data
        from activegen.experiments.one_run import run_one

        data = self.data if self.data is not None else load_experiment_data(config)
        threads = run_threads(1, config.execution.threads)
        for spec in specs:
            # The same deliberate thread counts as a worker process gets, set per run (and
            # restored between runs, so code between them keeps the caller's settings).
            with limited_threads(threads):
                path = run_one(config, spec, out_dir, data,
                               on_round=lambda rec, rid=spec.run_id: on_round(rid, rec.round))
            yield FinishedRun(spec.run_id, path.read_text())


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` threads for torch and for numpy's BLAS/OpenMP pools (threadpoolctl)
    inside the block; restore the previous counts after it."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


# -- local worker processes ---------------------------------------------------------------
def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under ``taskset`` or a
    container's cpuset), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(jobs: int) -> int:
    """Torch threads per worker so that ``jobs`` workers share the cores without oversubscribing."""
    return max(1, available_cores() // jobs)


def run_threads(jobs: int, threads: int | None = None) -> int:
    """Threads each run uses for torch and BLAS/OpenMP, on every path (in this process, in a
    worker): ``execution.threads`` if given, else the available cores shared by ``jobs``."""
    return threads if threads is not None else worker_threads(jobs)


def registry_snapshot(config: ExperimentConfig) -> dict[str, dict[str, type]]:
    """The classes of the components ``config`` names, so that a worker knows a strategy,
    learner or oracle the user registered in the driver (a spawned worker imports activegen
    afresh). Classes travel by reference: their module must be importable in the worker
    (Ray pickles classes defined in the driver's ``__main__`` by value)."""
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    return {
        "strategy": {s.name: STRATEGIES.get(s.name) for s in config.strategies},
        "learner": {config.learner.name: LEARNERS.get(config.learner.name)},
        "oracle": {config.oracle.name: ORACLES.get(config.oracle.name)},
    }


def restore_registries(snapshot: dict[str, dict[str, type]]) -> None:
    """Register in this process whatever ``snapshot`` holds that is not registered yet."""
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    for registry in (STRATEGIES, LEARNERS, ORACLES):
        known = set(registry.names())
        for name, cls in snapshot.get(registry.kind, {}).items():
            if name not in known:
                registry.register(name)(cls)


#: Per worker process: the config, its data (loaded once), the progress queue, the parent.
_WORKER: dict[str, Any] = {}


def _init_process_worker(config: ExperimentConfig, threads: int, events: Any,
                         registries: dict[str, dict[str, type]], driver_pid: int,
                         data: tuple[Dataset, dict[str, Dataset]] | None) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the driver alone decides what
    # happens (it ends the workers), so the workers do not print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    # numpy's BLAS and OpenMP pools too (threadpoolctl comes with scikit-learn): ``jobs``
    # workers each using every core would oversubscribe the machine.
    _WORKER["thread_limits"] = threadpool_limits(threads)
    restore_registries(registries)
    from activegen.experiments.data_setup import load_experiment_data

    threading.Thread(target=_exit_when_gone, args=(driver_pid,), daemon=True,
                     name="activegen-driver-watch").start()
    _WORKER.update(config=config, events=events,
                   data=data if data is not None else load_experiment_data(config))


def _exit_when_gone(driver_pid: int, every_seconds: float = 1.0) -> None:
    """End this worker once the driver is gone. A driver killed by SIGKILL cannot end its
    workers, and an orphaned worker would otherwise finish its run (competing with the next
    ``activegen run`` for that run's files) or wait for work forever."""
    while True:
        time.sleep(every_seconds)
        if not _process_alive(driver_pid):
            os._exit(1)


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a killed one not yet reaped, a zombie, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid now belongs to another user's process
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): the signal test is all there is
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _run_in_process_worker(spec: Any, out_dir: str) -> FinishedRun:
    from activegen.experiments.one_run import run_one

    events = _WORKER["events"]

    def on_round(record: Any) -> None:
        events.put((spec.run_id, record.round))

    path = run_one(_WORKER["config"], spec, Path(out_dir), _WORKER["data"], on_round=on_round)
    return FinishedRun(spec.run_id, path.read_text())


#: Modules a fresh worker needs; the fork server imports them once for all workers.
_PRELOAD = ["activegen.experiments.one_run"]


def _worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``; never a plain fork of the
    driver, whose torch may already hold thread pools (a forked copy can deadlock). The fork
    server is a fresh process that imports activegen once; each worker is forked from it, so
    start-up costs one import instead of one per worker."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class ProcessExecutor:
    """``jobs`` worker processes on this machine.

    Each worker gets the experiment's data once (the driver's copy when given, else it loads
    it) and uses ``execution.threads`` threads for torch and for numpy's BLAS.
    """

    parallel = True

    def __init__(self, jobs: int,
                 data: tuple[Dataset, dict[str, Dataset]] | None = None) -> None:
        if jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.data = data

    def run(self, config: ExperimentConfig, specs: Sequence[Any], out_dir: Path,
            on_round: RoundCallback) -> Iterator[FinishedRun]:
        if not specs:
            return
        context = _worker_context()
        events = context.Queue()
        workers = min(self.jobs, len(specs))
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_process_worker,
            initargs=(config, run_threads(self.jobs, config.execution.threads), events,
                      registry_snapshot(config),
                      os.getpid(), self.data),
        )
        completed = False
        try:
            remaining: set[Future[FinishedRun]] = {
                pool.submit(_run_in_process_worker, spec, str(out_dir)) for spec in specs
            }
            while remaining:
                done, remaining = wait(remaining, timeout=_POLL_SECONDS,
                                       return_when=FIRST_COMPLETED)
                _drain(events, on_round)
                for future in done:
                    yield future.result()
            _drain(events, on_round)
            completed = True
        finally:
            _stop_pool(pool, graceful=completed)
            events.close()
            events.cancel_join_thread()


def _drain(events: Any, on_round: RoundCallback) -> None:
    while True:
        try:
            run_id, round_ = events.get_nowait()
        except queue.Empty:
            return
        on_round(run_id, round_)


def _stop_pool(pool: ProcessPoolExecutor, graceful: bool) -> None:
    if graceful:
        pool.shutdown(wait=True)
        return
    # concurrent.futures cannot interrupt a running task; a worker mid-run is ended here. Its
    # last finished round is in its checkpoint, and no file is left half-written (atomic).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


# -- Ray ----------------------------------------------------------------------------------
#: Per Ray worker process: data loaded for a config fingerprint (Ray reuses its workers).
_RAY_DATA: dict[str, tuple[Dataset, dict[str, Dataset]]] = {}


def _run_on_ray(config: ExperimentConfig, spec: Any, out_dir: str, events: Any,
                registries: dict[str, dict[str, type]]) -> FinishedRun:
    """One run inside a Ray task (see :class:`RayExecutor` for where files go)."""
    restore_registries(registries)
    from activegen.experiments.data_setup import load_experiment_data
    from activegen.experiments.machine import RunProvenance, machine_log_path, read_provenance
    from activegen.experiments.one_run import run_one
    from activegen.experiments.results import manifest_path

    key = config.fingerprint()
    if key not in _RAY_DATA:
        _RAY_DATA.clear()
        _RAY_DATA[key] = load_experiment_data(config)
    target = Path(out_dir)
    shared = target.is_dir()
    if not shared:
        # No shared file system: work in a node-local folder (one per output folder and
        # config, so a run rescheduled on this node resumes) and send the files back.
        scratch = hashlib.sha256(f"{out_dir}|{key}".encode()).hexdigest()[:16]
        target = Path(tempfile.gettempdir()) / "activegen-ray" / scratch
    # a task holds one of the node's CPUs: one thread unless the config says otherwise
    with limited_threads(config.execution.threads or 1):
        path = run_one(config, spec, target, _RAY_DATA[key],
                       on_round=lambda rec: events.put((spec.run_id, rec.round)))
    files: dict[str, bytes] = {}
    if not shared:
        for file in sorted((target / "queries" / spec.run_id).glob("*.npz")):
            files[str(file.relative_to(target))] = file.read_bytes()
        checkpoint = target / "checkpoints" / f"{spec.run_id}.npz"
        if checkpoint.exists():
            files[str(checkpoint.relative_to(target))] = checkpoint.read_bytes()
    csv_text = path.read_text()
    # the worker wrote the manifest itself where the driver sees it: nothing to hand back
    provenance = RunProvenance() if shared else read_provenance(path)
    if not shared:  # the driver gets everything; leave no stale copy on the node
        shutil.rmtree(target / "queries" / spec.run_id, ignore_errors=True)
        checkpoint = target / "checkpoints" / f"{spec.run_id}.npz"
        for leftover in (checkpoint, machine_log_path(checkpoint), path, manifest_path(path)):
            leftover.unlink(missing_ok=True)
    return FinishedRun(spec.run_id, csv_text, files, provenance.machine,
                       provenance.resumed_from, provenance.artefacts)


class RayExecutor:
    """Runs as Ray tasks (one CPU each) on a cluster (``address``) or a local Ray instance.

    Where files go: a worker that sees the driver's output folder (one machine, or a cluster
    with a shared file system mounted at the same path) writes checkpoints, queries and its
    run CSV there, so a killed experiment resumes from each run's last round. A worker that
    does not see it works in a node-local temporary folder and returns its rows, queries and
    final checkpoint to the driver, which writes them; an interrupted run then restarts from
    its first round on the next attempt (finished runs are kept).
    """

    parallel = True

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def _init(self) -> bool:
        """Start or join Ray; returns whether this call started it (and must shut it down)."""
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "execution.executor = \"ray\" needs Ray: pip install 'activegen[ray]'"
            ) from None
        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
        else:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        return True

    def run(self, config: ExperimentConfig, specs: Sequence[Any], out_dir: Path,
            on_round: RoundCallback) -> Iterator[FinishedRun]:
        if not specs:
            return
        started = self._init()
        import ray
        from ray.util.queue import Queue

        refs: list[Any] = []
        try:
            events = Queue()
            task = ray.remote(num_cpus=1, max_retries=0)(_run_on_ray)
            registries = registry_snapshot(config)
            out = str(Path(out_dir).resolve())
            refs = [task.remote(config, spec, out, events, registries) for spec in specs]
            remaining = list(refs)
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1, timeout=_POLL_SECONDS)
                _drain_ray(events, on_round)
                for ref in done:
                    yield ray.get(ref)
            _drain_ray(events, on_round)
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _drain_ray(events: Any, on_round: RoundCallback) -> None:
    size = events.qsize()
    if size:
        for run_id, round_ in events.get_nowait_batch(size):
            on_round(run_id, round_)
