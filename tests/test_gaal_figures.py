"""scripts/gaal_figures.py: the curves' title says the run's own task and learner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from activegen.experiments.config import load_config
from activegen.experiments.output import prepare_output

REPO = Path(__file__).resolve().parents[1]


def _script():
    path = REPO / "scripts" / "gaal_figures.py"
    spec = importlib.util.spec_from_file_location("gaal_figures", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _out(tmp_path: Path, config_name: str) -> Path:
    prepare_output(load_config(REPO / "configs" / config_name), tmp_path)
    return tmp_path


def test_title_names_the_configs_learner_and_classes(tmp_path: Path) -> None:
    title = _script().figure_title(_out(tmp_path, "gaal-mnist5k-cnn.toml"), "cnn")
    assert title.startswith("cnn: 5 vs 7, small-cnn")
    assert "linear SVM" not in title


def test_title_of_a_multiclass_run(tmp_path: Path) -> None:
    title = _script().figure_title(_out(tmp_path, "gaal-digits-10class.toml"), "d10")
    assert "all classes" in title and "linear-svm" in title
