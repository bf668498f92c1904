"""Who answers: a labeler's id, as every request that changes answers carries it."""

from __future__ import annotations

from activegen.server.core.errors import InvalidRequest

LABELER_MAX = 64


def check_labeler(labeler: str) -> str:
    """``labeler`` if it is 1 to :data:`LABELER_MAX` printable characters.

    Raises:
        InvalidRequest: otherwise.
    """
    if not labeler or len(labeler) > LABELER_MAX or not labeler.isprintable():
        raise InvalidRequest(f"labeler must be 1 to {LABELER_MAX} printable characters")
    return labeler
