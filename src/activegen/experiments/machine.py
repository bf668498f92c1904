"""Which machine computed a run: the facts that decide its floating-point results.

A run's numbers are deterministic for a seed only on one kind of machine: the CPU's vector
instructions pick torch's and BLAS's kernels, and those change the last bits of a trained
generator, a synthesis path or a neural learner, and so which images are asked about (the
GAAL study's runs, ``research/gaal/study.md``, differ between an AVX-512 and an AVX2 machine;
the linear baselines' do not). Each finished run's manifest records this, and
``activegen report`` says when an experiment's runs come from more than one kind of machine.

A run that was stopped and resumed may have been computed in parts by different machines:
each part notes its machine in the run's machine log (``checkpoints/<run>.machines.json``)
before it computes anything, and the finished run's manifest names, beside the machine that
finished it, every other kind of machine that computed rounds it kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import pandas as pd

from activegen._atomic import atomic_write_text
from activegen._machine import (
    RESULT_FIELDS,
    THREADS,
    describe,
    is_machine_record,
    machine_record,
    same_kind,
)
from activegen.experiments.results import is_finished_run, manifest_path

__all__ = [
    "NOT_RECORDED",
    "RESULT_FIELDS",
    "THREADS",
    "UNKNOWN_MACHINE",
    "RunProvenance",
    "describe",
    "is_machine_record",
    "log_machine",
    "machine_kinds",
    "machine_log_path",
    "machine_record",
    "machines_table",
    "other_kinds",
    "read_provenance",
    "run_machine",
    "run_resumed_from",
    "same_kind",
]

log = logging.getLogger("activegen")

#: A machine log's entry for the parts of a run whose log could not be read back.
UNKNOWN_MACHINE = {key: "unknown (damaged machine log)" for key in RESULT_FIELDS}


def machine_log_path(checkpoint: Path) -> Path:
    """The machine log beside a run's checkpoint ``checkpoints/<run>.npz``."""
    return checkpoint.with_name(checkpoint.stem + ".machines.json")


def log_machine(checkpoint: Path, record: dict[str, str]) -> list[dict[str, str]]:
    """Note ``record`` as the machine that computes the next part of the run whose checkpoint
    is ``checkpoint``, and return the machines that computed its parts so far, this one last.

    Called before the run computes anything. Without a checkpoint the run starts from its
    first round, so the log starts afresh; with one, this machine is appended (unless it is
    the last one's kind). A log that is not a list of machine records is named in a warning
    and read as one part computed by :data:`UNKNOWN_MACHINE`. Written atomically.
    """
    path = machine_log_path(checkpoint)
    history: list[dict[str, str]] = []
    if checkpoint.exists() and path.exists():
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            entries = None
        if _is_machine_list(entries):
            history = entries
        else:
            log.warning("%s: not a machine log; the run's earlier rounds are recorded as "
                        "computed by an unknown machine", path)
            history = [dict(UNKNOWN_MACHINE)]
    if not history or not same_kind(history[-1], record):
        history.append(dict(record))
    else:
        history[-1] = dict(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(history, indent=2))
    return history


def other_kinds(history: Sequence[dict[str, str]],
                record: dict[str, str]) -> list[dict[str, str]]:
    """The machines of ``history`` not of ``record``'s kind, each kind once, in order."""
    found: list[dict[str, str]] = []
    for entry in history:
        if not same_kind(entry, record) and not any(same_kind(entry, f) for f in found):
            found.append(dict(entry))
    return found


@dataclass(frozen=True)
class RunProvenance:
    """What a finished run's manifest says about where its numbers come from, each field
    checked as it is read back (a field that is not what it should be reads as unknown).

    Attributes:
        machine: the machine that finished the run (``None``: not recorded, or not a record).
        resumed_from: the other kinds of machine that computed rounds of it before a resume.
        artefacts: the trained artefacts its strategy used, ``{"kind", "key"}`` and, where
            known, ``"trained_on"`` (a ``trained_on`` that is not a machine record is dropped).
    """

    machine: dict[str, str] | None = None
    resumed_from: tuple[dict[str, str], ...] = ()
    artefacts: tuple[dict[str, Any], ...] = ()

    def trained_elsewhere(self) -> list[str]:
        """The artefacts trained on another kind of machine (or thread count) than the one
        that finished the run, each ``"kind key: trainer"``; empty where either machine is
        not recorded."""
        if self.machine is None:
            return []
        return [f"{a['kind']} {a['key']}: {describe(a['trained_on'])}" for a in self.artefacts
                if "trained_on" in a and not same_kind(a["trained_on"], self.machine)]


def read_provenance(path: Path) -> RunProvenance:
    """The :class:`RunProvenance` of the finished run ``path`` (its manifest read once). Call
    it on a run that :func:`~activegen.experiments.results.is_finished_run` accepted."""
    try:
        manifest = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return RunProvenance()
    if not isinstance(manifest, dict):
        return RunProvenance()
    machine = manifest.get("machine")
    resumed = manifest.get("resumed_from")
    return RunProvenance(machine if is_machine_record(machine) else None,
                         tuple(resumed) if _is_machine_list(resumed) else (),
                         _artefacts(manifest.get("artefacts")))


def _artefacts(value: object) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    found = []
    for entry in value:
        if not (isinstance(entry, dict) and isinstance(entry.get("kind"), str)
                and isinstance(entry.get("key"), str)):
            return ()
        clean: dict[str, Any] = {"kind": entry["kind"], "key": entry["key"]}
        if is_machine_record(entry.get("trained_on")):
            clean["trained_on"] = entry["trained_on"]
        found.append(clean)
    return tuple(found)


def run_machine(path: Path) -> dict[str, str] | None:
    """The machine that finished the run ``path`` (:func:`read_provenance`)."""
    return read_provenance(path).machine


def run_resumed_from(path: Path) -> list[dict[str, str]]:
    """The other kinds of machine that computed rounds of the finished run ``path`` before it
    was resumed (:func:`read_provenance`); empty for a run of one kind of machine."""
    return list(read_provenance(path).resumed_from)


def _is_machine_list(value: object) -> TypeGuard[list[dict[str, str]]]:
    """Whether ``value`` read back from disk (a machine log, a manifest's ``resumed_from``)
    is a list of machine records."""
    return isinstance(value, list) and all(is_machine_record(e) for e in value)


#: What a run's table shows where its manifest has no machine record.
NOT_RECORDED = "not recorded"


def machines_table(out_dir: Path) -> pd.DataFrame:
    """One row per finished run under ``out_dir/runs``: its strategy, seed, the
    result-relevant fields of the machine that finished it (:data:`NOT_RECORDED` where its
    manifest predates machine records), its thread count (:data:`THREADS`; not recorded
    before thread counts were) and ``resumed_from``: the other kinds of machine that
    computed rounds of it before a resume (:func:`describe` of each, ``" | "`` between; empty
    for a run computed by one kind) and ``trained_elsewhere``: its artefacts trained on
    another kind of machine (:meth:`RunProvenance.trained_elsewhere`, ``" | "`` between).
    Runs that fail their manifest are left out (the results table refuses them anyway)."""
    rows = []
    for path in sorted((Path(out_dir) / "runs").glob("*.csv")):
        if not is_finished_run(path):
            continue
        head = pd.read_csv(path, nrows=1, usecols=["strategy", "seed"])
        if head.empty:
            continue
        provenance = read_provenance(path)
        machine = provenance.machine or {}
        rows.append({"run": path.stem, "strategy": str(head["strategy"].iloc[0]),
                     "seed": int(head["seed"].iloc[0]),
                     **{key: machine.get(key, NOT_RECORDED) for key in RESULT_FIELDS},
                     THREADS: machine.get(THREADS, NOT_RECORDED),
                     "resumed_from": " | ".join(describe(m) for m in provenance.resumed_from),
                     "trained_elsewhere": " | ".join(provenance.trained_elsewhere())})
    return pd.DataFrame(rows, columns=["run", "strategy", "seed", *RESULT_FIELDS, THREADS,
                                       "resumed_from", "trained_elsewhere"])


def machine_kinds(runs: pd.DataFrame) -> pd.DataFrame:
    """The distinct machines of :func:`machines_table`, most runs first: how many runs each
    computed and of which strategies."""
    if runs.empty:
        return pd.DataFrame(columns=["machine", "runs", "strategies", *RESULT_FIELDS])
    grouped = runs.groupby(list(RESULT_FIELDS), sort=False, dropna=False)
    kinds = grouped.agg(runs=("run", "size"),
                        strategies=("strategy", lambda s: ", ".join(sorted(set(s)))))
    kinds = kinds.reset_index().sort_values("runs", ascending=False, kind="stable")
    kinds.insert(0, "machine", [f"M{i + 1}" for i in range(len(kinds))])
    return kinds[["machine", "runs", "strategies", *RESULT_FIELDS]].reset_index(drop=True)
