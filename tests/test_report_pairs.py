"""``activegen report DIR --pairs PLAIN:AUGMENTED``: two strategies side by side per label
count, checked against a hand computation on a small table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from activegen.cli import main

#: accuracy per label count, one value per seed 0..3 (vae-coreset also ran a seed 4)
CORESET = {10: [0.50, 0.55, 0.60, 0.52], 20: [0.60, 0.62, 0.65, 0.61],
           40: [0.70, 0.72, 0.74, 0.69]}
VAE = {10: [0.50, 0.55, 0.60, 0.52], 20: [0.63, 0.66, 0.66, 0.65],
       40: [0.71, 0.75, 0.80, 0.70]}
VAE_SEED4 = {10: 0.9, 20: 0.9, 40: 0.9}  # no coreset run at seed 4: must not count


def _table(folder: Path) -> Path:
    rows = []
    for strategy, curve in (("coreset", CORESET), ("vae-coreset", VAE),
                            ("random", {n: [0.5] * 4 for n in CORESET})):
        for r, (n, accs) in enumerate(sorted(curve.items())):
            for seed, acc in enumerate(accs):
                rows.append({"dataset": "d", "strategy": strategy, "seed": seed, "round": r,
                             "n_labels": n, "test_set": "t", "accuracy": acc, "n_classes": 2})
    for r, (n, acc) in enumerate(sorted(VAE_SEED4.items())):
        rows.append({"dataset": "d", "strategy": "vae-coreset", "seed": 4, "round": r,
                     "n_labels": n, "test_set": "t", "accuracy": acc, "n_classes": 2})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    return folder


def test_pairs_match_a_hand_computation(tmp_path: Path) -> None:
    out = _table(tmp_path / "out")
    assert main(["report", str(out), "--pairs", "coreset:vae-coreset"]) == 0
    got = pd.read_csv(out / "pairs.csv").set_index("n_labels")
    assert list(got.index) == [10, 20, 40]
    assert set(got["plain"]) == {"coreset"} and set(got["augmented"]) == {"vae-coreset"}
    assert (got["n_pairs"] == 4).all()  # seed 4 has no coreset run
    raw = {}
    for n in (10, 20, 40):
        plain, aug = np.array(CORESET[n]), np.array(VAE[n])
        assert got.loc[n, "plain_mean"] == pytest.approx(plain.mean())
        assert got.loc[n, "plain_std"] == pytest.approx(plain.std(ddof=1))
        assert got.loc[n, "augmented_mean"] == pytest.approx(aug.mean())
        assert got.loc[n, "augmented_std"] == pytest.approx(aug.std(ddof=1))
        assert got.loc[n, "mean_diff"] == pytest.approx((aug - plain).mean())
        raw[n] = 1.0 if n == 10 else sps.ttest_rel(aug, plain).pvalue  # identical at 10
        assert got.loc[n, "p_t"] == pytest.approx(raw[n])
    assert got.loc[20, "mean_diff"] == pytest.approx(0.03)
    # Holm over the three label counts, by hand: smallest p times 3, next times 2 (never
    # below the previous), the largest times 1 (never below the previous), capped at 1
    small, mid = sorted((raw[20], raw[40]))
    first, second = min(1.0, 3 * small), min(1.0, max(3 * small, 2 * mid))
    holm = {20: first if raw[20] <= raw[40] else second,
            40: first if raw[40] < raw[20] else second, 10: 1.0}
    for n in (10, 20, 40):
        assert got.loc[n, "p_t_holm"] == pytest.approx(holm[n])
    assert got.loc[20, "p_t_holm"] > got.loc[20, "p_t"]  # the correction did something

    report = (out / "report.md").read_text()
    section = report.split("## Paired comparisons", 1)[1]
    assert "### `vae-coreset` vs `coreset`, test set t" in section
    p20, h20 = got.loc[20, "p_t"], got.loc[20, "p_t_holm"]
    assert (f"| 20 | 0.620 ± {np.std(CORESET[20], ddof=1):.3f} | "
            f"0.650 ± {np.std(VAE[20], ddof=1):.3f} | +0.030 | {p20:.3f} | {h20:.3f} | 4 |"
            in section)


def test_several_pairs_one_file(tmp_path: Path) -> None:
    out = _table(tmp_path / "out")
    assert main(["report", str(out), "--pairs", "coreset:vae-coreset",
                 "random:coreset"]) == 0
    got = pd.read_csv(out / "pairs.csv")
    assert got.groupby(["plain", "augmented"]).size().to_dict() == {
        ("coreset", "vae-coreset"): 3, ("random", "coreset"): 3}
    assert "### `coreset` vs `random`, test set t" in (out / "report.md").read_text()


def test_a_bad_pair_is_a_one_line_error_before_writing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = _table(tmp_path / "out")
    for pair, message in (("coreset", "is not PLAIN:AUGMENTED"),
                          ("coreset:bald", "'bald' is not in"),
                          ("coreset:coreset", "needs two different strategies")):
        try:
            code = main(["report", str(out), "--pairs", pair])
        except SystemExit as exc:  # argparse's own usage error
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
