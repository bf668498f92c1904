"""Torch's thread count, set for one phase and put back after it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def available_cores() -> int:
    """The cores this process may run on (its affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """The available cores not busy with other work (by the 1-minute load average), at least
    one. With more threads than idle cores, OpenMP's spin-waiting threads fight the other
    work: on a shared 2-core machine with one core busy, SimCLR steps took 2-3x longer with
    2 threads than with 1."""
    cores = available_cores()
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:  # no load average on this system
        busy = 0
    return max(1, min(cores, cores - busy))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (None: :func:`idle_cores`)."""
    n = idle_cores() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
