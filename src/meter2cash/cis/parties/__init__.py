"""Parties and contracts: people, accounts, premises, service points, service agreements and their
dated contract terms.
"""
