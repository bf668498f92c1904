"""How far each stopping criterion was from firing, from a run folder's stopping records.

    PYTHONPATH=src python scripts/stopping_margins.py OUT_DIR

Reads ``OUT_DIR/stopping/<strategy>__seed<s>.npz`` (per-round stop-set predictions and
probabilities) and prints, per strategy over its runs and rounds: the largest Cohen's κ between
successive rounds' predictions (stabilizing predictions needs ≥ 0.99), the smallest fraction of
changed predictions (classification change needs 0), and the smallest maximum and mean
entropy over the stop set (max-/overall-uncertainty: ≤ 0.1 / 0.05 nats by default).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    rows: dict[str, list[list[float]]] = {}
    for path in sorted((Path(sys.argv[1]) / "stopping").glob("*.npz")):
        match = re.fullmatch(r"(.+)__seed\d+\.npz", path.name)
        if match is None:
            continue
        with np.load(path, allow_pickle=False) as data:
            pred, proba = data["predictions"], data["proba"]
        if len(pred) < 2:
            continue
        kappa = [cohen_kappa_score(pred[i - 1], pred[i]) for i in range(1, len(pred))]
        changed = [float((pred[i - 1] != pred[i]).mean()) for i in range(1, len(pred))]
        entropy = -(proba * np.log(np.clip(proba, 1e-300, 1.0))).sum(axis=-1)
        r = rows.setdefault(match.group(1), [[], [], [], []])
        r[0].append(max(kappa))
        r[1].append(min(changed))
        r[2].append(float(entropy.max(axis=1).min()))
        r[3].append(float(entropy.mean(axis=1).min()))
    print("| strategy | max κ | min changed fraction | min max-entropy (nats) | min mean entropy |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {max(r[0]):.3f} | {min(r[1]):.3f} | {min(r[2]):.2f} | "
              f"{min(r[3]):.2f} |")


if __name__ == "__main__":
    main()
