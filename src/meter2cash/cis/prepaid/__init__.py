"""Prepaid: wallets, the daily prepaid charge, balance alerts, and the change of payment mode."""
