"""A results folder and a config are data: reading results never imports or builds anything,
and a config runs code only where it says so (``allow_imports``), never to be validated."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.config import parse_config
from activegen.models import LEARNERS
from activegen.models.sklearn_learner import SklearnLearner
from activegen.models.torch_module import TorchModuleLearner
from activegen.server.config import parse_label_config


@pytest.fixture
def planted_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package on sys.path whose import, and whose classes' construction, leave a mark."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "planted_pkg.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marks)!r}, "imported").touch()

        from sklearn.linear_model import LogisticRegression

        class Est(LogisticRegression):
            def __init__(self, C=1.0):
                Path({str(marks)!r}, "constructed").touch()
                super().__init__(C=C)

        def factory(**params):
            Path({str(marks)!r}, "called").touch()
            import torch
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "planted_pkg", raising=False)
    return marks


def _experiment(learner: dict) -> dict:
    return {"name": "trust", "seeds": [0], "supervised": False,
            "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
            "learner": learner, "loop": {"initial": 4, "batch": 4, "budget": 12},
            "strategies": [{"name": "margin"}]}


# -- 1. activegen report DIR on a folder someone sent --------------------------------------
def test_1_report_of_a_sent_folder_imports_and_builds_nothing(
        tmp_path: Path, planted_package: Path) -> None:
    out = tmp_path / "sent"
    out.mkdir()
    marker = tmp_path / "popen-ran"
    for learner in ({"name": "sklearn", "estimator": "subprocess.Popen",
                     "params": {"args": ["touch", str(marker)]}},
                    {"name": "sklearn", "estimator": "planted_pkg.Est",
                     "allow_imports": ["planted_pkg"]}):
        config = _experiment(learner)
        (out / "config.json").write_text(json.dumps(
            {"fingerprint": "0", "fingerprint_version": 2, "config": config}))
        (out / "results.csv").write_text(
            "dataset,strategy,seed,round,n_labels,test_set,accuracy\n"
            "digits,margin,0,0,4,t,0.5\ndigits,margin,0,1,8,t,0.7\n")
        assert main(["report", str(out)]) == 0
        assert "# trust" in (out / "report.md").read_text()  # the saved name, read as data
    assert not marker.exists()
    assert not list(planted_package.iterdir())
    assert "planted_pkg" not in sys.modules


# -- 2. a config is a program only where it says so -------------------------------------
@pytest.mark.parametrize("learner", [
    {"name": "sklearn", "estimator": "subprocess.Popen", "params": {"args": ["true"]}},
    {"name": "sklearn", "estimator": "os.system"},
    {"name": "torch-module", "module": "os.system", "params": {"command": "true"}},
    {"name": "torch-module", "module": "torch.hub.load"},
    {"name": "sklearn", "estimator": "planted_pkg.Est"},
    {"name": "torch-module", "module": "planted_pkg.factory"},
])
def test_2_a_path_outside_the_trusted_packages_is_refused_before_import(
        learner: dict, planted_package: Path) -> None:
    with pytest.raises(ConfigError, match=r"outside the packages this config may import.*"
                                          r"allow_imports"):
        parse_config(_experiment(learner), "exp.toml")
    label = {"name": "s", "data": {"dataset": "digits", "classes": [3, 8]},
             "learner": learner, "loop": {"initial": 4, "batch": 2, "budget": 10}}
    with pytest.raises(ConfigError, match="allow_imports"):  # activegen label alike
        parse_label_config(label, "session.toml")
    assert not list(planted_package.iterdir())
    assert "planted_pkg" not in sys.modules


def test_2_classes_are_checked_before_they_are_called(planted_package: Path) -> None:
    with pytest.raises(ConfigError, match="not a scikit-learn classifier"):
        parse_config(_experiment({"name": "sklearn", "estimator": "subprocess.Popen",
                                  "allow_imports": ["subprocess"],
                                  "params": {"args": ["true"]}}), "exp.toml")
    with pytest.raises(ConfigError, match=r"a class but not an nn\.Module"):
        parse_config(_experiment({"name": "torch-module", "module": "subprocess.Popen",
                                  "allow_imports": ["subprocess"]}), "exp.toml")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'gamma'"):
        parse_config(_experiment({"name": "sklearn", "estimator": "planted_pkg.Est",
                                  "allow_imports": ["planted_pkg"],
                                  "params": {"gamma": 2}}), "exp.toml")
    assert not (planted_package / "constructed").exists()


def test_2_validation_calls_no_user_code_and_a_fit_does(planted_package: Path) -> None:
    config = parse_config(_experiment({"name": "sklearn", "estimator": "planted_pkg.Est",
                                       "allow_imports": ["planted_pkg"],
                                       "params": {"C": 2.0}}), "exp.toml")
    parse_config(_experiment({"name": "torch-module", "module": "planted_pkg.factory",
                              "allow_imports": ["planted_pkg"]}), "exp.toml")
    assert (planted_package / "imported").exists()  # opted in: the package is imported
    assert not (planted_package / "constructed").exists()  # but nothing of it called
    assert not (planted_package / "called").exists()
    learner = LEARNERS.build("sklearn", config.learner.params)
    import numpy as np

    X = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    y = np.arange(20) % 2
    learner.fit(X, y)
    assert (planted_package / "constructed").exists()
    module = TorchModuleLearner(2, module="planted_pkg.factory", allow_imports=["planted_pkg"],
                                epochs=1, device="cpu")
    module.fit(X, y)
    assert (planted_package / "called").exists()


def test_2_only_a_strategy_reading_mc_dropout_looks_inside_a_factory(
        planted_package: Path) -> None:
    """The one call validation makes: whether a factory's modules have dropout layers, for a
    strategy that needs them (this one has none, so the pair is refused before any work)."""
    config = {**_experiment({"name": "torch-module", "module": "planted_pkg.factory",
                             "allow_imports": ["planted_pkg"]}),
              "strategies": [{"name": "bald"}]}
    with pytest.raises(ConfigError, match=r"strategies\[0\]: strategy 'bald' needs .*MCDropout"):
        parse_config(config, "exp.toml")
    assert (planted_package / "called").exists()


def test_2_the_defaults_and_python_objects_need_no_opt_in() -> None:
    from sklearn.svm import SVC

    assert SklearnLearner(2, estimator="sklearn.svm.SVC").template.__class__ is SVC
    assert SklearnLearner(2, estimator=SVC).template.__class__ is SVC  # Python: trusted
    TorchModuleLearner(2, module="torch.nn.Linear", params={"in_features": 64,
                                                            "out_features": 2}, device="cpu")
    with pytest.raises(ConfigError, match="not a package or module name"):
        LEARNERS.build("sklearn", {"estimator": "sklearn.svm.SVC",
                                   "allow_imports": ["../evil"]})
    with pytest.raises(ConfigError, match="outside"):  # whole components, not a prefix
        SklearnLearner(2, estimator="sklearnx.Evil")


# -- the docs say it, and no message a labeling user sees advises deleting a store ------------
ROOT = Path(__file__).parents[1]


def test_the_trust_model_and_its_tests_are_documented() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    assert "## Trust model" in text and "trusted no more than its owner" in text
    for path in sorted((ROOT / "tests").glob("test_trust_*.py")):
        assert f"tests/{path.name}" in text, path.name
    assert "allow_imports" in (ROOT / "docs" / "configuration.md").read_text()


def test_no_server_message_advises_deleting_anything() -> None:
    """Every message the labeling server raises, logs or prints."""
    import ast

    def messages(tree: ast.AST) -> list[str]:
        said = []
        for node in ast.walk(tree):
            speaks = isinstance(node, ast.Raise) or (
                isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Attribute)
                     and node.func.attr in ("warning", "info", "error", "exception"))
                    or (isinstance(node.func, ast.Name) and node.func.id == "print")))
            if speaks:
                said += [c.value for c in ast.walk(node)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        return said

    for path in sorted((ROOT / "src" / "activegen" / "server").rglob("*.py")):
        for text in messages(ast.parse(path.read_text())):
            assert "delete" not in text.lower() and "--fresh" not in text, (path.name, text)
