"""Progress of a long feature-training phase: a ``rich`` bar on a terminal, timestamped lines
elsewhere (a pipe, nohup, a server's log), and an optional callback for a caller's own display.

The line format is the one of :mod:`activegen.experiments.progress`; it is repeated here (four
lines) so that the feature layer does not import the experiment runner.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

#: ``on_progress(epoch, epochs, loss)``: called after each epoch (1-based) with its mean loss.
ProgressCallback = Callable[[int, int, float], None]


def say(message: str) -> None:
    """One timestamped progress line on standard error."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} activegen: {message}", file=sys.stderr, flush=True)


class EpochProgress:
    """Reports epochs of one training run (use as a context manager).

    Args:
        what: the phase, e.g. ``"self-supervised features"``.
        epochs: how many epochs the run has.
        on_progress: called after each epoch, whatever the display.
        display: ``"auto"`` (a bar on a terminal, lines elsewhere), ``"bar"``, ``"lines"`` or
            ``"none"`` (the callback only: tests, a server that shows its own).
    """

    def __init__(self, what: str, epochs: int, on_progress: ProgressCallback | None = None,
                 display: str = "auto") -> None:
        if display == "auto":
            display = "bar" if sys.stderr.isatty() else "lines"
        if display not in ("bar", "lines", "none"):
            raise ValueError(f"display must be auto, bar, lines or none, got {display!r}")
        self.what, self.epochs, self.on_progress, self.display = what, epochs, on_progress, display
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> EpochProgress:
        if self.display == "bar":
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("epoch {task.completed}/{task.total}"),
                                 TextColumn("{task.fields[loss]}"), TimeRemainingColumn(),
                                 transient=True)
            self._bar.start()
            self._task = self._bar.add_task(f"preparing {self.what}", total=self.epochs,
                                            loss="")
        elif self.display == "lines":
            say(f"preparing {self.what}: {self.epochs} epochs")
        return self

    def epoch_done(self, epoch: int, loss: float) -> None:
        """Epoch ``epoch`` (1-based) ended with mean loss ``loss``."""
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch, loss=f"loss {loss:.4f}")
        elif self.display == "lines":
            say(f"preparing {self.what}: epoch {epoch} of {self.epochs}, loss {loss:.4f}")
        if self.on_progress is not None:
            self.on_progress(epoch, self.epochs, loss)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
