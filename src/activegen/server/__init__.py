"""The labeling web app and its durable label store: a person as the oracle.

``activegen label CONFIG`` serves :func:`activegen.server.app.create_app` over a
:class:`activegen.server.session.LabelSession`, whose state lives in a
:class:`activegen.server.store.LabelStore` (SQLite). FastAPI and uvicorn are an optional
extra (``pip install activegen[label]``); importing this package does not need them.
"""
