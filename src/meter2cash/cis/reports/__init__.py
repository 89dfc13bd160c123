"""Reports over the whole CIS: receivables (statements, ageing, collections by channel, revenue
by tariff) read from the ledger, bills and payments."""
