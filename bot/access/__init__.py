"""Who may ask, and who may see an answer: membership, Databricks identity, per-domain policy."""

from bot.access.gate import AccessGate, Refusal, gate_for
from bot.access.policy import AccessPolicy, PolicyError, load_policy

__all__ = ["AccessGate", "AccessPolicy", "PolicyError", "Refusal", "gate_for", "load_policy"]
