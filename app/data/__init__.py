"""Data-access functions: take a session, flush, never commit (routes own transactions)."""
