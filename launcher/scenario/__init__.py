"""Scenario tests: run a definition's scenarios on the real interpreter workflow with
mocked actions, on Temporal's time-skipping test server (``tempoflow test``)."""
