"""Tracking: the ledger, completion, redrive, reports, rejects and reason codes."""
