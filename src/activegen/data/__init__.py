"""Datasets: the in-memory :class:`Dataset` type, loaders of the standard formats, and the
registry of named datasets that configs refer to."""

from activegen.data.dataset import Dataset
from activegen.data.registry import (
    DatasetInfo,
    data_root,
    is_present,
    list_datasets,
    load_dataset,
)

__all__ = [
    "Dataset",
    "DatasetInfo",
    "data_root",
    "is_present",
    "list_datasets",
    "load_dataset",
]
