"""Which machine computed a run: the facts that decide its floating-point results.

A run's numbers are deterministic for a seed only on one kind of machine: the CPU's vector
instructions pick torch's and BLAS's kernels, and those change the last bits of a trained
generator, a synthesis path or a neural learner, and so which images are asked about (the
GAAL runs of ``docs/gaal.md`` differ between an AVX-512 and an AVX2 machine; the linear
baselines do not). Each finished run's manifest records this, and ``activegen report`` says
when an experiment's runs come from more than one kind of machine.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path
from typing import Any

import pandas as pd

#: The fields that change floating-point results, in the order a report shows them. The CPU
#: model names the machine for a person; ``cpu_capability`` (torch's kernel set) and ``blas``
#: (the BLAS library and its kernel) are what change the numbers.
RESULT_FIELDS = ("cpu", "cpu_capability", "blas", "torch", "numpy", "scikit-learn", "device")


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _blas() -> str:
    """The BLAS libraries loaded (numpy's and scipy's, which scikit-learn uses), each with its
    version and kernel architecture as threadpoolctl reports them, in a stable order."""
    from threadpoolctl import threadpool_info

    found = {
        (Path(str(pool.get("filepath", ""))).name,
         " ".join(str(pool[k]) for k in ("internal_api", "version", "architecture")
                  if pool.get(k)))
        for pool in threadpool_info() if pool.get("user_api") == "blas"
    }
    return "; ".join(text for _, text in sorted(found)) or "unknown"


@functools.cache
def _static_record() -> dict[str, str]:
    import numpy
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, so the record never depends on
    import sklearn  # whether the run has imported it yet)
    import torch

    return {
        "cpu": _cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "blas": _blas(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
    }


def machine_record(device: str = "cpu") -> dict[str, str]:
    """This process's machine, as a run's manifest records it.

    ``device``: the torch device the run used; a CUDA device adds its name, whose kernels
    then decide the numbers as much as the CPU's.
    """
    record = dict(_static_record())
    record["device"] = device
    if device.startswith("cuda"):
        import torch

        # no such device: keep what was asked for
        with contextlib.suppress(RuntimeError, AssertionError):
            record["device"] = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return record


def describe(record: dict[str, Any]) -> str:
    """One line naming a machine record's result-relevant fields."""
    return ", ".join(f"{key} {record.get(key, '?')}" for key in RESULT_FIELDS)


#: What a run's table shows where its manifest has no machine record.
NOT_RECORDED = "not recorded"


def machines_table(out_dir: Path) -> pd.DataFrame:
    """One row per finished run under ``out_dir/runs``: its strategy, seed and the
    result-relevant fields of the machine that computed it (:data:`NOT_RECORDED` where its
    manifest predates machine records). Runs that fail their manifest are left out (the
    results table refuses them anyway)."""
    from activegen.experiments.results import is_finished_run, run_machine

    rows = []
    for path in sorted((Path(out_dir) / "runs").glob("*.csv")):
        if not is_finished_run(path):
            continue
        head = pd.read_csv(path, nrows=1, usecols=["strategy", "seed"])
        if head.empty:
            continue
        machine = run_machine(path) or {}
        rows.append({"run": path.stem, "strategy": str(head["strategy"].iloc[0]),
                     "seed": int(head["seed"].iloc[0]),
                     **{key: machine.get(key, NOT_RECORDED) for key in RESULT_FIELDS}})
    return pd.DataFrame(rows, columns=["run", "strategy", "seed", *RESULT_FIELDS])


def machine_kinds(runs: pd.DataFrame) -> pd.DataFrame:
    """The distinct machines of :func:`machines_table`, most runs first: how many runs each
    computed and of which strategies."""
    if runs.empty:
        return pd.DataFrame(columns=["machine", "runs", "strategies", *RESULT_FIELDS])
    grouped = runs.groupby(list(RESULT_FIELDS), sort=False, dropna=False)
    kinds = grouped.agg(runs=("run", "size"),
                        strategies=("strategy", lambda s: ", ".join(sorted(set(s)))))
    kinds = kinds.reset_index().sort_values("runs", ascending=False, kind="stable")
    kinds.insert(0, "machine", [f"M{i + 1}" for i in range(len(kinds))])
    return kinds[["machine", "runs", "strategies", *RESULT_FIELDS]].reset_index(drop=True)
