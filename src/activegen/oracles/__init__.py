"""Oracles: who answers a query (ground truth, an expert model, a person)."""

from activegen._registry import Registry
from activegen.oracles.base import ABSTAIN, Oracle, OracleError, PoolOracle

ORACLES: Registry[Oracle] = Registry("oracle")
ORACLES.register(PoolOracle.name)(PoolOracle)

from activegen.oracles.expert import ExpertOracle, NoisyOracle  # noqa: E402 - needs ORACLES

ORACLES.register(ExpertOracle.name)(ExpertOracle)
ORACLES.register(NoisyOracle.name)(NoisyOracle)

__all__ = ["ABSTAIN", "ORACLES", "ExpertOracle", "NoisyOracle", "Oracle", "OracleError",
           "PoolOracle"]
