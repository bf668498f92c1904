"""The labeling web app and its durable label store: a person as the oracle.

``activegen label CONFIG`` opens a :class:`~activegen.server.core.session.LabelSession`
(:func:`activegen.server.opening.open_session`), whose history lives in a
:class:`~activegen.server.core.store.LabelStore` (SQLite), and serves
:func:`activegen.server.web.app.create_app` over it. By concern: ``core`` (the session, its
store and events, the worker that owns the engine; no HTTP), ``interop`` (CSV, JSON and Label
Studio in and out), ``images`` (an unlabeled folder as the pool), ``web`` (the FastAPI app,
where refusals become HTTP statuses). FastAPI and uvicorn are an optional extra
(``pip install activegen[label]``); importing this package does not need them.
"""
