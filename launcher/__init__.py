"""Launchers: the CLI, the dev stack, the worker process, embedded servers, the remote client."""
