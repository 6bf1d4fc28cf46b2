"""Pricing, attribution, the ledger, budgets and allowed hours."""
