"""The audit log: who changed what, when, with the state before and after (master data, VEE
decisions, rule sets, reading limits, contract terms)."""
