"""A GAAL experiment end to end: config → runs → saved queries → gallery; self-taught runs."""

from __future__ import annotations

import json

import numpy as np

from activegen.experiments.config import parse_config
from activegen.experiments.gallery import load_round, query_gallery
from activegen.experiments.results import read_results
from activegen.experiments.runner import run_experiment

GAN = {"gan_epochs": 2, "gan_width": 8, "latent_dim": 8}


def _config(**overrides):
    data = {
        "name": "gaal-e2e",
        "seeds": [0],
        "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.4},
        "oracle": {"name": "expert", "threshold": 0.8},
        "loop": {"initial": 10, "batch": 4, "budget": 22},
        "strategies": [
            {"name": "gaal", "steps": 5, **GAN},
            {"name": "gaal-retrieve", "steps": 5, **GAN},
            {"name": "mixed", "every": 1, "primary_params": {"steps": 5, **GAN}},
            {"name": "random"},
        ],
    }
    data.update(overrides)
    return parse_config(data)


def test_gaal_experiment_saves_every_query_with_latents_and_labels(tmp_path) -> None:
    out = tmp_path / "out"
    results = read_results(run_experiment(_config(), out, progress=False))
    assert set(results["strategy"]) == {"gaal", "gaal-retrieve", "mixed", "random",
                                        "supervised"}
    # one generator for every run of the experiment
    assert len([p for p in (out / "cache" / "generators").iterdir() if p.is_dir()]) == 1
    saved = load_round(out, "gaal__seed0", 0)
    assert saved["images"].shape == (4, 8, 8, 1) and saved["latents"].shape == (4, 8)
    assert set(np.unique(saved["labels"])) <= {-1, 0, 1}
    assert json.loads(str(saved["meta"]))["generator"]
    retrieved = load_round(out, "gaal-retrieve__seed0", 0)
    assert retrieved["meta_synthesized"].shape == (4, 1, 8, 8) and len(retrieved["indices"]) == 4
    # mixed with every=1: round 0 synthesizes, round 1 is a random pool round
    assert "samples" in load_round(out, "mixed__seed0", 0)
    assert "samples" not in load_round(out, "mixed__seed0", 1)
    gaal = results[(results.strategy == "gaal")]
    last = gaal.sort_values("round").iloc[-1]
    assert last["n_labels"] == 22  # abstentions cost budget by default
    assert last["n_train"] + last["n_abstained"] == 22
    png = query_gallery(out, "gaal__seed0", [0, 1], tmp_path / "g.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_self_taught_learner_runs_in_an_experiment(tmp_path) -> None:
    config = _config(learner={"name": "self-taught-svm", "n_components": 8,
                              "basis_iterations": 2},
                     oracle={"name": "pool"}, strategies=[{"name": "random"}])
    results = read_results(run_experiment(config, tmp_path / "st", progress=False))
    assert (results["accuracy"] > 0.5).all()
    assert len(list((tmp_path / "st" / "cache" / "bases").iterdir())) == 1
