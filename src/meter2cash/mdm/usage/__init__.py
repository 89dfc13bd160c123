"""Usage: what the MDM gives billing (bill determinants and daily usage per service point)."""
