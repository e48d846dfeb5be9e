"""Evaluate an expression against sample data, exactly as a run would (for editors)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import Reader, SettingsDep
from app.schemas import ExpressionEvaluate, ExpressionResult
from expression import EvalContext, ExpressionError, evaluate
from expression.analysis import ENVELOPE_ROOTS, analyze
from tempoflow.errors import Unprocessable

router = APIRouter(prefix="/v1/expressions", tags=["expressions"])


def _problem(errors: list[dict[str, Any]]) -> Unprocessable:
    return Unprocessable(
        "the expression failed",
        code="expression_invalid",
        errors=errors,
        hint="position is the character offset in the expression",
    )


@router.post("/evaluate", response_model=ExpressionResult)
async def evaluate_expression(
    body: ExpressionEvaluate, principal: Reader, settings: SettingsDep
) -> ExpressionResult:
    """Evaluate with the run-time engine: same functions, guardrails and errors."""
    try:
        found = analyze(body.expression, roots=ENVELOPE_ROOTS | frozenset(body.envelope))
    except ExpressionError as err:
        raise _problem([_error(err)]) from None
    if found.errors:
        raise _problem(
            [
                {
                    "path": "/expression",
                    "code": f.code,
                    "message": f.message,
                    "position": f.position,
                    "hint": f.hint,
                }
                for f in found.errors
            ]
        )
    moment = body.now or dt.datetime.now(dt.UTC)
    rng = random.Random(body.seed)
    context = EvalContext(
        now=lambda: moment,
        random=rng.random,
        uuid=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        limits=settings.expression_limits,
    )
    try:
        result = await run_in_threadpool(evaluate, body.expression, body.envelope, context)
    except ExpressionError as err:
        raise _problem([_error(err)]) from None
    return ExpressionResult(result=result)


def _error(err: ExpressionError) -> dict[str, Any]:
    return {
        "path": "/expression",
        "code": err.code,
        "message": err.message,
        "position": err.position,
    }
