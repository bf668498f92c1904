"""Experiments: configuration, runner, results, statistics and reports."""
