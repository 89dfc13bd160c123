"""Money-in tables: payments, wallets, gateway orders, collections, notifications."""

from __future__ import annotations
