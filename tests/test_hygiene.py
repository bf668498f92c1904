"""The product's code declares what components can do instead of probing for it, keeps no
compatibility shims, and says why it is as it is (history goes in commit messages)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "activegen"

#: method names of the learner capabilities (models.capabilities) and the old negative list
CAPABILITY_NAMES = {"predict_proba", "decision_function", "embed", "torch_decision",
                    "torch_features", "linear_weights", "weights", "predict_loss", "prepare",
                    "iter_proba_samples", "lacks", "requires", "paths", "audit"}
#: where an object that is not ours is asked what it offers, and why that is right there
PROBES_ALLOWED = {
    # a scikit-learn estimator: scikit-learn's own protocol (``available_if``) answers
    # hasattr, and the wrapper exposes what the estimator has as fixed capabilities
    "models/sklearn_learner.py",
}


def _sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(SRC)), p.read_text()) for p in sorted(SRC.rglob("*.py"))]


def _probes(text: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in CAPABILITY_NAMES):
            found.append(f"{node.func.id}(…, {node.args[1].value!r}) line {node.lineno}")
    return found


def test_no_capability_is_probed_by_getattr_or_hasattr() -> None:
    probes = {name: _probes(text) for name, text in _sources()
              if name not in PROBES_ALLOWED}
    assert {name: found for name, found in probes.items() if found} == {}


def test_the_probe_check_catches_a_probe() -> None:
    assert _probes('w = getattr(learner, "weights", None)\n')
    assert _probes('ok = hasattr(learner, "predict_proba")\n')
    assert not _probes('x = getattr(torch.backends, "mps", None)\n')


def test_no_negative_capability_list_and_no_fingerprint_shim() -> None:
    for name, text in _sources():
        assert not re.search(r"\black(s)?\s*[:=]", text), name
        assert "legacy_fingerprint" not in text and "_drop_defaults" not in text, name
        assert "_NEW_DEFAULTS" not in text, name


def test_no_module_cites_an_issue_number() -> None:
    pattern = re.compile(r"\bissues?\s*#?\d+|\(#\d+\)", re.IGNORECASE)
    cited = {name: pattern.findall(text) for name, text in _sources()}
    assert {name: found for name, found in cited.items() if found} == {}
