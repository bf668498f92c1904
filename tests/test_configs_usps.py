"""gaal-mnist-usps.toml scores one run on both USPS test sets; the padded config is an alias."""

from __future__ import annotations

import bz2
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from activegen.experiments.config import load_config
from activegen.experiments.runner import load_experiment_data

REPO = Path(__file__).resolve().parents[1]


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes()))


@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 30)):
        labels = np.resize(np.array([5, 7, 1], np.uint8), n)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        _write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels)
    lines = []
    for i in range(30):  # LIBSVM: label 1..10 = digit 0..9, 256 pixels in [-1, 1]
        digit = (5, 7, 2)[i % 3]
        pixels = " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(rng.uniform(-1, 1, 256)))
        lines.append(f"{digit + 1} {pixels}")
    (tmp_path / "usps").mkdir()
    for name in ("usps.bz2", "usps.t.bz2"):
        (tmp_path / "usps" / name).write_bytes(bz2.compress("\n".join(lines).encode()))
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    return tmp_path


def test_one_usps_config_gives_the_plain_and_the_padded_test_set(fake_data: Path) -> None:
    both = load_config(REPO / "configs" / "gaal-mnist-usps.toml")
    padded_only = load_config(REPO / "configs" / "gaal-mnist-usps-padded.toml")
    pool, tests = load_experiment_data(both)
    assert set(tests) == {"usps", "usps-padded"}
    plain, padded = tests["usps"].X, tests["usps-padded"].X
    assert plain.shape == padded.shape and not np.array_equal(plain, padded)
    assert padded[:, :2].max() == 0 and plain[:, :2].max() > 0  # the 24x24 frame
    # the alias trains the same runs (same pool, learner, strategies) and its one test set is
    # the combined config's padded one
    pool2, tests2 = load_experiment_data(padded_only)
    assert set(tests2) == {"usps-padded"}
    np.testing.assert_array_equal(tests2["usps-padded"].X, padded)
    np.testing.assert_array_equal(pool2.X, pool.X)
    assert [s.params for s in both.strategies] == [s.params for s in padded_only.strategies]
    assert both.learner == padded_only.learner and both.loop == padded_only.loop
