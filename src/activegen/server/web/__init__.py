"""The labeling web app: FastAPI over a :class:`~activegen.server.core.session.LabelSession`.
The only place where the session's refusals become HTTP statuses
(:mod:`activegen.server.web.errors`)."""
