"""Customer information and billing: parties, agreements, tariffs, bills, ledger."""
