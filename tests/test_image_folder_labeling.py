"""The practitioner's path: an unlabeled folder in, a model and predictions out."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from activegen.cli import _images_label_config, build_parser, main
from activegen.data.unlabeled import load_unlabeled_images
from activegen.errors import ConfigError, DataError
from activegen.models.export import ModelFileError, load_model
from activegen.models.features import FeatureExtractor
from activegen.server.core.audit import audit_size, draw_audit, wilson_interval
from activegen.server.core.session import LabelSession
from activegen.server.images.known_labels import read_known_labels
from activegen.server.opening import open_session
from activegen.server.web.app import create_app
from label_support import api_client

NAMES = ("zero", "one", "two")
MODES = ("L", "RGB", "P", "RGBA", "LA")


def _render(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An 8×8 digit as a photo-like image of a random size, mode and tint."""
    grey = Image.fromarray((digit * (255 / 16)).astype(np.uint8), "L")
    side = int(rng.integers(12, 48))
    grey = grey.resize((side, int(side * rng.uniform(0.8, 1.25))), Image.Resampling.BILINEAR)
    mode = MODES[int(rng.integers(len(MODES)))]
    if mode in ("L", "LA"):
        return grey.convert(mode)
    tint = rng.uniform(0.6, 1.0, size=3)
    rgb = (np.asarray(grey, dtype=np.float32)[..., None] * tint).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


def make_folders(root: Path, n_pool: int = 240, n_held: int = 90, seed: int = 0
                 ) -> tuple[Path, Path, dict[str, int], dict[str, int]]:
    """A nested unlabeled folder (plus a corrupt file and a text file) and a held-out one,
    with the truth the test keeps to itself."""
    digits = load_digits()
    keep = np.flatnonzero(digits.target < 3)
    rng = np.random.default_rng(seed)
    rng.shuffle(keep)
    pool_dir, held_dir = root / "photos", root / "held-out"
    truth: list[dict[str, int]] = [{}, {}]
    for part, (folder, idx) in enumerate(((pool_dir, keep[:n_pool]),
                                          (held_dir, keep[n_pool:n_pool + n_held]))):
        for j, i in enumerate(idx):
            image = _render(digits.images[i], rng)
            sub = f"day{j % 3}/" if j % 2 else ""
            ext = ".jpg" if image.mode in ("L", "RGB") and j % 4 == 1 else ".png"
            rel = f"{sub}img{j:04d}{ext}"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(folder / rel)
            truth[part][rel] = int(digits.target[i])
    (pool_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (pool_dir / "notes.txt").write_text("not an image")
    return pool_dir, held_dir, truth[0], truth[1]


def test_loader_resizes_converts_and_skips(tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=30, n_held=0)
    loaded = load_unlabeled_images(pool_dir, size=20, channels=3)
    assert loaded.X.shape == (30, 20, 20, 3) and loaded.X.dtype == np.uint8
    assert sorted(loaded.paths) == sorted(truth)
    assert [p for p, _ in loaded.skipped] == ["broken.png"]
    grey = load_unlabeled_images(pool_dir, size=9, channels=1)
    assert grey.X.shape == (30, 9, 9, 1)
    with pytest.raises(DataError, match="image folder not found"):
        load_unlabeled_images(tmp_path / "absent")


def test_wilson_interval_matches_formula_and_covers() -> None:
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-4) and math.isclose(high, 0.9433, abs_tol=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    # Exact coverage (summed over the binomial): close to the nominal 95% for these p.
    from scipy.stats import binom

    n = 40
    for p in (0.5, 0.7, 0.8, 0.9):
        coverage = sum(binom.pmf(k, n, p) for k in range(n + 1)
                       if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1])
        assert 0.9 < coverage < 0.99
    assert audit_size(0.1, 200) == 20 and audit_size(30, 200) == 30
    a = draw_audit(100, 10, 5)
    assert len(set(a.tolist())) == 10 and np.array_equal(a, draw_audit(100, 10, 5))


def test_known_labels_refuse_unknown_file_and_class(tmp_path: Path) -> None:
    csv_path = tmp_path / "known.csv"
    csv_path.write_text("path,label\na.png,cat\nb.png,dog\n")
    assert read_known_labels(csv_path, ["cat", "dog"], {"a.png": 0, "b.png": 1}) == [(0, 0),
                                                                                    (1, 1)]
    with pytest.raises(DataError, match=r"CSV line 3: file 'b.png' is not a readable image"):
        read_known_labels(csv_path, ["cat", "dog"], {"a.png": 0})
    with pytest.raises(DataError, match=r"CSV line 3 \(b.png\): label 'dog' is not a class"):
        read_known_labels(csv_path, ["cat", "bird"], {"a.png": 0, "b.png": 1})


def _torchvision_like_resnet18(path: Path) -> None:
    """A randomly initialised ResNet-18 state dict with torchvision's names and shapes."""
    from activegen.models.resnet import ResNet18Network

    torch.manual_seed(0)
    state = ResNet18Network(3, n_classes=1000).state_dict()
    state["conv1.weight"] = torch.randn(64, 3, 7, 7) * 0.05
    torch.save(state, path)


def test_backbone_features_from_a_local_state_dict(tmp_path: Path) -> None:
    weights = tmp_path / "resnet18.pth"
    _torchvision_like_resnet18(weights)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    extractor = FeatureExtractor(f"backbone:{weights}", channels=3)
    features = extractor.fit(images)
    assert features.shape == (5, 512) and np.isfinite(features).all()
    assert extractor.id.startswith("backbone:sha256=")
    grey = FeatureExtractor(f"backbone:{weights}", channels=1).fit(images[..., :1])
    assert grey.shape == (5, 512)
    (tmp_path / "bad.pth").write_bytes(b"nope")
    with pytest.raises(ConfigError, match=r"bad\.pth"):
        FeatureExtractor(f"backbone:{tmp_path / 'bad.pth'}", channels=3)


def _session(tmp_path: Path, pool_dir: Path, extra: list[str] = ()) -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "16",
         "--channels", "1", "--audit", "30", "--budget", "60", *extra])
    return open_session(_images_label_config(args), tmp_path / "s.sqlite")


def test_end_to_end_label_export_predict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pool_dir, held_dir, truth, held_truth = make_folders(tmp_path)
    session = _session(tmp_path, pool_dir)
    client = api_client(create_app(session))
    try:
        state = client.get("/api/state").json()
        assert state["n_skipped"] == 1 and state["skipped_files"][0]["path"] == "broken.png"
        assert state["audit"]["size"] == 30 and state["audit"]["accuracy"] is None
        asked: set[str] = set()
        while True:
            reply = client.post("/api/batch", json={"labeler": "me"}).json()
            queries = reply["queries"]
            if not queries and reply["preparing"]:  # the background worker is retraining
                assert session.wait_ready(60)
                continue
            if not queries:
                break
            for q in queries:
                assert q["path"] in truth and q["path"] not in asked
                asked.add(q["path"])
                png = client.get(f"/api/image/{q['id']}.png")
                assert png.status_code == 200
                assert max(Image.open(io.BytesIO(png.content)).size) == 384
                r = client.post("/api/label", json={"query_id": q["id"],
                                                    "label": truth[q["path"]], "labeler": "me"})
                assert r.status_code == 200, r.text
        assert len(asked) == 60
        audit = client.get("/api/audit/batch", params={"labeler": "me"}).json()["queries"]
        assert len(audit) == 30 and not {a["path"] for a in audit} & asked
        for a in audit:
            assert client.get(f"/api/audit/image/{a['audit_id']}.png").status_code == 200
            r = client.post("/api/audit/label", json={"audit_id": a["audit_id"],
                                                      "label": truth[a["path"]],
                                                      "labeler": "me"})
            assert r.status_code == 200, r.text
        estimate = client.get("/api/state").json()["audit"]
        assert estimate["counted"] == 30 and estimate["low"] <= estimate["accuracy"]

        export = list(csv.DictReader(io.StringIO(client.get("/api/export.csv").text)))
        assert [row["source"] for row in export] == ["session"] * 60 + ["audit"] * 30
        assert all(int(row["label"]) == truth[row["path"]] for row in export)
        assert client.get("/api/export.json").json()["session"]["audit"]["counted"] == 30

        preds = list(csv.DictReader(io.StringIO(client.get("/api/predictions.csv").text)))
        conf = [float(p["confidence"]) for p in preds]
        assert conf == sorted(conf)
        assert {p["path"] for p in preds} == set(truth) - asked - {a["path"] for a in audit}

        model_path = tmp_path / "model.npz"
        model_path.write_bytes(client.get("/api/model.npz").content)
    finally:
        session.close()

    assert load_model(model_path).audit["accuracy"] == estimate["accuracy"]
    out = tmp_path / "preds.csv"
    assert main(["predict", str(model_path), str(held_dir), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["path"] for r in rows} == set(held_truth)
    accuracy = np.mean([NAMES.index(r["label"]) == held_truth[r["path"]] for r in rows])
    assert accuracy > 0.7  # chance is 1/3
    assert estimate["low"] <= accuracy <= estimate["high"]


def test_model_file_refuses_what_it_does_not_expect(tmp_path: Path) -> None:
    good = tmp_path / "m.npz"
    np.savez(good, coef=np.zeros((3, 4)), intercept=np.zeros(3))
    with pytest.raises(ModelFileError, match="not an activegen model file"):
        load_model(good)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, coef=np.array([{"a": 1}], dtype=object), intercept=np.zeros(3),
             feature_mean=np.zeros(4), feature_scale=np.ones(4), header=np.zeros(3, np.uint8))
    with pytest.raises(ModelFileError, match=r"p\.npz"):
        load_model(pickled)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match=r"junk\.npz"):
        load_model(tmp_path / "junk.npz")
    assert main(["predict", str(tmp_path / "junk.npz"), str(tmp_path)]) == 2


def test_session_file_and_known_labels(tmp_path: Path) -> None:
    """The [images] table of a TOML file, with a CSV of known labels imported first (those of
    audit images go to the audit, never to training)."""
    from activegen.server.config import load_label_config

    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=60, n_held=0)
    all_paths = load_unlabeled_images(pool_dir, size=12).paths
    audited = [all_paths[i] for i in draw_audit(len(all_paths), 12, seed=0)]
    known = sorted(set(all_paths[:9]) | set(audited[:3]))
    labels = tmp_path / "known.csv"
    labels.write_text("path,label\n" + "".join(f"{p},{NAMES[truth[p]]}\n" for p in known))
    toml = tmp_path / "s.toml"
    toml.write_text(f'name = "t"\n[images]\nfolder = "{pool_dir}"\nclasses = {list(NAMES)!r}\n'
                    f'size = 12\nchannels = 3\naudit = 0.2\nlabels = "{labels}"\n'
                    '[loop]\ninitial = 5\nbatch = 5\nbudget = 10\n'.replace("'", '"'))
    session = open_session(load_label_config(toml), tmp_path / "s.sqlite")
    try:
        assert session.audit is not None and session.files is not None
        assert session.pool.X.shape[1:] == (12, 12, 3) and len(session.audit.files) == 12
        state = session.state()
        assert session.audit.files == audited
        in_audit = sum(p in session.audit.files for p in known)
        assert in_audit >= 3
        assert state["imported"] == len(known) - in_audit
        assert state["audit"]["answered"] == in_audit
        trained = session.store.answered_pool_indices()
        assert not {session.files[i] for i in trained} & set(session.audit.files)
    finally:
        session.close()
    labels.write_text("path,label\nnot-there.png,zero\n")
    with pytest.raises(DataError, match=r"CSV line 2: file 'not-there\.png'"):
        open_session(load_label_config(toml), tmp_path / "s2.sqlite")


def test_backbone_model_round_trip_and_weights_check(tmp_path: Path) -> None:
    """A model on backbone features predicts through the file; other weights are refused."""
    from activegen.models.export import ExportedModel, predict_files

    weights = tmp_path / "resnet18.pth"
    _torchvision_like_resnet18(weights)
    pool_dir = make_folders(tmp_path, n_pool=12, n_held=0)[0]
    loaded = load_unlabeled_images(pool_dir, size=32, channels=3)
    extractor = FeatureExtractor(f"backbone:{weights}", channels=3)
    features = extractor.fit(loaded.X)
    rng = np.random.default_rng(1)
    model = ExportedModel(rng.normal(size=(3, 512)), rng.normal(size=3), extractor.mean,
                          extractor.scale, list(NAMES), 32, 3, f"backbone:{weights}",
                          extractor.id)
    model.save(tmp_path / "m.npz")
    text, skipped = predict_files(tmp_path / "m.npz", [pool_dir], None)
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = model.proba_from_features(features)
    by_path = dict(zip(loaded.paths, expected))
    assert [s for s, _ in skipped] == ["broken.png"] and len(rows) == 12
    for r in rows:
        p = by_path[r["path"]]
        assert r["label"] == NAMES[int(p.argmax())]
        assert math.isclose(float(r["confidence"]), p.max(), abs_tol=1e-5)
    state = torch.load(weights, weights_only=True)
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"] + 1.0
    torch.save(state, weights)
    with pytest.raises(ModelFileError, match="other weights"):
        predict_files(tmp_path / "m.npz", [pool_dir], None)


def test_image_session_refuses_bad_settings_before_work(tmp_path: Path) -> None:
    from activegen.server.config import parse_label_config

    pool_dir = make_folders(tmp_path, n_pool=20, n_held=0)[0]
    base = {"images": {"folder": str(pool_dir), "classes": list(NAMES), "audit": 5},
            "loop": {"initial": 5, "batch": 5, "budget": 10}}
    with pytest.raises(ConfigError, match="linear model on features"):
        open_session(parse_label_config({**base, "learner": {"name": "small-cnn"}}),
                     tmp_path / "a.sqlite")
    with pytest.raises(ConfigError, match="audit sample"):
        open_session(parse_label_config({**base, "images": {**base["images"], "audit": 20}}),
                     tmp_path / "b.sqlite")
    with pytest.raises(ConfigError, match="features 'vgg'"):
        parse_label_config({**base, "images": {**base["images"], "features": "vgg"}})
    with pytest.raises(ConfigError, match="distinct"):
        parse_label_config({**base, "images": {**base["images"], "classes": ["a", "a"]}})
    assert not any((tmp_path / n).exists() for n in ("a.sqlite", "b.sqlite", "c.sqlite"))
