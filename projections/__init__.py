"""Run-state projections in PostgreSQL: models, idempotent writers and read queries."""
