"""What this machine is, in the facts that decide floating-point results: the CPU, torch's
kernel set, the BLAS libraries and their kernels, library versions and the torch device.

Low in the import graph so that every layer can record it: a run's manifest
(:mod:`activegen.experiments.machine`) and a trained generator's cache entry
(:mod:`activegen.generative.cache`) both say which machine computed them.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path
from typing import Any

#: The fields that change floating-point results, in the order a report shows them. The CPU
#: model names the machine for a person; ``cpu_capability`` (torch's kernel set) and ``blas``
#: (the BLAS library and its kernel) are what change the numbers.
RESULT_FIELDS = ("cpu", "cpu_capability", "blas", "torch", "numpy", "scikit-learn", "device")

#: Besides the machine, the number of threads torch used where the record was made (a run's
#: ``execution.threads``, for torch and BLAS alike): the split of a reduction between threads
#: changes float results as kernels do. Records written before it was recorded lack it, and
#: compare equal to any count (:func:`same_kind`).
THREADS = "threads"


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
    """This process's machine, as a run's manifest records it, with torch's thread count now
    (:data:`THREADS`; a run records it inside its thread limits).

    ``device``: the torch device the run used; a CUDA device adds its name, whose kernels
    then decide the numbers as much as the CPU's.
    """
    import torch

    record = dict(_static_record())
    record["device"] = device
    if device.startswith("cuda"):
        # no such device: keep what was asked for
        with contextlib.suppress(RuntimeError, AssertionError):
            record["device"] = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    record[THREADS] = str(torch.get_num_threads())
    return record


def describe(record: dict[str, Any]) -> str:
    """One line naming a machine record's result-relevant fields (and its thread count, where
    recorded)."""
    text = ", ".join(f"{key} {record.get(key, '?')}" for key in RESULT_FIELDS)
    return f"{text}, threads {record[THREADS]}" if THREADS in record else text


def same_kind(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two machine records compute the same numbers: equal :data:`RESULT_FIELDS`, and
    equal thread counts where both record one."""
    return all(a.get(key) == b.get(key) for key in RESULT_FIELDS) and (
        THREADS not in a or THREADS not in b or a[THREADS] == b[THREADS])


def is_machine_record(value: object) -> bool:
    """Whether ``value`` read back from disk is a machine record (a table of strings)."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items())
