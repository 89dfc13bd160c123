"""Payments: receipts at offices, from agents and gateways; allocation of money to open items."""
