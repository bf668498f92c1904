"""Reading a labels file a person hands in (``--labels``, ``--import``, an import body): its
text, its JSON, and the one rule every reader applies to its rows.

A labels file comes from a spreadsheet, an export or a script, so it may be in another
encoding (a Latin-1 CSV), nested without end, or give one image two labels. Each is refused
naming the file and the place: UTF-8 is required (a byte-order mark, as Excel writes, is
accepted) and the first byte that is not is named; JSON nested too deep for the parser is
named; and two rows that give one image different labels are both named, since keeping
either one would be a silent choice.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from activegen.server.core.errors import InvalidImport


def read_labels_text(path: Path) -> str:
    """The text of labels file ``path``.

    Raises:
        InvalidImport: it cannot be read, or it is not UTF-8 (the first bad byte is named).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidImport(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidImport(f"{path}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                            "save the file as UTF-8 (a spreadsheet's 'CSV UTF-8')") from None


def parse_json_text(text: str, where: str) -> Any:
    """``text`` as JSON.

    Raises:
        InvalidImport: it is not JSON, or it is nested deeper than the parser goes.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidImport(f"{where}: not JSON ({exc})") from None
    except RecursionError:
        raise InvalidImport(f"{where}: JSON nested too deep to read") from None


class OneLabelEach:
    """Collects ``(key, label)`` rows, refusing a key given two different labels (a repeated
    identical row is kept once)."""

    def __init__(self, what: str, classes: Sequence[str] = ()) -> None:
        self.what = what
        self.classes = list(classes)
        self._seen: dict[Hashable, tuple[int, str]] = {}
        self.items: list[tuple[Any, int]] = []

    def add(self, key: Hashable, label: int, where: str) -> None:
        """Record one row; ``where`` names it.

        Raises:
            InvalidImport: ``key`` already has another label (both rows are named).
        """
        if key in self._seen:
            first, at = self._seen[key]
            if first != label:
                raise InvalidImport(f"{where}: {self.what} {key!r} is labeled "
                                    f"{self._name(label)} here but {self._name(first)} at "
                                    f"{at}; give each image one label")
            return
        self._seen[key] = (label, where)
        self.items.append((key, label))

    def _name(self, label: int) -> str:
        if label == -1:
            return "can't tell"
        return repr(self.classes[label]) if 0 <= label < len(self.classes) else str(label)
