"""Helpers for the tests of the shared-settings tables (``[generator]``, ``[synthesis]``)."""

from __future__ import annotations

import copy


def written_per_strategy(data: dict, table: str, users: set[str]) -> dict:
    """``data`` with its ``[table]`` copied by hand into each strategy named in ``users`` and
    into a mixed schedule's primary (what a config looked like before the table existed)."""
    data = copy.deepcopy(data)
    shared = data.pop(table)
    for entry in data["strategies"]:
        if entry["name"] in users:
            for key, value in shared.items():
                entry.setdefault(key, value)
        elif entry["name"] == "mixed" and entry.get("primary", "gaal") in users:
            entry["primary_params"] = {**shared, **entry.get("primary_params", {})}
    return data


def small_gaal_config(**extra: object) -> dict:
    """A tiny GAAL experiment on the embedded digits, with ``extra`` top-level keys."""
    data = {
        "seeds": [0],
        "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
        "loop": {"initial": 4, "batch": 2, "budget": 8},
        "strategies": [{"name": "gaal"}, {"name": "random"}],
    }
    data.update(extra)
    return data
