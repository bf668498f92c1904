"""The image-folder session's disk cache of decoded images and backbone features."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activegen.cli import _images_label_config, build_parser
from activegen.data import unlabeled
from activegen.models.features import FeatureExtractor
from activegen.server.core.session import LabelSession
from activegen.server.images import folder_cache
from activegen.server.opening import open_session
from test_image_folder_labeling import NAMES, _torchvision_like_resnet18, make_folders


def _open(tmp_path: Path, pool_dir: Path, store: str, extra: tuple[str, ...] = ()
          ) -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "16",
         "--channels", "3", "--audit", "5", "--budget", "20", *extra])
    return open_session(_images_label_config(args), tmp_path / store)


def _state(session: LabelSession) -> tuple[np.ndarray, np.ndarray, list[str], list]:
    try:
        assert session.wait_ready(120) and session.audit is not None
        rows = session.batch("t").queries
        return (session.X_pool, session.audit.images.inputs, session.files,
                [r.pool_index for r in rows])
    finally:
        session.close()


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the folder was decoded again")

    monkeypatch.setattr(folder_cache, "load_unlabeled_images", refuse)
    monkeypatch.setattr(unlabeled, "read_images", refuse)


def test_reopening_reads_the_cache_and_gives_the_same_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pool_dir, _, _, _ = make_folders(tmp_path, n_pool=40, n_held=0)
    first = _state(_open(tmp_path, pool_dir, "a.sqlite"))
    (cache,) = (tmp_path / "cache").glob("folder-*.npz")
    with monkeypatch.context() as m:  # a second store, same folder: nothing decoded
        _no_decoding(m)
        second = _state(_open(tmp_path, pool_dir, "b.sqlite"))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # a damaged cache file is noticed, logged and rebuilt, with the same result
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="activegen.server.images.folder_cache"):
        third = _state(_open(tmp_path, pool_dir, "c.sqlite"))
    assert "damaged cache file" in caplog.text
    for a, b in zip(first, third, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # a changed file changes the key: decoded anew, into a second cache file
    victim = sorted(p for p in pool_dir.rglob("*.png") if p.name != "broken.png")[0]
    Image.new("RGB", (20, 20), (255, 0, 0)).save(victim)
    key_before = cache.name
    fourth = _state(_open(tmp_path, pool_dir, "d.sqlite"))
    assert len(list((tmp_path / "cache").glob("folder-*.npz"))) == 2
    assert key_before in {p.name for p in (tmp_path / "cache").glob("folder-*.npz")}
    assert not np.array_equal(fourth[0], first[0])


def test_backbone_features_are_computed_once_per_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool_dir, _, _, _ = make_folders(tmp_path, n_pool=30, n_held=0)
    weights = tmp_path / "resnet18.pth"
    _torchvision_like_resnet18(weights)
    extra = ("--features", f"backbone:{weights}")
    first = _state(_open(tmp_path, pool_dir, "a.sqlite", extra))
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1
    with monkeypatch.context() as m:
        _no_decoding(m)

        spot_check = FeatureExtractor.raw

        def refuse(self: FeatureExtractor, images: np.ndarray) -> np.ndarray:
            # only the random sample that checks the cache against the images is computed
            if len(images) > folder_cache.SPOT_CHECKS:
                raise AssertionError("features were extracted again")
            return spot_check(self, images)

        m.setattr(FeatureExtractor, "raw", refuse)
        second = _state(_open(tmp_path, pool_dir, "b.sqlite", extra))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
