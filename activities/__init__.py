"""Temporal activities: action invocation, built-in actions, projection writers."""
