"""The ``activegen`` command line: run, report, datasets, strategies.

Errors that come from the user's input (:class:`ActivegenError`) print one clear message and
exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from activegen.errors import ActivegenError


def demo_config_path() -> Path:
    """The built-in demo experiment shipped inside the package."""
    return Path(str(resources.files("activegen") / "configs" / "demo.toml"))


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from activegen.experiments.config import load_config, with_overrides
    from activegen.experiments.report import make_report
    from activegen.experiments.runner import run_experiment

    console = Console(stderr=True)
    path = Path(args.config) if args.config else demo_config_path()
    config = with_overrides(load_config(path), device=args.device, executor=args.executor,
                            jobs=args.jobs, ray_address=args.ray_address)
    out = Path(args.out) if args.out else Path("runs") / path.stem
    console.print(f"[bold]activegen run[/bold] {path} → {out}")
    results = run_experiment(config, out, fresh=args.fresh, progress=not args.quiet)
    report = make_report(results, baseline=config.report.baseline,
                         label_counts=config.report.label_counts,
                         thresholds=tuple(config.report.thresholds), title=config.name)
    console.print(f"results: {results}\nreport:  {report}\nplot:    {out / 'learning_curves.png'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from activegen.experiments.report import make_report
    from activegen.experiments.runner import saved_config

    config = saved_config(Path(args.dir)) if Path(args.dir).is_dir() else None
    baseline = args.baseline or (config.report.baseline if config else "random")
    counts = args.at or (config.report.label_counts if config else None)
    report = make_report(args.dir, baseline=baseline, label_counts=counts,
                         title=args.title or (config.name if config else None))
    print(report)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from activegen.data.registry import data_root, is_present, list_datasets

    table = Table(title="datasets")
    for col in ("name", "present", "description", "files", "where"):
        table.add_column(col, overflow="fold")
    for info in list_datasets():
        where = "(ships with a package)" if info.embedded else str(data_root(info.name))
        table.add_row(info.name, "yes" if is_present(info.name) else "no", info.description,
                      ", ".join(info.files), where)
    Console().print(table)
    return 0


def _cmd_strategies(args: argparse.Namespace) -> int:
    from activegen._registry import first_doc_line
    from activegen.strategies import STRATEGIES

    width = max(len(n) for n in STRATEGIES.names())
    for name, cls in STRATEGIES.items():
        print(f"{name:<{width}}  {first_doc_line(cls)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="activegen",
        description="Active learning with generative models: run experiments, report, label.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment (the demo without CONFIG)",
                         description="Run every strategy at every seed of CONFIG, resuming "
                         "unfinished runs in --out, then write results.csv and the report.")
    run.add_argument("config", nargs="?", help="TOML experiment file (default: the built-in demo)")
    run.add_argument("--out", help="output folder (default: runs/<config name>)")
    run.add_argument("--fresh", action="store_true",
                     help="delete earlier results in --out instead of resuming")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.add_argument("--jobs", "-j", type=int, metavar="N",
                     help="runs at once (local worker processes, or CPUs of a local Ray); "
                     "overrides execution.jobs")
    run.add_argument("--executor", choices=("local", "ray"),
                     help="where runs execute; overrides execution.executor")
    run.add_argument("--ray-address", metavar="ADDR",
                     help="join this Ray cluster (implies --executor ray)")
    run.add_argument("--device", metavar="DEV",
                     help="auto, cpu, cuda, cuda:<i> or mps; overrides the config's device")
    run.set_defaults(handler=_cmd_run)

    report = sub.add_parser("report", help="plots, statistics and report.md from results.csv",
                            description="Make the report from DIR/results.csv alone.")
    report.add_argument("dir", help="an output folder of 'activegen run' (or a results.csv)")
    report.add_argument("--baseline", help="strategy the others are tested against")
    report.add_argument("--at", type=int, nargs="+", metavar="N",
                        help="label counts shown in the summary")
    report.add_argument("--title", help="report title")
    report.set_defaults(handler=_cmd_report)

    datasets = sub.add_parser("datasets", help="which datasets exist, which are present, where "
                              "their files go", description="List the known datasets.")
    datasets.set_defaults(handler=_cmd_datasets)

    strategies = sub.add_parser("strategies", help="list the strategies, one line each",
                                description="List the registered query strategies.")
    strategies.set_defaults(handler=_cmd_strategies)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except ActivegenError as exc:
        print(f"activegen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("activegen: interrupted; every finished round is saved. Run the same command "
              "again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
