"""Deterministic guardrails for one evaluation (no wall clock: replays must agree)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ExpressionLimits(BaseModel):
    """Budgets of a single evaluation. Defaults keep the worst case well under Temporal's
    2-second workflow-task deadlock detector on a slow machine (see ``bench/``).

    A run pins the limits it started with (they travel in its input), so changing the
    settings never changes how a running workflow replays.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_steps: int = Field(default=100_000, ge=100)
    """Evaluation steps: one per AST node visited, plus one per 10 items of every sequence
    a node produces."""
    max_depth: int = Field(default=200, ge=10, le=1000)
    """Nesting of evaluations (recursion through user functions counts)."""
    max_sequence: int = Field(default=100_000, ge=10)
    """Items of a range (``[1..n]``) or of any array a function returns."""
    max_string: int = Field(default=1_000_000, ge=100)
    """Characters of any string built (``&``, ``$pad``, ``$join``…)."""
    max_output_bytes: int = Field(default=1_048_576, ge=1024)
    """JSON-encoded size of the result."""
    max_cpu_ms: int = Field(default=1000, ge=50, le=10_000)
    """Backstop: CPU time of the evaluating thread (``TF2007``), counted from its ~500th
    step (the clock is not read for short evaluations). The counted budgets end
    every known runaway far earlier; this catches work no counter sees. It reads a clock,
    so keep it well above what the counted budgets allow (~0.5 s measured)."""
    metered: bool = True
    """Charge the work done inside built-ins (regex matches, ``$distinct``, ``in``, ``=``,
    ``$replace``) to ``max_steps`` and keep the CPU backstop. The interpreter turns it off
    for runs started before it existed, so their histories replay unchanged."""


DEFAULT_LIMITS = ExpressionLimits()
