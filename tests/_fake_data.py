"""Small fake copies of datasets this machine does not have (MNIST IDX, USPS LIBSVM), written
where a config's data root points, so the paper-protocol configs can be loaded by tests."""

from __future__ import annotations

import bz2
import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) as a gzipped IDX file, the format of MNIST's files."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def write_fake_mnist_usps(root: Path, n_train: int, n_test: int) -> None:
    """Random 28×28 "MNIST" (labels 5, 7, 1 in turn) under ``root/mnist`` and 30 random 16×16
    "USPS" digits (5, 7, 2) in LIBSVM form under ``root/usps`` (the same file as train and
    test); seeded, so a test's data are the same every run."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.resize(np.array([5, 7, 1], np.uint8), n)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx_gz(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels)
    lines = []
    for i in range(30):  # LIBSVM: label 1..10 = digit 0..9, 256 pixels in [-1, 1]
        digit = (5, 7, 2)[i % 3]
        pixels = " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(rng.uniform(-1, 1, 256)))
        lines.append(f"{digit + 1} {pixels}")
    (root / "usps").mkdir(parents=True, exist_ok=True)
    for name in ("usps.bz2", "usps.t.bz2"):
        (root / "usps" / name).write_bytes(bz2.compress("\n".join(lines).encode()))
