"""Fixtures shared by the test modules: the embedded digits as pools, an artifact cache, a
shared generator cache that lives in a temporary folder (never in $HOME), and one thread for
torch and BLAS: the tests' arrays are small, and on a shared machine more threads than idle
cores spin-wait (a 29-iteration logistic regression took 3 s with two BLAS threads beside
other work, 0.05 s with one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activegen.data import Dataset, load_dataset


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ACTIVEGEN_CACHE", str(tmp_path_factory.mktemp("shared-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """All 1,797 embedded 8×8 digits, ten classes."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def pool(digits: Dataset) -> Dataset:
    """Digits 3 and 8 (≈360 images): a two-class pool for strategies and learners."""
    return digits.select_classes([3, 8])


@pytest.fixture(scope="session")
def pool_5v7(digits: Dataset) -> Dataset:
    """Digits 5 and 7: the GAAL paper's pair at the embedded scale."""
    return digits.select_classes([5, 7])


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for the session: tiny generators and VAEs are trained once."""
    return tmp_path_factory.mktemp("artifact-cache")
