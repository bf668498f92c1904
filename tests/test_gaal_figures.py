"""scripts/gaal_figures.py: the curves' title says the run's own task and learner."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    path = REPO / "scripts" / "gaal_figures.py"
    spec = importlib.util.spec_from_file_location("gaal_figures", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _out(tmp_path: Path, learner: str, classes: list[int] | None) -> Path:
    config = {"data": {"dataset": "digits", "classes": classes}, "learner": {"name": learner}}
    (tmp_path / "config.json").write_text(json.dumps({"fingerprint": "x", "config": config}))
    return tmp_path


def test_title_names_the_configs_learner_and_classes(tmp_path: Path) -> None:
    title = _script().figure_title(_out(tmp_path, "small-cnn", [5, 7]), "cnn")
    assert title.startswith("cnn: 5 vs 7, small-cnn")
    assert "linear SVM" not in title


def test_title_of_a_multiclass_run(tmp_path: Path) -> None:
    title = _script().figure_title(_out(tmp_path, "linear-svm", None), "d10")
    assert "all classes" in title and "linear-svm" in title
