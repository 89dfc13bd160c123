"""Billing: cycles and periods, the bill run, bills and their documents, rebilling and shadow billing."""
