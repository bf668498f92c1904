"""Oracles: who answers a query (ground truth, an expert model, a person)."""

from activegen._registry import Registry
from activegen.oracles.base import ABSTAIN, Oracle, OracleError, PoolOracle

ORACLES: Registry[Oracle] = Registry("oracle")
ORACLES.register(PoolOracle.name)(PoolOracle)

__all__ = ["ABSTAIN", "ORACLES", "Oracle", "OracleError", "PoolOracle"]
