"""How well the labelability estimate predicts the oracle's next answers: for each run of the
given strategies in an experiment folder and each round r >= 3, the estimate from the answers
of rounds < r scores round r's synthesized queries; the AUC of those scores against
named / refused, pooled over rounds and seeds, per bandwidth factor (1 = the estimate's own
bandwidth, the median distance between answers).

    python research/gaal26/labelability_auc.py OUT STRATEGY [STRATEGY ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from activegen.strategies.labelability import Labelability

FACTORS = (0.25, 0.5, 1.0, 2.0)


def main() -> None:
    out = Path(sys.argv[1])
    for strategy in sys.argv[2:]:
        scores: dict[float, list[np.ndarray]] = {f: [] for f in FACTORS}
        truth: list[np.ndarray] = []
        for run in sorted((out / "queries").glob(f"{strategy}__seed*")):
            rounds = []
            for path in sorted(run.glob("round_*.npz")):
                with np.load(path) as data:
                    rounds.append((data["samples"], data["labels"]))
            for r in range(3, len(rounds)):
                images = np.concatenate([s for s, _ in rounds[:r]])
                labels = np.concatenate([a for _, a in rounds[:r]])
                model = Labelability.from_answers(torch.from_numpy(images[labels >= 0]),
                                                  torch.from_numpy(images[labels < 0]))
                if model is None:
                    continue
                samples, answers = rounds[r]
                truth.append(answers >= 0)
                own = model.bandwidth
                for f in FACTORS:
                    model.bandwidth = own * f
                    with torch.no_grad():
                        scores[f].append(model.log_prob(torch.from_numpy(samples)).numpy())
                model.bandwidth = own
        y = np.concatenate(truth)
        line = ", ".join(f"x{f}: {roc_auc_score(y, np.concatenate(scores[f])):.3f}"
                         for f in FACTORS)
        print(f"{strategy}: {len(y)} queries, {1 - y.mean():.3f} refused; AUC {line}")


if __name__ == "__main__":
    main()
