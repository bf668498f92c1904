"""A small GAAL experiment config for the tests of config tables and run artefacts."""

from __future__ import annotations


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
