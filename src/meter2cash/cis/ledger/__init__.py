"""The double-entry ledger: chart of accounts, journal entries, statements and receivables reports."""
