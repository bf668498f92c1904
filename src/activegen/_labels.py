"""Class labels: the one check that turns what a caller passes into ``int64`` classes.

Labels are integers ``0..K-1`` (and ``-1``, "can't tell", where an answer may abstain). A
float that is not a whole number, a NaN, a string or a boolean is refused naming its position
and value: a cast would turn ``0.5`` into 0 and a NaN into ``-9223372036854775808``, and the
learner would train on labels nobody gave.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from activegen.errors import DataError

#: the label of an answer that could not be given ("can't tell")
ABSTAIN = -1


def _shown(value: Any) -> str:
    """A value as a person wrote it (``0.5``, ``nan``, ``'cat'``), not as numpy prints it."""
    item = value.item() if isinstance(value, np.generic) else value
    return repr(item)


def class_labels(values: Any, n_classes: int, *, what: str = "labels",
                 abstain: bool = True, size: int | None = None) -> np.ndarray:
    """``values`` as ``int64`` classes ``0..n_classes-1`` (and ``-1`` when ``abstain``).

    Whole-number floats (``1.0``, what ``np.loadtxt`` or pandas give) are accepted; anything
    else that is not an integer is refused.

    Raises:
        DataError: a label that is not an integer class, or ``size`` labels expected and
            another number given; the message names ``what``, the position and the value.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{what} must be a 1-D sequence of class labels, got shape "
                        f"{array.shape}")
    if size is not None and len(array) != size:
        raise DataError(f"{what}: {len(array)} labels for {size} examples")
    allowed = (f"integer classes 0..{n_classes - 1}"
               + (" or -1 (can't tell)" if abstain else ""))
    if array.size and not np.issubdtype(array.dtype, np.integer):
        whole = None
        if np.issubdtype(array.dtype, np.floating):
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(array) & (array == np.round(array))
        if whole is None or not whole.all():
            position = 0 if whole is None else int(np.flatnonzero(~whole)[0])
            raise DataError(f"{what} must be {allowed}; got {_shown(array[position])} at "
                            f"position {position}")
    labels = array.astype(np.int64)
    low = ABSTAIN if abstain else 0
    bad = (labels < low) | (labels >= n_classes)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise DataError(f"{what} must be {allowed}; got {labels[position]} at position "
                        f"{position}")
    return labels
