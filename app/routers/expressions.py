"""Evaluate an expression against sample data, exactly as a run would (for editors)."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.deps import Reader, SettingsDep
from app.schemas import ExpressionEvaluate, ExpressionResult
from expression import EvalContext, ExpressionError, evaluate
from tempoflow.definition.validation import Issue, expression_issues
from tempoflow.errors import Unprocessable

router = APIRouter(prefix="/v1/expressions", tags=["expressions"])


def _problem(issues: list[Issue]) -> Unprocessable:
    # The same entries as publish-time validation: {path, code, message, position, hint}.
    return Unprocessable(
        "the expression failed",
        code="expression_invalid",
        errors=issues,
        hint="position is the character offset in the expression",
    )


@router.post("/evaluate", response_model=ExpressionResult)
async def evaluate_expression(
    body: ExpressionEvaluate, principal: Reader, settings: SettingsDep
) -> ExpressionResult:
    """Evaluate with the run-time engine: same functions, guardrails and errors."""
    found = expression_issues(body.expression, "/expression", names=frozenset(body.envelope))
    if found:
        raise _problem(found)
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
        raise _problem([Issue.from_expression_error(err, "/expression")]) from None
    return ExpressionResult(result=result)
