"""The single JSONata contract used at publish time and at run time."""

from expression.engine import EvalContext, compile_expression, evaluate, truthy
from expression.errors import ExpressionError
from expression.resolve import EXPR_KEY, is_expr, iter_expressions, resolve

__all__ = [
    "EXPR_KEY",
    "EvalContext",
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "is_expr",
    "iter_expressions",
    "resolve",
    "truthy",
]
