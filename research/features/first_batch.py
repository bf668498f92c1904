"""Seconds from `activegen label --images DIR --features self-supervised` to its first batch,
for a folder of 2,000 photos at the default size (64x64 RGB), against --features pixels.

    OMP_NUM_THREADS=1 PYTHONPATH=src python research/features/first_batch.py [--n 2000]

The photos: Fashion-MNIST images when ~/.activegen/data/fashion-mnist is there, else the
8x8 digits, each enlarged and tinted at random (the timing does not depend on the content).
The encoder then trains in the background; the script stops once the first batch is served
and reports the session's own estimate of that training (``--train``: it waits for the
training too and reports its time).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from activegen.cli import _images_label_config, build_parser
from activegen.server.opening import open_session


def make_folder(folder: Path, n: int) -> None:
    digits = load_digits().images
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        grey = Image.fromarray((digits[i % len(digits)] * 15).astype(np.uint8), "L")
        grey = grey.resize((int(rng.integers(40, 120)),) * 2, Image.Resampling.BILINEAR)
        tint = rng.uniform(0.5, 1.0, size=3)
        rgb = (np.asarray(grey, np.float32)[..., None] * tint).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(folder / f"photo{i:05d}.png")


def first_batch_seconds(folder: Path, features: str, work: Path, train: bool = False
                        ) -> tuple[float, str]:
    args = build_parser().parse_args(
        ["label", "--images", str(folder), "--classes", ",".join(str(c) for c in range(10)),
         "--features", features])
    config = _images_label_config(args)
    config = config.model_validate({**config.model_dump(), "cache_dir": str(work / "cache")})
    started = time.perf_counter()
    session = open_session(config, work / f"{features}.sqlite")
    try:
        while not session.batch("me").queries:
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        preparation = session.features_preparation
        note = "" if preparation is None else preparation.state()["message"]
        if preparation is not None and preparation.estimate_seconds is not None:
            note += f"; estimated training {preparation.estimate_seconds:.0f} s"
        if preparation is not None and train:
            preparation.wait()
            note += f"; then: {preparation.state()['message']}"
    finally:
        session.close()
    return seconds, note


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--train", action="store_true",
                        help="also wait for the encoder and report its training time")
    options = parser.parse_args()
    n = options.n
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_folder(work / "photos", n)
        load = Path("/proc/loadavg").read_text().split()[0]
        for features in ("pixels", "self-supervised"):
            seconds, note = first_batch_seconds(work / "photos", features, work,
                                                options.train)
            print(f"{n} photos, --features {features}: first batch after {seconds:.1f} s "
                  f"(load {load}) {note}", flush=True)


if __name__ == "__main__":
    main()
