"""The ``activegen`` command line: run, report, datasets, strategies, label, label-studio,
label-export, predict, tsne, gaal-quality.

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
from typing import Any, NoReturn

from activegen.errors import ActivegenError, ConfigError, DataError


def demo_config_path() -> Path:
    """The built-in demo experiment shipped inside the package."""
    return Path(str(resources.files("activegen") / "configs" / "demo.toml"))


def _seed_list(text: str) -> list[int]:
    """``--seeds 0,3,4``: the seeds, as integers."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds "
                                         "(e.g. 0,3,4)") from None
    return list(dict.fromkeys(seeds))


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from activegen.experiments.config import load_config, with_overrides
    from activegen.experiments.report import make_report
    from activegen.experiments.runner import pending, run_experiment, select_runs

    console = Console(stderr=True)
    path = Path(args.config) if args.config else demo_config_path()
    config = load_config(path, changes=args.set)
    config = with_overrides(config, device=args.device, executor=args.executor,
                            jobs=args.jobs, ray_address=args.ray_address)
    out = Path(args.out) if args.out else Path("runs") / path.stem
    partial = args.only is not None or args.seeds is not None
    # checked before the run starts: a strategy or seed the config lacks writes nothing
    specs = select_runs(config, args.only, args.seeds) if partial else None
    # Nothing is printed before the run: a refused input leaves a single error line.
    results = run_experiment(config, out, fresh=args.fresh, progress=not args.quiet,
                             specs=specs)
    left = len(pending(config, out))
    try:
        report = make_report(results, baseline=config.baseline,
                             label_counts=config.report.label_counts,
                             thresholds=tuple(config.report.thresholds), title=config.name)
        made = f"report:  {report}\nplot:    {out / 'learning_curves.png'}"
    except DataError as exc:
        if not left:  # a whole experiment that cannot be reported is an error
            raise
        # a part of the experiment may hold no active-learning run yet (only 'supervised')
        made = escape(f"report:  none yet ({exc})")  # its text is not rich markup
    console.print(f"[bold]activegen run[/bold] {path} → {out}\nresults: {results}\n{made}")
    if left:
        console.print(f"{left} run(s) of the experiment still pending: 'activegen run {path} "
                      f"--out {out}' finishes them", markup=False)
    return 0


def _pair(text: str) -> tuple[str, str]:
    """``--pairs coreset:vae-coreset``: the two strategy labels."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not PLAIN:AUGMENTED (two strategy "
                                         "labels joined by one ':', e.g. coreset:vae-coreset)")
    return parts[0], parts[1]


def _cmd_report(args: argparse.Namespace) -> int:
    from activegen.experiments.report import make_report
    from activegen.experiments.runner import saved_config

    try:  # read as data: a results folder someone sent must not run code
        config = saved_config(Path(args.dir)) if Path(args.dir).is_dir() else None
    except ConfigError as exc:  # the table alone is enough, with the default report settings
        logging.getLogger("activegen").warning("ignoring the saved config: %s", exc)
        config = None
    baseline = args.baseline or (config.baseline if config else "random")
    counts = args.at or (config.report.label_counts if config else None)
    report = make_report(args.dir, baseline=baseline, label_counts=counts,
                         title=args.title or (config.name if config else None),
                         strict_baseline=args.baseline is not None, band=args.band,
                         references=tuple(args.reference or ()),
                         pairs=tuple(args.pairs or ()),
                         screen=args.screen or args.screen_sort is not None,
                         screen_sort=args.screen_sort)
    print(report)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    import shutil
    import textwrap

    from activegen.data.registry import data_root, is_present, list_datasets

    # One block per dataset, not a table: a table squeezed to 80 columns broke file names
    # and paths mid-word. Only the description wraps, at spaces; names are printed whole.
    width = max(40, shutil.get_terminal_size().columns)
    for info in list_datasets():
        where = "(ships with a package)" if info.embedded else str(data_root(info.name))
        present = "present" if is_present(info.name) else "not present"
        print(f"{info.name} ({present})")
        print(textwrap.fill(info.description, width, initial_indent="  ",
                            subsequent_indent="  ", break_long_words=False,
                            break_on_hyphens=False))
        for name in info.files:
            print(f"  file:  {name}")
        print(f"  where: {where}")
    return 0


def _cmd_strategies(args: argparse.Namespace) -> int:
    from activegen._registry import first_doc_line
    from activegen._settings import settings_table
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    if args.markdown:
        print(settings_reference(), end="")
        return 0
    if args.settings:
        for registry in (STRATEGIES, LEARNERS, ORACLES):
            if args.settings in registry.names():
                cls = registry.get(args.settings)
                print(f"{registry.kind} {args.settings}: {first_doc_line(cls)}\n")
                print(settings_table(registry.settings_model(args.settings)))
                return 0
        raise ActivegenError(f"no strategy, learner or oracle {args.settings!r}; strategies: "
                             f"{', '.join(STRATEGIES.names())}; learners: "
                             f"{', '.join(LEARNERS.names())}; oracles: "
                             f"{', '.join(ORACLES.names())}")
    width = max(len(n) for n in STRATEGIES.names())
    for name, cls in STRATEGIES.items():
        print(f"{name:<{width}}  {first_doc_line(cls)}")
    return 0


def settings_reference() -> str:
    """Every registered component's settings as Markdown: docs/settings.md, generated."""
    from activegen._registry import first_doc_line
    from activegen._settings import settings_markdown
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    parts = ["# Settings of every component\n",
             "Generated from the settings models by `activegen strategies --markdown`; "
             "`activegen strategies --settings NAME` prints one. Nested tables (`generator`, "
             "`synthesis`, `vae`, `loss_head`, a mixed schedule's `primary`) are TOML tables "
             "inside the component's table; a table with presets also takes a preset's name "
             "(`synthesis = \"labelable\"`) or `{ preset = \"...\", key = value }`. See "
             "[configuration.md](configuration.md) for the rest of the file.\n"]
    for title, registry in (("Strategies", STRATEGIES), ("Learners", LEARNERS),
                            ("Oracles", ORACLES)):
        parts.append(f"## {title}\n")
        for name, cls in registry.items():
            if not cls.__module__.startswith("activegen."):
                continue
            parts.append(f"### `{name}`\n\n{first_doc_line(cls)}\n")
            parts.append(settings_markdown(registry.settings_model(name)))
    return "\n".join(parts)


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from activegen.experiments.schema import config_schema

    if args.kind == "label":
        from activegen.server.config import LabelConfig

        schema = config_schema(LabelConfig)
    else:
        schema = config_schema()
    text = json.dumps(schema, indent=2) + "\n"
    if args.out:
        from activegen._atomic import atomic_write_text

        atomic_write_text(Path(args.out), text)
    else:
        print(text, end="")
    return 0


def _require_label_extra() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise ActivegenError(
            f"the labeling app needs {' and '.join(missing)}: pip install 'activegen[label]'"
        )


def _images_label_config(args: argparse.Namespace) -> Any:
    """The session of ``activegen label --images DIR --classes a,b`` (merged over a config),
    or of a config with ``--budget`` alone (any session's budget can be raised)."""
    from activegen.experiments.config import read_toml
    from activegen.server.config import parse_label_config

    data: dict[str, Any] = read_toml(args.config) if args.config else {}
    image_flags = (args.images, args.classes, args.size, args.channels, args.features,
                   args.audit, args.labels)
    if args.config and "images" not in data and all(v is None for v in image_flags):
        loop = dict(data.get("loop") or {})
        loop["budget"] = args.budget
        return parse_label_config({**data, "loop": loop}, args.config)
    images = dict(data.get("images") or {})
    for key, value in (("folder", args.images), ("size", args.size),
                       ("channels", args.channels), ("features", args.features),
                       ("audit", args.audit), ("labels", args.labels)):
        if value is not None:
            images[key] = value
    if args.classes is not None:
        images["classes"] = [c.strip() for c in args.classes.split(",")]
    data["images"] = images
    data.setdefault("name", Path(images.get("folder", "images")).name or "images")
    data.setdefault("learner", {"name": "logistic-regression"})
    loop = dict(data.get("loop") or {})
    if args.budget is not None:
        loop["budget"] = args.budget
    loop.setdefault("budget", 100)
    loop.setdefault("batch", 10)
    loop.setdefault("initial", loop["batch"])
    data["loop"] = loop
    return parse_label_config(data, args.config or "command line")


def _cmd_label(args: argparse.Namespace) -> int:
    _require_label_extra()
    from activegen.server.run import serve

    images_flags = (args.images, args.classes, args.size, args.channels, args.features,
                    args.audit, args.labels, args.budget)
    config = None
    if any(v is not None for v in images_flags) or args.config is None:
        config = _images_label_config(args)
    return serve(Path(args.config) if args.config else None, host=args.host, port=args.port,
                 store=Path(args.store) if args.store else None,
                 import_file=Path(args.import_file) if args.import_file else None,
                 token=args.token, config=config)


def _cmd_label_studio(args: argparse.Namespace) -> int:
    import os

    from activegen.server.config import load_label_config
    from activegen.server.run import sync_label_studio

    images_flags = (args.images, args.classes, args.size, args.channels, args.features,
                    args.audit, args.labels, args.budget)
    if any(v is not None for v in images_flags) or args.config is None:
        config = _images_label_config(args)
    else:
        config = load_label_config(Path(args.config))
    token = args.ls_token or os.environ.get("LABEL_STUDIO_API_KEY", "")
    url = args.url or os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080")
    return sync_label_studio(config, Path(args.config) if args.config else None,
                             Path(args.store) if args.store else None, url, token,
                             args.project, args.interval, args.once)


def _cmd_predict(args: argparse.Namespace) -> int:
    from activegen.models.export import predict_files

    text, skipped = predict_files(args.model, args.inputs, args.out)
    for name, why in skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    n = text.count("\n") - 1
    if args.out:
        print(f"{n} predictions written to {args.out} ({len(skipped)} unreadable files "
              "skipped)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_label_export(args: argparse.Namespace) -> int:
    from activegen._atomic import atomic_write_text
    from activegen.server.core.store import read_answers
    from activegen.server.interop.interchange import export_source, to_csv, to_json

    stored = read_answers(Path(args.store))
    for why in stored.left_out:
        print(f"left out {args.store}: {why}", file=sys.stderr)
    try:
        source = export_source(stored.rows, stored.meta)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise DataError(f"{args.store}: not a label store (its files or audit record cannot "
                        f"be read: {str(exc)[:80]})") from None
    text = to_csv(source) if args.format == "csv" else to_json(source)
    if args.out:
        atomic_write_text(args.out, text)
        audited = f" and {len(source.audit)} audit answers" if source.audit else ""
        print(f"{len(source.answers)} answers{audited} written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")



def _cmd_tsne(args: argparse.Namespace) -> int:
    from activegen.experiments.config import load_config
    from activegen.experiments.tsne import tsne_selection
    from activegen.generative.vae import VAESettings

    result = tsne_selection(load_config(args.config), Path(args.out), n_labeled=args.labeled,
                            candidate_fraction=args.fraction, n_picks=args.picks,
                            alpha=args.alpha, seed=args.seed,
                            vae=VAESettings(latent_dim=args.latent_dim, width=args.vae_width,
                                            epochs=args.vae_epochs))
    for path in result.images:
        print(path)
    overlap = len(set(result.picks_plain) & set(result.picks_vae))
    print(f"picks shared by both selections: {overlap} of {len(result.picks_plain)}; "
          f"mean norm of task features {result.task_norm:.3f}, of alpha*VAE features "
          f"{result.vae_norm:.3f}")
    return 0


def _cmd_gaal_quality(args: argparse.Namespace) -> int:
    import json

    from activegen._atomic import atomic_write_text
    from activegen._machine import describe, machine_record, same_kind
    from activegen.experiments.config import load_config
    from activegen.experiments.gaal_quality import gaal_quality

    path = Path(args.config)
    out = Path(args.out) if args.out else Path("runs") / path.stem
    results = gaal_quality(load_config(path), out, n=args.n, threshold=args.threshold)
    for r in results:
        g = r.generated
        print(f"generator {r.key} ({', '.join(r.strategies)}): chosen epoch "
              f"{r.training.get('chosen_epoch')}, {len(r.training.get('evaluations', []))} "
              "quality evaluations")
        if r.trained_on is not None:
            here = machine_record("cpu")  # gaal_quality loads and samples on the CPU
            print(f"trained on: {describe(r.trained_on)}"
                  + ("" if same_kind(r.trained_on, here) else
                     " (not this process's kind of machine or thread count: its weights "
                     "carry that machine's float results)"))
        print("| images | expert mean confidence | labeled at threshold | Fréchet (PCA-32) |")
        print("| --- | --- | --- | --- |")
        print(f"| {g.n} generated | {g.expert_mean_confidence:.3f} | "
              f"{g.expert_usable_fraction:.3f} | {g.frechet_generated:.2f} |")
        for name, t in r.tests.items():
            print(f"| {t.n} real `{name}` | {t.expert_mean_confidence:.3f} | "
                  f"{t.expert_usable_fraction:.3f} | {t.frechet_generated:.2f} |")
        print(f"| real vs real (pool halves) | | | {g.frechet_real_halves:.2f} (floor) |")
        evaluations = r.training.get("evaluations") or []
        floor, matched = r.training.get("frechet_floor"), r.training.get("frechet_floor_matched")
        if evaluations and floor:
            best = min(evaluations, key=lambda e: e["frechet"])
            text = (f"training's own measure (500 samples vs the held-out pool part): best "
                    f"{best['frechet']:.3f} at epoch {best['epoch']:g} = "
                    f"{best['frechet'] / floor:.2f}x the floor {floor:.3f} (all training images)")
            if matched:
                text += (f", {best['frechet'] / matched:.2f}x the size-matched floor "
                         f"{matched:.3f} (500 training images)")
            print(text)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps([r.to_dict() for r in results], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="activegen",
        description="Active learning with generative models: run experiments, report, label.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment (the demo without CONFIG)",
                         description="Run every strategy at every seed of CONFIG (or, with "
                         "--only/--seeds, a part of them), resuming unfinished runs in --out, "
                         "then write results.csv and the report.")
    run.add_argument("config", nargs="?", help="TOML experiment file (default: the built-in demo)")
    run.add_argument("--out", help="output folder (default: runs/<config file name without "
                     ".toml>)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                     help="change one key of the config before it is validated (repeatable): "
                     "a dotted key and a TOML value, e.g. --set features.source='\"vae\"' "
                     "--set learner='{ name = \"linear-probe\" }' --set loop.budget=100")
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
    run.add_argument("--only", nargs="+", metavar="LABEL",
                     help="run only these strategies (their labels in the config; "
                     "'supervised' is the fully supervised reference), strategy by strategy in "
                     "this order; the others stay pending and a later run without --only "
                     "finishes them")
    run.add_argument("--seeds", type=_seed_list, metavar="K,K,...",
                     help="run only these seeds of the config (e.g. 0,1,2), strategy by "
                     "strategy; the others stay pending")
    run.set_defaults(handler=_cmd_run)

    report = sub.add_parser("report", help="plots, statistics and report.md from results.csv",
                            description="Make the report from DIR/results.csv alone.")
    report.add_argument("dir", help="an output folder of 'activegen run' (or a results.csv)")
    report.add_argument("--baseline", help="strategy the others are tested against")
    report.add_argument("--reference", action="append", metavar="STRATEGY",
                        help="also test every strategy against STRATEGY (Holm-corrected, "
                             "like the baseline; repeatable), e.g. --reference svm-active")
    report.add_argument("--pairs", type=_pair, nargs="+", metavar="PLAIN:AUGMENTED",
                        help="compare each pair side by side per label count (e.g. "
                        "coreset:vae-coreset, with and without VAE features): means, paired "
                        "difference, paired t p raw and Holm-corrected; pairs.csv and a "
                        "report.md section")
    report.add_argument("--screen", action="store_true",
                        help="add a screening table (screen.csv): per strategy the oracle's "
                        "refusal rate, and per test set the mean normalised area and the mean "
                        "accuracy at the budget, best area first")
    report.add_argument("--screen-sort", metavar="TEST_SET",
                        help="order the screening table by the area on TEST_SET (default: the "
                        "first test set; implies --screen)")
    report.add_argument("--at", type=int, nargs="+", metavar="N",
                        help="label counts shown in the summary")
    report.add_argument("--title", help="report title")
    report.add_argument("--band", choices=("ci95", "std"), default="ci95",
                        help="band around the mean curve: 95%% CI of the mean over seeds "
                             "(default) or ± 1 std over seeds")
    report.set_defaults(handler=_cmd_report)

    datasets = sub.add_parser("datasets", help="which datasets exist, which are present, where "
                              "their files go", description="List the known datasets.")
    datasets.set_defaults(handler=_cmd_datasets)

    strategies = sub.add_parser("strategies", help="list the strategies, one line each",
                                description="List the registered query strategies, or one "
                                "strategy's, learner's or oracle's settings (--settings).")
    strategies.add_argument("--settings", metavar="NAME",
                            help="print the settings of the strategy, learner or oracle NAME: "
                            "each key, its type, default and meaning")
    strategies.add_argument("--markdown", action="store_true",
                            help="print every component's settings as Markdown (what "
                            "docs/settings.md holds)")
    strategies.set_defaults(handler=_cmd_strategies)

    schema = sub.add_parser("schema", help="the JSON schema of a config file",
                            description="Write the JSON schema of an experiment (or labeling "
                            "session) config, generated from the settings models, for editors "
                            "that validate TOML against a schema.")
    schema.add_argument("--kind", choices=("experiment", "label"), default="experiment",
                        help="which config file (default: experiment)")
    schema.add_argument("--out", help="write it to this file (default: print it)")
    schema.set_defaults(handler=_cmd_schema)

    label = sub.add_parser(
        "label", help="label in the browser: an active-learning session with you as the oracle",
        description="Start the labeling web app for CONFIG (a labeling-session TOML; see "
        "docs/labeling.md). Every answer is stored in a SQLite file before it is acknowledged; "
        "running the same command again resumes the session.")
    label.add_argument("config", nargs="?", help="labeling-session TOML file (e.g. "
                       "src/activegen/configs/label-digits.toml)")
    label.add_argument("--host", help="address to listen on (default: the config's, normally "
                       "127.0.0.1); anything but loopback requires a token")
    label.add_argument("--port", type=int, help="port (default: the config's; 0 picks a free one)")
    label.add_argument("--store", help="SQLite file of the session (default: the config's "
                       "labeling.store, else labels/<config name>.sqlite)")
    label.add_argument("--import", dest="import_file", metavar="FILE",
                       help="seed the session with labels from a CSV or a Label Studio export")
    label.add_argument("--token", help="the access token (default: a random one, printed, "
                       "when listening beyond loopback); also read from ACTIVEGEN_TOKEN")
    label.add_argument("--images", metavar="DIR", help="label this folder of unlabeled images "
                       "(flat or nested, any sizes and modes) instead of the config's data")
    label.add_argument("--classes", help="the class names, comma-separated (with --images)")
    label.add_argument("--size", type=int, help="images are resized to SIZE x SIZE (default 64)")
    label.add_argument("--channels", type=int, choices=(1, 3), help="1 = grey, 3 = RGB "
                       "(default 3)")
    label.add_argument("--features", help="'pixels' (default), 'self-supervised' (an encoder "
                       "learned on the folder in the background while the first batch is "
                       "labeled; minutes, its time named before it starts; cached), 'vae' "
                       "(learned on the folder) or 'backbone:PATH' (a local torchvision "
                       "resnet18 state dict)")
    label.add_argument("--audit", type=float, help="random audit sample, never trained on, "
                       "labeled a few after each batch and ON TOP of --budget: a count or a "
                       "fraction below 1 (default 30; 0 = none, no accuracy estimate)")
    label.add_argument("--labels", metavar="FILE", help="labels already known, matched by "
                       "file name: a CSV with path and class or label columns (the page's own "
                       "export, audit answers included), the page's JSON export or a Label "
                       "Studio JSON export")
    label.add_argument("--budget", type=int, help="queries to answer, audit images not counted "
                       "(default: the config's loop.budget, else 100); a larger budget on the "
                       "same --store continues a finished session")
    label.set_defaults(handler=_cmd_label)
    studio = sub.add_parser(
        "label-studio", help="label in Label Studio: sync a session with a Label Studio project",
        description="Run a labeling session (CONFIG, or --images/--classes as for 'label') "
        "with Label Studio as the labeling interface: each round's queries become tasks of a "
        "project, in the strategy's order with the model's pre-annotations; annotations come "
        "back into the session's store and choose the next round. A Label Studio started "
        "headless (no browser to sign up in) makes its user from LABEL_STUDIO_USERNAME, "
        "LABEL_STUDIO_PASSWORD and LABEL_STUDIO_USER_TOKEN; start it with "
        "--enable-legacy-api-token and pass that token as --ls-token. See docs/labeling.md.")
    studio.add_argument("config", nargs="?", help="labeling-session TOML file")
    studio.add_argument("--url", help="the Label Studio server (default: LABEL_STUDIO_URL or "
                        "http://localhost:8080)")
    studio.add_argument("--ls-token", help="a Label Studio API token (default: "
                        "LABEL_STUDIO_API_KEY)")
    studio.add_argument("--project", type=int, help="an existing project id (default: the "
                        "store's project, else a new one)")
    studio.add_argument("--interval", type=float, default=5.0, help="seconds between syncs (5)")
    studio.add_argument("--once", action="store_true", help="sync once and exit")
    studio.add_argument("--store", help="SQLite file of the session")
    for flag, kind, text in (("--images", str, "label this folder of unlabeled images"),
                             ("--classes", str, "the class names, comma-separated"),
                             ("--size", int, "images are resized to SIZE x SIZE (64)"),
                             ("--channels", int, "1 = grey, 3 = RGB (3); as for 'label'"),
                             ("--features", str, "as for 'label'"),
                             ("--audit", float, "random audit sample, labeled on top of "
                              "--budget in 'activegen label' on the same --store (30)"),
                             ("--labels", str, "labels already known, matched by file name "
                              "(as for 'label')"),
                             ("--budget", int, "queries to answer, audit images not counted "
                              "(100)")):
        studio.add_argument(flag, type=kind, help=text)
    studio.set_defaults(handler=_cmd_label_studio)
    predict = sub.add_parser("predict", help="predict images with an exported model",
                             description="Write path,label,confidence for images with a model "
                             "file exported by the labeling app (/api/model.npz).")
    predict.add_argument("model", help="the model file (.npz)")
    predict.add_argument("inputs", nargs="+", help="image files or folders")
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    predict.set_defaults(handler=_cmd_predict)

    export = sub.add_parser("label-export", help="write a label store's answers as CSV or JSON",
                            description="Export every answer of a label store (a running "
                            "server may hold it): the same file as the page's export.")
    export.add_argument("store", help="the session's SQLite file")
    export.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="csv (default) or json: the files the page exports, with an image "
                        "folder's paths and audit answers; --labels reads either back")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(handler=_cmd_label_export)

    tsne = sub.add_parser("tsne", help="t-SNE of core-set picks with and without VAE "
                          "features (the VAE paper's Figs 5-6)",
                          description="Train CONFIG's learner on a random labeled set, let "
                          "core-set and VAE-augmented core-set pick among a random fraction of "
                          "the unlabeled pool, and plot t-SNE maps of both selections.")
    tsne.add_argument("config", help="TOML experiment file (its data and learner are used)")
    tsne.add_argument("--out", required=True, help="folder for the PNG files")
    tsne.add_argument("--labeled", type=int, default=1000, help="labeled set size (1000)")
    tsne.add_argument("--fraction", type=float, default=0.05,
                      help="fraction of the unlabeled pool drawn as candidates (0.05)")
    tsne.add_argument("--picks", type=int, default=100, help="points core-set picks (100)")
    tsne.add_argument("--alpha", type=float, default=1.0, help="weight of the VAE features")
    tsne.add_argument("--latent-dim", type=int, default=32, help="VAE latent size (32)")
    tsne.add_argument("--vae-width", type=int, default=32, help="VAE conv width (32)")
    tsne.add_argument("--vae-epochs", type=int, default=20, help="VAE epochs (20)")
    tsne.add_argument("--seed", type=int, default=0, help="seed of the labeled set, the "
                      "candidates and t-SNE (0)")
    tsne.set_defaults(handler=_cmd_tsne)

    quality = sub.add_parser("gaal-quality", help="sample quality of a GAAL config's "
                             "generators (expert confidence, Fréchet distance vs the floor)",
                             description="For every generator CONFIG's strategies use (trained "
                             "and cached by 'activegen run', or trained now), draw N samples "
                             "and report the expert oracle's mean confidence on them, the share "
                             "it would label at THRESHOLD, and their Fréchet distance (PCA-32) "
                             "to the pool against the floor of real images. See docs/gaal.md.")
    quality.add_argument("config", help="TOML experiment file with a generator strategy")
    quality.add_argument("--out", help="the experiment's output folder (its generator cache; "
                         "default runs/<config name>)")
    quality.add_argument("--n", type=int, default=1000, help="generated samples (1000)")
    quality.add_argument("--threshold", type=float, default=None,
                         help="expert confidence to count as labeled (the oracle's threshold)")
    quality.add_argument("--json", help="also write the figures to this JSON file")
    quality.set_defaults(handler=_cmd_gaal_quality)

    for name, command in sub.choices.items():  # '-v' after the subcommand works too
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log progress details")
        command.set_defaults(on_interrupt=_ON_INTERRUPT.get(
            name, "nothing was left half-written."))
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
    except OSError as exc:  # a full, read-only or unreachable disk: the machine, not a bug
        print(f"activegen: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"activegen: interrupted; {args.on_interrupt}", file=sys.stderr)
        return 130


#: what each command keeps when interrupted (every write is atomic, so none is half done)
_ON_INTERRUPT = {
    "run": "every finished round is saved. Run the same command again to resume.",
    "label": "every acknowledged answer is in the store. Run the same command again to "
             "resume the session.",
    "label-studio": "every answer pulled is in the store. Run the same command again to "
                    "resume the session.",
    "gaal-quality": "a generator whose training finished is cached.",
}


def describe_os_error(exc: OSError) -> str:
    """One line for a failed read or write: the file, what went wrong, what to do."""
    import errno

    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EIO: "an input/output error"}
    reason = reasons.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    where = f"{exc.filename}: " if exc.filename else ""
    advice = ("; what was written before is kept: free space or choose a writable place, "
              "then run the same command again"
              if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                               errno.EPERM) else "")
    return f"{where}{reason}{advice}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
