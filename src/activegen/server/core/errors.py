"""What a labeling session refuses, by kind.

The session, the audit and the interchange readers raise these; the web layer maps each kind
to one HTTP status in one table (:mod:`activegen.server.web.errors`), and the command line
prints them like any :class:`~activegen.errors.ActivegenError`.
"""

from __future__ import annotations

from activegen.errors import ActivegenError, DataError


class SessionError(ActivegenError):
    """A request the labeling session refuses; the message says why."""


class NotFound(SessionError):
    """No such query, audit image or export in this session."""


class Conflict(SessionError):
    """The request disagrees with what is stored (an answer given, a lease held, a round
    final, a finished session)."""


class Gone(SessionError):
    """The thing existed but can no longer be read (an image file changed since)."""


class InvalidRequest(SessionError):
    """A request whose values make no sense here (a labeler id, a class number)."""


class InvalidAnswer(InvalidRequest):
    """An answer that is not one of the session's classes or "can't tell"."""


class InvalidImport(InvalidRequest, DataError):
    """Labels from outside (a file, an import body, a Label Studio task) that cannot be read;
    the row, task or file is named. A :class:`DataError` too: file readers raise it."""


class Unavailable(SessionError):
    """The store cannot be written now (a read-only or failing disk, a lock held too long):
    the change asked for is not stored; everything acknowledged before it is."""


class StorageFull(Unavailable):
    """The disk holding the store is full: the change asked for is not stored."""
