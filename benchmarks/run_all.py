"""Run every benchmark in this folder and print one table.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--device auto|cpu|cuda]

A benchmark is a module ``benchmarks/bench_<name>.py``. One that defines
``run(quick: bool) -> list[dict]`` (see README.md) contributes rows to the table; one that
has only a ``main()`` is run as a script and its own output is shown (skipped with
``--quick``). With ``--device auto`` on a machine with CUDA, benchmarks whose ``run``
accepts ``device`` run once on the CPU and once on CUDA.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Benchmarks other parts of the project contribute; listed so that a missing one is named.
EXPECTED = ["loop", "parallel", "kcenter", "gaal", "models"]
COLUMNS = ["benchmark", "case", "value", "unit", "baseline", "baseline_value", "ratio"]


def discover() -> list[str]:
    found = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    return found + [name for name in EXPECTED if name not in found]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="activegen benchmarks", show_lines=False)
    for column in COLUMNS:
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("value", "baseline_value", "ratio")
                         else "left")
    for r in rows:
        table.add_row(*[_fmt(r.get(c, "")) for c in COLUMNS])
    Console(width=180).print(table)


def run_module(name: str, quick: bool, devices: list[str]) -> tuple[list[dict], str | None]:
    """Rows of one benchmark, or a note saying why there are none."""
    path = HERE / f"bench_{name}.py"
    if not path.exists():
        return [], f"bench_{name}.py not available on this branch"
    try:
        module = importlib.import_module(f"bench_{name}")
    except Exception as exc:  # a benchmark that cannot import must not stop the others
        return [], f"bench_{name}: cannot import: {type(exc).__name__}: {exc}"
    run = getattr(module, "run", None)
    if run is None:
        if quick or not hasattr(module, "main"):
            return [], (f"bench_{name}: no run(quick) function; run `python {path.name}` "
                        "for its own output")
        print(f"\n=== bench_{name}.py (its own output) ===", flush=True)
        done = subprocess.run([sys.executable, str(path)], cwd=HERE, check=False)
        return [], (None if done.returncode == 0
                    else f"bench_{name}.py exited with status {done.returncode}")
    takes_device = "device" in inspect.signature(run).parameters
    rows: list[dict] = []
    for device in devices if takes_device else [None]:
        kwargs = {"device": device} if device else {}
        try:
            for r in run(quick=quick, **kwargs):
                if device:
                    r = {**r, "case": f"{r['case']} [{device}]"}
                rows.append(r)
        except Exception:
            return rows, f"bench_{name} failed:\n{traceback.format_exc()}"
    return rows, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and print one table.")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="e.g. loop parallel")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import torch

    if args.device == "auto":
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    else:
        devices = [args.device]
    names = args.only or discover()
    rows: list[dict] = []
    notes: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        got, note = run_module(name, args.quick, devices)
        rows += got
        if note:
            notes.append(note)
        print(f"  bench_{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print_table(rows)
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
