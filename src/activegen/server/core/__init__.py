"""The labeling session without the web: its store, its events, the worker that owns the
engine, and the session's requests. Nothing here speaks HTTP; a refusal is a
:mod:`activegen.server.core.errors` exception, which the web layer maps to a status once."""
