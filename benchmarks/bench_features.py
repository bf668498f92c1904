"""Feature sources on this CPU: self-supervised training time and extraction speed, next to
pixels and today's VAE features measured in the same run.

    PYTHONPATH=src python benchmarks/bench_features.py [--quick] [--threads N]

Data: the 10,000 mnist10k digits (28×28 grey) where they are present, else 10,000 random
28×28 images (the costs do not depend on the content). ``--quick``: 1,000 images, one epoch.

Each phase runs in a fresh subprocess that loads the images and then times the phase alone
(wall clock); its peak memory is the process's peak resident set size (Linux ``VmHWM``, reset
through ``/proc/self/clear_refs`` after the images are loaded) minus the resident size then:
the extra memory the phase needed. Rows:

- training: the self-supervised encoder with its default settings (every epoch), against the
  ``vae`` features' VAE (:data:`activegen.models.features.VAE_SETTINGS`) on the same images;
- extraction: images per second of the trained encoder, against pixels (a reshape: the floor
  any learned feature pays over) and against the VAE's encoder;
- peak memory of training, against the pool's own size as float32.

The machine is shared, so times are noisy; the ratios within one run are what count. The
1-minute load average before each phase is kept in the rows (``load``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script or imported by run_all
    from _common import row
except ImportError:  # pragma: no cover
    from benchmarks._common import row

N_FULL, N_QUICK = 10_000, 1_000


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def images(n: int) -> tuple[np.ndarray, str]:
    """``n`` images float32 [n, 1, 28, 28] and what they are."""
    from activegen.data import is_present, load_dataset

    if is_present("mnist10k"):
        return load_dataset("mnist10k", "all").to_float()[:n], f"{n:,} mnist10k 28x28"
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 28, 28), dtype=np.float32), f"{n:,} random 28x28"


def child(phase: str, data_path: str, epochs: str, threads: str) -> None:
    """One phase in this fresh process; prints ``{"seconds", "peak_mb", ...}``."""
    import torch

    from activegen.features import PixelSource, SelfSupervisedSettings, SelfSupervisedSource
    from activegen.generative.vae import VAESettings, encode, train_vae
    from activegen.models.features import VAE_SETTINGS

    torch.set_num_threads(int(threads))
    X = np.load(data_path)
    settings = SelfSupervisedSettings()
    if int(epochs):
        settings = settings.model_copy(update={"epochs": int(epochs)})
    vae_settings = VAESettings(**{**VAE_SETTINGS.__dict__,
                                  **({"epochs": int(epochs)} if int(epochs) else {})})
    ssl = SelfSupervisedSource(settings, threads=int(threads), display="none")
    if phase in ("ssl-extract", "vae-extract"):  # untrained weights extract just as fast
        if phase == "ssl-extract":
            ssl.load_state_arrays(_fresh_arrays(settings, X.shape[1:]), X.shape[1:])
        else:
            vae, _ = train_vae(X[:2], VAESettings(**{**vae_settings.__dict__, "epochs": 1}))
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if phase == "ssl-train":
        ssl.fit(X)
        assert ssl.training is not None
        extra = {"epochs": len(ssl.training.losses), "first_loss": ssl.training.losses[0],
                 "last_loss": ssl.training.losses[-1]}
    elif phase == "vae-train":
        _, history = train_vae(X, vae_settings)
        extra = {"epochs": len(history)}
    elif phase == "ssl-extract":
        ssl.transform(X)
    elif phase == "vae-extract":
        encode(vae, X)
    elif phase == "pixels-extract":
        PixelSource().transform(X)
    else:
        raise ValueError(phase)
    seconds = time.perf_counter() - start
    peak_mb = (_rss_kib("VmHWM") - before) / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **extra}))


def _fresh_arrays(settings: Any, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    from activegen.features.self_supervised import build_encoder

    return {k: v.numpy() for k, v in build_encoder(settings, shape).state_dict().items()}


def run_child(phase: str, data: Path, epochs: int, threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    load = os.getloadavg()[0]
    done = subprocess.run([sys.executable, __file__, "--child", phase, str(data), str(epochs),
                           str(threads)], check=True, capture_output=True, text=True, env=env)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def run(quick: bool = False, threads: int = 1) -> list[dict]:
    """Rows in the convention of ``benchmarks/README.md``."""
    n = N_QUICK if quick else N_FULL
    epochs = 1 if quick else 0  # 0: the defaults' epochs
    X, what = images(n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "images.npy"
        np.save(data, X)
        r = {p: run_child(p, data, epochs, threads) for p in
             ("ssl-train", "vae-train", "pixels-extract", "ssl-extract", "vae-extract")}
    ssl_epochs, vae_epochs = r["ssl-train"]["epochs"], r["vae-train"]["epochs"]
    case = f"{what}, {threads} thread(s)"
    rows.append(row("self-supervised training", f"{case}, {ssl_epochs} epochs (defaults)",
                    r["ssl-train"]["seconds"], "s", f"vae features' VAE, {vae_epochs} epochs",
                    r["vae-train"]["seconds"], load=r["ssl-train"]["load"],
                    loss=(r["ssl-train"]["first_loss"], r["ssl-train"]["last_loss"])))
    rate = {p: n / r[p]["seconds"] for p in ("pixels-extract", "ssl-extract", "vae-extract")}
    rows.append(row("feature extraction", f"self-supervised, {case}", rate["ssl-extract"],
                    "images/s", "pixels", rate["pixels-extract"], load=r["ssl-extract"]["load"]))
    rows.append(row("feature extraction", f"self-supervised, {case}", rate["ssl-extract"],
                    "images/s", "vae features", rate["vae-extract"],
                    load=r["vae-extract"]["load"]))
    pool_mb = X.nbytes / 2**20
    rows.append(row("peak memory", f"self-supervised training, {case}",
                    r["ssl-train"]["peak_mb"], "MB", "the pool as float32", pool_mb))
    rows.append(row("peak memory", f"vae training, {case}", r["vae-train"]["peak_mb"], "MB",
                    "the pool as float32", pool_mb))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every phase (1 on a busy shared machine, where "
                             "OpenMP spin-waiting makes 2 threads slower than 1)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    for r in run(args.quick, args.threads):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
