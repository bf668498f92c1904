"""``features = "vae"``: features learned on the unlabeled images themselves."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from activegen.cli import _images_label_config, build_parser
from activegen.models.export import ModelFileError, load_model, predict_files
from activegen.server.core.session import LabelSession
from activegen.server.opening import open_session

DIGITS = (0, 1)
SHAPES = ("zero", "one")  # the class names the session is given


def make_digit_folders(pool: Path, held: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The embedded digits 0 and 1 as image files of random sizes (16-32 px) and modes, split
    250 / the rest; returns the truth of each folder by relative path."""
    X, y = load_digits(return_X_y=True)
    keep = np.flatnonzero(np.isin(y, DIGITS))
    np.random.default_rng(0).shuffle(keep)

    def write(folder: Path, indices: np.ndarray, seed: int) -> dict[str, int]:
        rng, truth = np.random.default_rng(seed), {}
        for j, i in enumerate(indices):
            side = int(rng.integers(16, 33))
            image = Image.fromarray((X[i].reshape(8, 8) * 255 / 16).astype(np.uint8))
            image = image.resize((side, side), Image.BILINEAR)
            rel = f"{'a' if j % 2 else 'b'}/d{j:04d}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (image.convert("RGB") if j % 3 == 0 else image).save(folder / rel)
            truth[rel] = DIGITS.index(int(y[i]))
        return truth

    return write(pool, keep[:250], 1), write(held, keep[250:], 2)


def _session(tmp_path: Path, folder: Path, features: str = "vae",
             store: str = "s.sqlite") -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(folder), "--classes", ",".join(SHAPES), "--size", "16",
         "--channels", "1", "--audit", "0", "--budget", "40", "--features", features])
    session = open_session(_images_label_config(args), tmp_path / store)
    if session.features_preparation is not None:  # the VAE trains in the background
        assert session.features_preparation.wait(600) and session.wait_ready(600)
        assert session.features_preparation.state()["status"] == "ready"
    return session


def _label_and_predict(session: LabelSession, truth: dict[str, int], held: Path,
                       held_truth: dict[str, int], model_path: Path) -> float:
    """Answer every query with the truth, export, predict ``held``: the accuracy."""
    try:
        while not session.finished:
            assert session.wait_ready(120)
            for row in session.batch("t").queries:
                assert session.files is not None and row.pool_index is not None
                session.label(row.id, truth[session.files[row.pool_index]], "t")
        model_path.write_bytes(session.model_file())
    finally:
        session.close()
    text, skipped = predict_files(model_path, [held], None)
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    assert len(rows) == len(held_truth) and not skipped
    return float(np.mean([SHAPES.index(label) == held_truth[path] for path, label, _ in rows]))


def test_vae_features_beat_chance_and_export(tmp_path: Path) -> None:
    pool, held = tmp_path / "pool", tmp_path / "held"
    truth, held_truth = make_digit_folders(pool, held)
    session = _session(tmp_path, pool)
    assert session.X_pool.shape == (250, 32)  # the features, as the learner's inputs (rows)
    features = session.X_pool.copy()
    model_path = tmp_path / "model.npz"
    accuracy = _label_and_predict(session, truth, held, held_truth, model_path)
    pixels = _label_and_predict(_session(tmp_path, pool, "pixels", "p.sqlite"), truth, held,
                                held_truth, tmp_path / "pixels.npz")
    print(f"40 labels by uncertainty, {len(held_truth)} held-out digits: accuracy with VAE "
          f"features {accuracy:.3f}, with pixels {pixels:.3f}")
    # chance is 0.5 (P(>= 83 of 110 right by chance) < 1e-7). Not a quality claim: pixels do
    # better on these digits (docs/labeling.md gives both). On rendered discs against squares
    # the small VAE's features were no better than chance (its latent codes size and
    # brightness, not shape), so these are digits, where the classes dominate the variance.
    assert accuracy >= 0.75

    # reopened, the VAE comes from the cache (one file), giving the same features
    assert len(list((tmp_path / "cache").glob("vaes/*/model.pt"))) == 1
    again = _session(tmp_path, pool)
    try:
        np.testing.assert_array_equal(again.X_pool, features)
    finally:
        again.close()

    # the model file carries the VAE, and refuses a VAE that is not the one it names
    model = load_model(model_path)
    assert model.vae_state and model.features == "vae"
    name = next(iter(sorted(model.vae_state)))
    with np.load(model_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}

    def write(changed: dict[str, np.ndarray], target: str) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, **changed)
        (tmp_path / target).write_bytes(buffer.getvalue())
        return tmp_path / target

    tampered = write({**arrays, f"vae.{name}": arrays[f"vae.{name}"] + 0.01}, "t1.npz")
    with pytest.raises(ModelFileError, match=r"t1\.npz: the model was trained on features vae"):
        predict_files(tampered, [held], None)
    reshaped = write({**arrays, f"vae.{name}": arrays[f"vae.{name}"][:1]}, "t2.npz")
    with pytest.raises(ModelFileError, match=r"t2\.npz: the VAE arrays do not fit"):
        predict_files(reshaped, [held], None)
    without = write({k: v for k, v in arrays.items() if not k.startswith("vae.")}, "t3.npz")
    with pytest.raises(ModelFileError, match="features 'vae' with 0 VAE arrays"):
        load_model(without)
    stray = write({**arrays, "other": np.zeros(1)}, "t4.npz")
    with pytest.raises(ModelFileError, match="not an activegen model file"):
        load_model(stray)
