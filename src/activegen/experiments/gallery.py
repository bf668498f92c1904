"""Grids of saved queries: what a labeler was shown in chosen rounds, with the answers.

Reads ``queries/<run_id>/round_XXXX.npz`` of an output folder (written by the runner) and
draws one PNG: a row per round, captioned with the label given (``?`` = abstained).
A retrieved round (``gaal-retrieve``: synthesized, then a real pool image labeled for each) is
two rows: the synthesized images, then the pool images that were labeled, with their labels.
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
                  class_names: Sequence[str] | None = None, per_round: int = 10,
                  pool_images: np.ndarray | None = None) -> Path:
    """Draw the queries of ``rounds`` of ``run_id`` as one captioned grid at ``path``.

    ``pool_images``: the run's pool as ``float [N, C, H, W]``, for retrieved rounds (default:
    loaded from the output folder's ``config.json`` when a retrieved round needs it)."""
    images, captions = gallery_tiles(out_dir, run_id, rounds, class_names, per_round,
                                     pool_images)
    return save_image_grid(np.stack(images), path, columns=per_round, captions=captions)


def gallery_tiles(out_dir: Path, run_id: str, rounds: Sequence[int],
                  class_names: Sequence[str] | None = None, per_round: int = 10,
                  pool_images: np.ndarray | None = None) -> tuple[list[np.ndarray], list[str]]:
    """The images and captions of :func:`query_gallery`, row by row (``per_round`` a row).

    A label is captioned under the image that was labeled: for a retrieved round, under the
    pool image, the synthesized image above it captioned ``synthesized``."""
    out_dir = Path(out_dir)
    if class_names is None:
        stamp = out_dir / "config.json"
        class_names = json.loads(stamp.read_text())["config"]["data"].get("classes") \
            if stamp.is_file() else None
    images: list[np.ndarray] = []
    captions: list[str] = []

    def row(tiles: Sequence[np.ndarray], texts: Sequence[str]) -> None:
        # a short round is padded to a full row, so that each row is one round's
        images.extend(tiles)
        captions.extend(texts)
        for _ in range(per_round - len(tiles)):
            images.append(np.zeros_like(tiles[0]))
            captions.append("")

    for r in rounds:
        saved = load_round(out_dir, run_id, r)
        n = min(per_round, len(saved["labels"]))
        names = [_label_name(int(lab), class_names) for lab in saved["labels"][:n]]
        if "samples" in saved:
            row(list(saved["samples"][:n]), [f"r{r}: {name}" for name in names])
            continue
        if "meta_synthesized" not in saved:
            raise DataError(f"run {run_id!r}, round {r}: a pool query has no image to show")
        if pool_images is None:
            pool_images = _pool_images(out_dir)
        picks = np.asarray(saved["indices"][:n], dtype=np.int64)
        if len(picks) and (picks.min() < 0 or picks.max() >= len(pool_images)):
            raise DataError(f"run {run_id!r}, round {r}: pool indices outside the pool of "
                            f"{len(pool_images)} images")
        row(list(saved["meta_synthesized"][:n]), [f"r{r} synthesized"] * n)
        row(list(pool_images[picks]), [f"r{r}: {name}" for name in names])
    return images, captions


def _label_name(label: int, class_names: Sequence[str] | None) -> str:
    return "?" if label < 0 else (str(class_names[label]) if class_names else str(label))


def _pool_images(out_dir: Path) -> np.ndarray:
    """The pool of the configuration an output folder was made with (its ``config.json``)."""
    from activegen.experiments.data_setup import load_pool_and_tests
    from activegen.experiments.output import saved_config

    config = saved_config(out_dir)  # its [data] table only: nothing of it is imported
    if config is None:
        raise DataError(f"{out_dir}: no config.json to load the pool of its retrieved queries "
                        "from (pass pool_images)")
    return load_pool_and_tests(config.data, [])[0].to_float()
