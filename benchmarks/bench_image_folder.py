"""Time of the practitioner's path on an unlabeled folder of 64×64 RGB images.

    python benchmarks/bench_image_folder.py               # 10,000 images (the docs' numbers)
    python benchmarks/bench_image_folder.py --n 1000      # a quick smoke run

Writes ``--n`` PNG files (rendered squares and discs, two classes), opens an image-folder
session with the default feature extractor (``pixels``) and a logistic regression, answers
``--rounds`` rounds of 10 with the truth, and prints: the time to open the session (reading
the files and extracting features, once), the time to open it again on a new store (the
images from the folder cache), the median time from the label that closes a round to the next
round being ready (the background worker's refit on every answer plus the strategy's query
over the whole pool), and the
time of ``activegen predict`` on all the files with the exported model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def make_folder(root: Path, n: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        label = int(rng.integers(2))
        image = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(0, 100, 3)))
        draw = ImageDraw.Draw(image)
        x0, y0 = (int(v) for v in rng.integers(16, 48, 2))
        r = int(rng.integers(8, 16))
        box = (x0 - r, y0 - r, x0 + r, y0 + r)
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        (draw.rectangle if label else draw.ellipse)(box, fill=colour)
        name = f"{i // 1000:02d}/img{i:05d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name)
        truth[name] = label
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)

    from activegen.models.export import predict_files
    from activegen.server.config import parse_label_config
    from activegen.server.opening import open_session

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        t0 = time.perf_counter()
        truth = make_folder(folder, args.n)
        print(f"wrote {args.n} PNG files in {time.perf_counter() - t0:.1f} s")
        config = parse_label_config({
            "name": "bench", "images": {"folder": str(folder), "classes": ["disc", "square"],
                                        "size": 64, "channels": 3, "audit": 30},
            "learner": {"name": "logistic-regression"},
            "loop": {"initial": 10, "batch": 10, "budget": 10 * (args.rounds + 1)}})
        t0 = time.perf_counter()
        session = open_session(config, Path(tmp) / "s.sqlite")
        session.wait_ready()  # the background worker prepares the first batch
        assert session.files is not None
        paths = session.files
        opened = time.perf_counter() - t0
        print(f"open (read {args.n} files, pixel features, first random batch): {opened:.2f} s")
        closing = []
        try:
            for _ in range(args.rounds + 1):
                rows = session.batch("bench").queries
                if not rows:
                    break
                for row in rows[:-1]:
                    session.label(row.id, truth[paths[row.pool_index]], "bench")
                last = rows[-1]
                t0 = time.perf_counter()
                session.label(last.id, truth[paths[last.pool_index]], "bench")
                session.wait_ready()  # the round's refit and query run in the worker
                closing.append(time.perf_counter() - t0)
            model_file = session.model_file()
            # the query's decision values over the pool: blocked float64 (as the linear
            # learners compute them) vs one whole-pool float64 copy (as they did before)
            learner, X = session.learner, session.X_pool
            coef, intercept = learner.linear_weights()  # type: ignore[union-attr]
            blocked, whole = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                learner.predict_proba(X)  # type: ignore[union-attr]
                blocked.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _ = X.reshape(len(X), -1).astype(np.float64) @ coef.T + intercept
                whole.append(time.perf_counter() - t0)
            print(f"pool decision values ({len(X)} x {X[0].size}): blocked "
                  f"{min(blocked):.3f} s, whole-pool float64 copy {min(whole):.3f} s "
                  f"(ratio {min(blocked) / min(whole):.2f}; best of 3 each)")
        finally:
            session.close()
        per_round = closing[:-1] or closing  # the last closing label only fits (budget spent)
        print(f"per round (refit on all answers + query over {len(paths)} images): "
              f"median {np.median(per_round):.3f} s, max {max(per_round):.3f} s "
              f"over {len(per_round)} rounds")
        t0 = time.perf_counter()  # the same folder again: decoded images from the disk cache
        open_session(config, Path(tmp) / "again.sqlite").close()
        print(f"reopen on a new store (images from the folder cache): "
              f"{time.perf_counter() - t0:.2f} s")
        model_path = Path(tmp) / "model.npz"
        model_path.write_bytes(model_file)
        t0 = time.perf_counter()
        text, _ = predict_files(model_path, [folder], Path(tmp) / "preds.csv")
        took = time.perf_counter() - t0
        rows = [line.split(",") for line in text.strip().split("\n")[1:]]
        accuracy = np.mean([("square" if truth[p] else "disc") == lab for p, lab, _ in rows])
        print(f"predict {len(rows)} files: {took:.2f} s ({len(rows) / took:.0f} images/s); "
              f"accuracy {accuracy:.3f} after {10 * len(closing)} labels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
