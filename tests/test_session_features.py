"""A labeling session whose features are learned on its pool: it opens on the pixels at once,
the first batch is labeled while the features train (``/api/state`` says "preparing features:
epoch k of n"), the next round waits for them and is chosen on them, and a failed training
leaves the session on the pixels. End to end, the practitioner's path: an unlabeled folder,
``--features self-supervised``, answers through the HTTP API, the exported model, and
``activegen predict`` on held-out files, against the same session on pixels."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from activegen.cli import _images_label_config, build_parser, main
from activegen.features.settings import SelfSupervisedSettings
from activegen.models.export import ExportedModel, ModelFileError, load_model
from activegen.models.features import FeatureExtractor
from activegen.server.core.pool import SessionPool, dataset_pool
from activegen.server.core.preparation import FeaturePreparation, PreparedFeatures, Progress
from activegen.server.core.session import LabelSession
from activegen.server.opening import load_session_data, open_session
from activegen.server.web.app import create_app
from label_support import api_client, digits_config


def _answer_open_batch(session: LabelSession, truth: np.ndarray) -> int:
    batch = session.batch("me")
    for q in batch.queries:
        session.label(q.id, int(truth[q.pool_index]), "me")
    return len(batch.queries)


def _blocked_preparation(release: threading.Event, base: SessionPool, dim: int,
                         fail: bool = False) -> FeaturePreparation:
    """Reports epoch 1 of 3, then waits for ``release``; its features are a PCA of the pool
    (``dim`` columns, the test sets moved into them), or it raises."""
    def flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)

    def prepare(progress: Progress) -> PreparedFeatures:
        progress(1, 3, 2.5)
        assert release.wait(60)
        if fail:
            raise RuntimeError("the encoder diverged")
        pca = PCA(dim, random_state=0).fit(flat(base.inputs))
        return PreparedFeatures(
            inputs=pca.transform(flat(base.inputs)).astype(np.float32),
            test_sets={name: (pca.transform(flat(X)).astype(np.float32), y)
                       for name, (X, y) in base.test_sets.items()},
            info={"features": "pca"})

    return FeaturePreparation("self-supervised", 3, prepare, estimate_seconds=120.0)


@pytest.mark.parametrize("background", [True, False])
def test_the_first_batch_is_labeled_while_the_features_train_and_the_next_waits(
        tmp_path: Path, background: bool) -> None:
    config = digits_config(batch=5, budget=20, background=background)
    pool, tests = load_session_data(config)
    release = threading.Event()
    base = dataset_pool(pool, tests)
    preparing = _blocked_preparation(release, base, dim=12)
    session = open_session(config, tmp_path / "s.sqlite",
                           pool=dataclasses.replace(base, preparing=preparing))
    client = api_client(create_app(session))
    try:
        assert session.wait_ready(60)
        state = client.get("/api/state").json()
        training = state["feature_preparation"]
        assert training["status"] == "training" and training["epochs"] == 3
        assert training["message"].startswith("preparing features: epoch 1 of 3")
        assert _answer_open_batch(session, pool.y) == 5  # round 0, on the pixels
        assert session.wait_ready(60)
        state = client.get("/api/state").json()
        # the round is told, and the next one waits for the features
        assert state["answered"] == 5 and state["round"] == 1 and state["preparing"]
        assert session.batch("me").queries == []
        release.set()
        assert preparing.wait(60) and session.wait_ready(60)
        state = client.get("/api/state").json()
        assert state["feature_preparation"]["status"] == "ready"
        assert state["features"] == "pca" and state["round"] == 1 and not state["preparing"]
        assert session.X_pool.shape == (len(pool), 12)
        assert _answer_open_batch(session, pool.y) == 5  # round 1, chosen on the features
        assert session.wait_ready(60)
        learner = session.learner
        assert learner is not None
        assert learner.predict_proba(session.X_pool[:3]).shape == (3, session.n_classes)
        # the learning curve goes on, measured on the test set's rows in the features
        curve = client.get("/api/state").json()["curve"]
        assert [f["round"] for f in curve] == [1, 2]  # round 0 fits nothing
    finally:
        release.set()
        session.close()


def test_features_that_fail_leave_the_session_on_its_pixels(tmp_path: Path) -> None:
    config = digits_config(batch=5, budget=20, background=True)
    pool, tests = load_session_data(config)
    release = threading.Event()
    base = dataset_pool(pool, tests)
    preparing = _blocked_preparation(release, base, dim=12, fail=True)
    session = open_session(config, tmp_path / "s.sqlite",
                           pool=dataclasses.replace(base, preparing=preparing))
    try:
        assert session.wait_ready(60)
        _answer_open_batch(session, pool.y)
        release.set()
        assert preparing.wait(60)
        assert session.wait_ready(60)
        state = session.state()
        assert state["feature_preparation"]["status"] == "failed"
        assert "the encoder diverged" in state["feature_preparation"]["message"]
        assert state["features"].startswith("pixels (the features failed")
        assert state["round"] == 1 and session.X_pool.shape == base.inputs.shape
        assert len(session.batch("me").queries) == 5
    finally:
        release.set()
        session.close()


def test_a_dataset_session_reads_its_features_table(tmp_path: Path) -> None:
    """``[features] source = "self-supervised"`` in a dataset session: trained on the pool in
    the background, the test sets moved into the same features; the reopened session loads
    the cached encoder and chooses the same rounds."""
    config = digits_config(batch=5, budget=15, background=True)
    config = config.model_validate({**config.model_dump(), "features": {
        "source": "self-supervised", "self_supervised": {"epochs": 2, "width": 4}}})
    pool, _ = load_session_data(config)
    session = open_session(config, tmp_path / "s.sqlite")
    try:
        preparation = session.features_preparation
        assert preparation is not None and preparation.epochs == 2
        assert session.wait_ready(60)
        _answer_open_batch(session, pool.y)
        assert preparation.wait(300) and session.wait_ready(60)
        assert preparation.state()["status"] == "ready", preparation.state()
        assert session.X_pool.shape == (len(pool), 16)  # 4 x width
        assert all(X.shape[1] == 16 for X, _ in session.test_sets.values())
        first = [q.pool_index for q in session.batch("me").queries]
        assert len(first) == 5
    finally:
        session.close()
    again = open_session(config, tmp_path / "s.sqlite")
    try:
        assert again.wait_ready(60) and again.features_preparation is not None
        assert again.features_preparation.wait(60) and again.wait_ready(60)
        assert [q.pool_index for q in again.batch("me").queries] == first
    finally:
        again.close()


# -- the practitioner's path, end to end ------------------------------------------------------

SIDE = 12


def _shifted_digit_folders(root: Path) -> tuple[Path, Path, dict[str, int], dict[str, int]]:
    """Photos whose subject is not centred: each 8x8 digit pasted at a random place of a
    12x12 frame. Pixels see each digit at 25 places; features learned with crops and shifts
    see one digit."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.target))
    folders, truths = (root / "unlabeled", root / "held-out"), ({}, {})
    for part, idx in enumerate((order[:640], order[640:1040])):
        folders[part].mkdir()
        for j, i in enumerate(idx):
            frame = np.zeros((SIDE, SIDE), np.uint8)
            dx, dy = rng.integers(0, SIDE - 8 + 1, 2)
            frame[dy:dy + 8, dx:dx + 8] = (digits.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(frame, "L").save(folders[part] / f"img{j:04d}.png")
            truths[part][f"img{j:04d}.png"] = int(digits.target[i])
    return folders[0], folders[1], truths[0], truths[1]


def _label_and_predict(tmp_path: Path, name: str, features: str, pool_dir: Path,
                       held_dir: Path, truth: dict[str, int], held: dict[str, int]
                       ) -> tuple[float, list[str]]:
    """Label ``pool_dir`` through the HTTP API until the budget is spent, export the model,
    predict ``held_dir`` with ``activegen predict``: the held-out accuracy, and the feature
    states the page saw."""
    config_file = tmp_path / f"{name}.toml"
    cache = tmp_path / "cache"
    config_file.write_text(f'cache_dir = "{cache}"\n'
                           "[features.self_supervised]\nepochs = 10\nwidth = 8\n")
    args = build_parser().parse_args(
        ["label", str(config_file), "--images", str(pool_dir), "--classes",
         ",".join(str(c) for c in range(10)), "--size", str(SIDE), "--channels", "1",
         "--features", features, "--audit", "0", "--budget", "50"])
    session = open_session(_images_label_config(args), tmp_path / f"{name}.sqlite")
    client = api_client(create_app(session))
    seen: list[str] = []
    try:
        while True:
            state = client.get("/api/state").json()
            if "feature_preparation" in state:
                seen.append(state["feature_preparation"]["status"])
            if state["finished"]:
                break
            reply = client.post("/api/batch", json={"labeler": "me"}).json()
            if not reply["queries"]:
                assert session.wait_ready(600)
                if session.features_preparation is not None:
                    session.features_preparation.wait(600)
                continue
            for q in reply["queries"]:
                assert client.post("/api/label", json={
                    "query_id": q["id"], "label": truth[q["path"]],
                    "labeler": "me"}).status_code == 200
        assert session.wait_ready(600)
        model_file = tmp_path / f"{name}.npz"
        model_file.write_bytes(client.get("/api/model.npz").content)
    finally:
        session.close()
    assert load_model(model_file).features == features
    out = tmp_path / f"{name}-predictions.csv"
    assert main(["predict", str(model_file), str(held_dir), "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(held)
    correct = [row["label"] == str(held[Path(row["path"]).name]) for row in rows]
    return float(np.mean(correct)), seen


def test_a_folder_labeled_on_self_supervised_features_predicts_better_than_on_pixels(
        tmp_path: Path) -> None:
    pool_dir, held_dir, truth, held = _shifted_digit_folders(tmp_path)
    pixels, _ = _label_and_predict(tmp_path, "pixels", "pixels", pool_dir, held_dir, truth,
                                   held)
    learned, seen = _label_and_predict(tmp_path, "ssl", "self-supervised", pool_dir,
                                       held_dir, truth, held)
    # the first batch was served before the encoder was ready, and it ended ready
    assert seen[0] == "training" and seen[-1] == "ready"
    # measured when written (10 epochs, width 8, 50 labels, logistic regression): pixels
    # 0.235, the learned features 0.485 on the 400 held-out files (a binomial standard error
    # of 0.025 each); 0.1 is far inside that gap and far outside the noise
    assert learned > pixels + 0.1, (learned, pixels)


def test_the_model_file_carries_the_encoder_and_refuses_another(tmp_path: Path) -> None:
    """An exported model on self-supervised features holds the encoder's arrays and settings:
    read back, it gives the session's features of new images; a changed array, missing
    settings or missing arrays are refused by name."""
    images = (load_digits().images[:200, :, :, None] * (255 / 16)).astype(np.uint8)
    settings = SelfSupervisedSettings(epochs=1, width=4)
    extractor = FeatureExtractor("self-supervised", 1, self_supervised=settings,
                                 display="none")
    features = extractor.fit(images[:150])
    rng = np.random.default_rng(0)
    model = ExportedModel(rng.normal(size=(3, 16)), rng.normal(size=3), extractor.mean,
                          extractor.scale, ["a", "b", "c"], 8, 1, "self-supervised",
                          extractor.id, encoder_state=extractor.encoder_state(),
                          encoder_settings=settings.model_dump(mode="json"))
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = load_model(path)
    again = loaded.extractor()
    np.testing.assert_allclose(again.transform(images[150:]), extractor.transform(images[150:]),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(again.transform(images[:150]), features, rtol=1e-5, atol=1e-5)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    name = next(k for k in sorted(arrays) if k.startswith("encoder.")
                and arrays[k].dtype.kind == "f")

    def write(changed: dict[str, np.ndarray], target: str) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, **changed)
        (tmp_path / target).write_bytes(buffer.getvalue())
        return tmp_path / target

    tampered = write({**arrays, name: arrays[name] + 0.01}, "t1.npz")
    with pytest.raises(ModelFileError, match="trained on features self-supervised:sha256="):
        load_model(tampered).extractor()
    header = arrays["header"].astype(np.uint8).tobytes().decode()
    bare = json.loads(header)
    del bare["self_supervised"]
    no_settings = write({**arrays, "header": np.frombuffer(json.dumps(bare).encode(),
                                                           dtype=np.uint8)}, "t2.npz")
    with pytest.raises(ModelFileError, match="needs the header's self_supervised settings"):
        load_model(no_settings)
    no_arrays = write({k: v for k, v in arrays.items() if not k.startswith("encoder.")},
                      "t3.npz")
    with pytest.raises(ModelFileError, match="with 0 encoder arrays"):
        load_model(no_arrays)
    wider = json.loads(header)
    wider["self_supervised"]["width"] = 8
    wrong_width = write({**arrays, "header": np.frombuffer(json.dumps(wider).encode(),
                                                           dtype=np.uint8)}, "t4.npz")
    with pytest.raises(ModelFileError, match="gives 32"):
        load_model(wrong_width)
