"""Changes of contract: sanctioned load, contract demand, tariff and payment mode from a date,
with the rebilling and settlement they cause."""
