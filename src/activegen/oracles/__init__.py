"""Oracles: who answers a query (ground truth, an expert model, a person)."""

from activegen.oracles.base import ABSTAIN, ORACLES, Oracle, OracleError, PoolOracle
from activegen.oracles.expert import ExpertOracle, NoisyOracle

ORACLES.register(PoolOracle.name)(PoolOracle)

ORACLES.register(ExpertOracle.name)(ExpertOracle)
ORACLES.register(NoisyOracle.name)(NoisyOracle)

__all__ = ["ABSTAIN", "ORACLES", "ExpertOracle", "NoisyOracle", "Oracle", "OracleError",
           "PoolOracle"]
