"""A GAAL experiment end to end (its generator and synthesis written once, in the shared
tables): config → runs → saved queries → gallery; self-taught runs."""

from __future__ import annotations

import json

import numpy as np

from activegen.experiments.config import parse_config
from activegen.experiments.gallery import load_round, query_gallery
from activegen.experiments.results import read_results
from activegen.experiments.runner import run_experiment
from tiny import GENERATOR


def _config(**overrides):
    data = {
        "name": "gaal-e2e",
        "seeds": [0],
        "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.4},
        "oracle": {"name": "expert", "threshold": 0.8},
        "loop": {"initial": 10, "batch": 4, "budget": 22},
        "generator": GENERATOR,
        "synthesis": {"steps": 5},
        "strategies": [
            {"name": "gaal"},
            {"name": "gaal-retrieve"},
            {"name": "mixed", "every": 1},
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
    assert saved["images"].shape == (4, 8, 8, 1)
    assert saved["latents"].shape == (4, GENERATOR["latent_dim"])
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
                     oracle={"name": "pool"}, strategies=[{"name": "random"}],
                     generator=None, synthesis=None)
    results = read_results(run_experiment(config, tmp_path / "st", progress=False))
    assert (results["accuracy"] > 0.5).all()
    assert len(list((tmp_path / "st" / "cache" / "bases").iterdir())) == 1


def test_a_retrieved_round_shows_the_labeled_pool_image_under_its_label(tmp_path) -> None:
    """gaal-retrieve labels real pool images: the gallery draws the synthesized row, then the
    pool images that were labeled, and puts each label under the image it belongs to."""
    import pytest

    from activegen.errors import DataError
    from activegen.experiments.data_setup import load_experiment_data
    from activegen.experiments.gallery import gallery_tiles

    config = _config(strategies=[{"name": "gaal-retrieve"}])
    out = tmp_path / "out"
    run_experiment(config, out, progress=False)
    pool = load_experiment_data(config)[0].to_float()
    saved = load_round(out, "gaal-retrieve__seed0", 0)
    images, captions = gallery_tiles(out, "gaal-retrieve__seed0", [0], per_round=6)
    assert len(images) == len(captions) == 12  # a row of 6 each, the batch of 4 padded
    for i in range(4):
        assert np.array_equal(images[i], saved["meta_synthesized"][i])
        assert np.array_equal(images[6 + i], pool[saved["indices"][i]])
        assert captions[i] == "r0 synthesized"
        assert captions[6 + i] == f"r0: {[5, 7][int(saved['labels'][i])]}"
    assert captions[4:6] == captions[10:12] == ["", ""] and not images[11].any()
    # the pool passed in or loaded from the folder's config: the same tiles
    given, _ = gallery_tiles(out, "gaal-retrieve__seed0", [0], per_round=6, pool_images=pool)
    assert all(np.array_equal(a, b) for a, b in zip(images, given, strict=True))
    with pytest.raises(DataError, match="outside the pool of 3 images"):
        gallery_tiles(out, "gaal-retrieve__seed0", [0], pool_images=pool[:3])
    (out / "config.json").unlink()
    with pytest.raises(DataError, match=r"no config\.json"):
        gallery_tiles(out, "gaal-retrieve__seed0", [0], class_names=["5", "7"])
    png = query_gallery(out, "gaal-retrieve__seed0", [0, 1], tmp_path / "r.png",
                        pool_images=pool)
    assert png.read_bytes()[:4] == b"\x89PNG"
