"""The Tempoflow HTTP API (FastAPI)."""
