"""Recording stopping criteria on runs (``[stopping]``) and summarising them in the report.

Every round, the run's fitted learner predicts a fixed, seeded *stop set* of pool points; the
predictions, the stop set's max and mean predictive entropy, the label count and the
accuracies go to ``stopping/<run_id>.npz`` (atomically, so a resumed run keeps its earlier
rounds). With ``stop_on``, :meth:`StoppingRecorder.should_stop` tells the loop to end the run
at the round that criterion first fires. When the run ends, each criterion is replayed over the
rounds and ``stopping/<run_id>.json`` says, per criterion, the round it first fired, the labels
it would have saved against the budget and the accuracy it would have cost (final accuracy minus
the accuracy at that round, on each test set).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activegen._atomic import atomic_write_bytes, atomic_write_text
from activegen.errors import DataError
from activegen.experiments.config import StoppingConfig
from activegen.loop import RoundRecord
from activegen.models.base import Learner
from activegen.stopping import Observation, build_criterion

STOP_DIR = "stopping"


class StoppingRecorder:
    """Collects one run's per-round stop-set predictions; :meth:`finish` writes the verdicts."""

    def __init__(self, settings: StoppingConfig, X_pool: np.ndarray, seed: int,
                 out_dir: Path, run_id: str) -> None:
        self.settings = settings
        n = len(X_pool)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5709]))
        self.stop_idx = np.sort(rng.choice(n, size=min(settings.stop_set, n), replace=False))
        self.X_stop = X_pool[self.stop_idx]
        self.npz = Path(out_dir) / STOP_DIR / f"{run_id}.npz"
        self.json = self.npz.with_suffix(".json")
        self.rows: list[dict[str, Any]] = []
        if self.npz.exists():
            try:
                with np.load(self.npz, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                    for i, row in enumerate(meta):
                        self.rows.append({**row, "predictions": data["predictions"][i],
                                          "proba": data["proba"][i]})
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(f"{self.npz}: unreadable stopping record ({exc}); delete it "
                                f"to record again") from None

    def on_fitted(self, record: RoundRecord, learner: Learner) -> None:
        """Loop hook: record this round (dropping any later rounds of an earlier attempt)."""
        self.rows = [r for r in self.rows if r["round"] < record.round]
        self.rows.append({
            "round": record.round, "n_labels": record.n_labels,
            "accuracy": dict(record.accuracy),
            "predictions": np.asarray(learner.predict(self.X_stop), dtype=np.int64),
            "proba": np.asarray(learner.predict_proba(self.X_stop), dtype=np.float32),
        })
        buffer = io.BytesIO()
        meta = [{k: v for k, v in r.items() if k not in ("predictions", "proba")}
                for r in self.rows]
        np.savez(buffer, meta=np.array(json.dumps(meta)),
                 predictions=np.stack([r["predictions"] for r in self.rows]),
                 proba=np.stack([r["proba"] for r in self.rows]))
        atomic_write_bytes(self.npz, buffer.getvalue())

    def _first_firing(self, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded round at which ``name`` first fires (replayed from the start)."""
        criterion = build_criterion(name, params)
        for r in self.rows:
            obs = Observation(r["round"], r["n_labels"], r["predictions"],
                              r["proba"].astype(np.float64))
            if criterion.update(obs):
                return r
        return None

    def should_stop(self, record: RoundRecord) -> bool:
        """Loop predicate for ``stop_on``: whether that criterion has fired by this round
        (False without ``stop_on``). Replayed from the rows, so a resumed run agrees."""
        name = self.settings.stop_on
        if name is None or not self.rows or self.rows[-1]["round"] != record.round:
            return False
        return self._first_firing(name, self.settings.criteria[name]) is not None

    def verdicts(self, budget: int) -> dict[str, Any]:
        """Per criterion: the first round it fires, labels saved and accuracy lost."""
        if not self.rows:
            return {}
        final = self.rows[-1]
        out: dict[str, Any] = {}
        criteria = {**self.settings.criteria, "budget": {"budget": budget}}
        for name, params in criteria.items():
            fired = self._first_firing(name, params)
            out[name] = None if fired is None else {
                "round": fired["round"], "n_labels": fired["n_labels"],
                "labels_saved": final["n_labels"] - fired["n_labels"],
                "accuracy_lost": {t: final["accuracy"][t] - fired["accuracy"][t]
                                  for t in final["accuracy"]},
            }
        return out

    def finish(self, budget: int, strategy: str, seed: int) -> Path:
        """Write ``stopping/<run_id>.json`` (atomically); returns its path."""
        payload = {"strategy": strategy, "seed": seed, "stop_set": len(self.stop_idx),
                   "criteria": self.verdicts(budget)}
        if self.settings.stop_on is not None:  # the run ended at the last recorded round
            payload["stop_on"] = self.settings.stop_on
            payload["stopped_round"] = self.rows[-1]["round"] if self.rows else None
        atomic_write_text(self.json, json.dumps(payload, indent=2))
        return self.json


def stopping_table(out_dir: Path) -> pd.DataFrame:
    """Mean over seeds, per strategy × criterion × test set: how often it fired, the round
    and labels at which it did, labels saved and accuracy lost against the budget."""
    rows = []
    for path in sorted((Path(out_dir) / STOP_DIR).glob("*.json")):
        payload = json.loads(path.read_text())
        for name, v in payload["criteria"].items():
            if v is None:
                rows.append({"strategy": payload["strategy"], "criterion": name,
                             "seed": payload["seed"], "fired": 0})
                continue
            for test_set, lost in v["accuracy_lost"].items():
                rows.append({"strategy": payload["strategy"], "criterion": name,
                             "seed": payload["seed"], "fired": 1, "test_set": test_set,
                             "n_labels": v["n_labels"], "labels_saved": v["labels_saved"],
                             "accuracy_lost": lost})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    runs = frame.groupby(["strategy", "criterion"])["seed"].nunique().rename("runs")
    fired = frame[frame["fired"] == 1]
    if fired.empty:
        table = pd.DataFrame(columns=["strategy", "criterion", "test_set", "fired_runs"])
    else:
        table = fired.groupby(["strategy", "criterion", "test_set"]).agg(
            fired_runs=("seed", "nunique"), stop_labels=("n_labels", "mean"),
            labels_saved=("labels_saved", "mean"), accuracy_lost=("accuracy_lost", "mean"),
        ).reset_index()
    # criteria that never fired on a strategy still get a row (fired_runs = 0)
    table = runs.reset_index().merge(table, on=["strategy", "criterion"], how="left")
    table["fired_runs"] = table["fired_runs"].fillna(0).astype(int)
    return table[["strategy", "criterion", "test_set", "fired_runs", "runs",
                  *[c for c in ("stop_labels", "labels_saved", "accuracy_lost")
                    if c in table]]]
