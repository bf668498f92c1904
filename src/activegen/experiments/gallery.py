"""Grids of saved queries: what a labeler was shown in chosen rounds, with the answers.

Reads ``queries/<run_id>/round_XXXX.npz`` of an output folder (written by the runner) and
draws one PNG: a row per round, captioned with the label given (``?`` = abstained).
Retrieved pool queries (``gaal-retrieve``) show the synthesized image behind each pick.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from activegen.errors import DataError
from activegen.generative.grid import save_image_grid


def load_round(out_dir: Path, run_id: str, round_: int) -> dict[str, np.ndarray]:
    """The arrays saved for one round of one run."""
    path = Path(out_dir) / "queries" / run_id / f"round_{round_:04d}.npz"
    if not path.is_file():
        raise DataError(f"{path}: no saved query for run {run_id!r}, round {round_}")
    try:  # a truncated or overwritten file fails here, in the zip or in an array's bytes
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as exc:
        raise DataError(f"{path}: damaged query file of run {run_id!r}, round {round_} "
                        f"({type(exc).__name__}: {exc}); it is not used") from None


def query_gallery(out_dir: Path, run_id: str, rounds: Sequence[int], path: Path,
                  class_names: Sequence[str] | None = None, per_round: int = 10) -> Path:
    """Draw the queries of ``rounds`` of ``run_id`` as one captioned grid at ``path``."""
    out_dir = Path(out_dir)
    if class_names is None:
        stamp = out_dir / "config.json"
        class_names = json.loads(stamp.read_text())["config"]["data"].get("classes") \
            if stamp.is_file() else None
    images, captions = [], []
    for r in rounds:
        saved = load_round(out_dir, run_id, r)
        shown = saved.get("samples", saved.get("meta_synthesized"))
        if shown is None:
            raise DataError(f"run {run_id!r}, round {r}: a pool query has no image to show")
        labels = saved["labels"]
        for i in range(min(per_round, len(shown))):
            images.append(shown[i])
            lab = int(labels[i])
            name = "?" if lab < 0 else (str(class_names[lab]) if class_names else str(lab))
            captions.append(f"r{r}: {name}")
    return save_image_grid(np.stack(images), path, columns=per_round, captions=captions)
