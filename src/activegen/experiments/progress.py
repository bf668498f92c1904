"""Timestamped progress lines for output that is not a terminal (nohup, a pipe, a batch job).

On a terminal the progress bars speak; elsewhere they print nothing until the end, so long
phases (training a generator, a t-SNE, run k of n) print one line each, with the time.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime


def plain_progress() -> bool:
    """Whether progress goes as plain lines: standard error is not a terminal."""
    return not sys.stderr.isatty()


def say(message: str) -> None:
    """One timestamped progress line on standard error."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} activegen: {message}", file=sys.stderr, flush=True)


def phase(message: str) -> None:
    """Announce a long phase when the output is not a terminal."""
    if plain_progress():
        say(message)
