"""Membership-inference attacks: the attacks on model outputs (:mod:`.mia`), their metrics and the
DP ceiling check (:mod:`.metrics`), the attacker's reference models and queries
(:mod:`.references`) and the ``biospike attack`` / ``attack-train`` / ``attack-sweep`` stages
(:mod:`.cli`)."""

__all__ = ["cli", "metrics", "mia", "references"]
