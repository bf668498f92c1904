"""Labeling a folder of unlabeled images: the folder as a session's pool (its files, features,
an audit sample, known labels) and the linear model to leave with. The session itself is the
one of :mod:`activegen.server.core`; only its pool differs."""
