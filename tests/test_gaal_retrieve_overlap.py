"""scripts/gaal_retrieve_overlap.py replays a run's saved rounds: on SVMactive's own runs it
must find every pick to be SVMactive's, and on random's far fewer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from activegen.experiments.config import load_config
from activegen.experiments.runner import run_experiment

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
name = "overlap"
seeds = [0, 1]
[data]
dataset = "digits"
classes = [5, 7]
test_fraction = 0.4
[learner]
name = "linear-svm"
C = 1.0
[loop]
initial = 10
batch = 5
budget = 40
[[strategies]]
name = "svm-active"
[[strategies]]
name = "random"
"""


def _overlap(config: Path, out: Path, strategy: str) -> float:
    text = subprocess.run([sys.executable, str(REPO / "scripts" / "gaal_retrieve_overlap.py"),
                           str(config), str(out), strategy], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "",
                                           "OMP_NUM_THREADS": "1"}).stdout
    return float(text.split("would also pick: ")[1].split(";")[0])


def test_svm_actives_own_picks_are_all_found_and_randoms_are_not(tmp_path: Path) -> None:
    config = tmp_path / "overlap.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    run_experiment(load_config(config), out, progress=False)
    assert _overlap(config, out, "svm-active") == 1.0
    assert _overlap(config, out, "random") < 0.5


def test_a_run_without_saved_queries_is_named(tmp_path: Path) -> None:
    config = tmp_path / "overlap.toml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gaal_retrieve_overlap.py"),
                           str(config), str(tmp_path / "nowhere"), "svm-active"],
                          capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": ""})
    assert done.returncode != 0 and "no saved queries for svm-active__seed0" in done.stderr
