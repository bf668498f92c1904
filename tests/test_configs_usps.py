"""gaal-mnist-usps.toml scores one run on both USPS test sets: the plain resize and the
padded one (MNIST's framing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _fake_data import write_fake_mnist_usps
from activegen.experiments.config import load_config
from activegen.experiments.runner import load_experiment_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_fake_mnist_usps(tmp_path, n_train=300, n_test=30)
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    return tmp_path


def test_one_usps_config_gives_the_plain_and_the_padded_test_set(fake_data: Path) -> None:
    both = load_config(REPO / "configs" / "gaal-mnist-usps.toml")
    _, tests = load_experiment_data(both)
    assert set(tests) == {"usps", "usps-padded"}
    plain, padded = tests["usps"].X, tests["usps-padded"].X
    assert plain.shape == padded.shape and not np.array_equal(plain, padded)
    assert padded[:, :2].max() == 0 and plain[:, :2].max() > 0  # the 24x24 frame
