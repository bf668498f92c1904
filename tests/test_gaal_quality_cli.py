"""``activegen gaal-quality`` works on any GAAL config, whatever its test sets are named: one
report per distinct generator (a mixed schedule's primary shares the config's [generator])."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activegen.cli import main

CONFIG = """
name = "q"
seeds = [0]
[data]
dataset = "digits"
classes = [5, 7]
size = [16, 16]
[[test_sets]]
name = "shifted"
dataset = "digits"
classes = [5, 7]
split = "all"
pad_to = [10, 10]
size = [16, 16]
[oracle]
name = "expert"
threshold = 0.7
[loop]
initial = 10
batch = 5
budget = 20
[generator]
epochs = 2
width = 4
latent_dim = 4
[[strategies]]
name = "gaal"
[[strategies]]
name = "mixed"
[[strategies]]
name = "simple-gan"
generator = { epochs = 3, eval_every = 1 }
[[strategies]]
name = "random"
"""


def test_gaal_quality_reports_every_generator_without_a_dash_test_set(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "q.toml"
    config.write_text(CONFIG)  # the only test set is "shifted": no name ends in "-test"
    out = tmp_path / "out"
    code = main(["gaal-quality", str(config), "--out", str(out), "--n", "50",
                 "--json", str(tmp_path / "q.json")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    data = json.loads((tmp_path / "q.json").read_text())
    assert len(data) == 2  # gaal and mixed share one generator; simple-gan has its own
    shared = next(d for d in data if "gaal" in d["strategies"])
    assert shared["strategies"] == ["gaal", "mixed"]
    assert set(shared["tests"]) == {"shifted"} and shared["generated"]["n"] == 50
    assert shared["generated"]["threshold"] == 0.7  # the oracle's threshold by default
    assert "shifted" in printed.out and "floor" in printed.out
    assert shared["trained_on"]["cpu_capability"]  # the machine that trained it
    assert printed.out.count("trained on: cpu ") == 2
    assert "not this process's kind" not in printed.out
    own = next(d for d in data if d["strategies"] == ["simple-gan"])["training"]
    assert [e["epoch"] for e in own["evaluations"]] == [1, 2, 3]
    best = min(e["frechet"] for e in own["evaluations"])
    # the training's figures, against both floors (the pool is under 500 images, so the
    # size-matched floor takes all of its training part: the two floors agree)
    assert own["frechet_floor_matched"] == pytest.approx(own["frechet_floor"])
    assert f"{best / own['frechet_floor']:.2f}x the floor" in printed.out
    assert "size-matched floor" in printed.out
    assert "size-matched" not in printed.out.split("simple-gan")[0]  # none without evaluations


def test_gaal_quality_refuses_a_config_without_a_generator(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "p.toml"
    text = CONFIG.split("[generator]")[0] + '[[strategies]]\nname = "random"\n'
    config.write_text(text)
    assert main(["gaal-quality", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "no strategy uses a generator" in capsys.readouterr().err
