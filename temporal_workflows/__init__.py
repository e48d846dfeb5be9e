"""The interpreter workflow and its node executors (pure, deterministic code)."""
