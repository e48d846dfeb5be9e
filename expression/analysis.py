"""Publish-time checks beyond syntax, on the parsed JSONata tree.

- every called function is on the allow-list (or bound in the expression itself);
- names read from the envelope's top level are envelope fields (``paylod.x`` is an
  error, not a silent ``undefined``);
- which ``vars.<name>`` the expression reads (the definition validator warns when no
  earlier step assigns one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonata.parser import Parser

from expression.engine import compile_expression
from expression.functions import ALLOWED, BUILTIN

ENVELOPE_ROOTS = frozenset({"payload", "vars", "meta"})

# Children evaluated in the same context as their parent; everything else (filters,
# group-by, sort terms, later path steps, transform updates) sees another context.
_SAME_CONTEXT = (
    "lhs",
    "rhs",
    "expression",
    "expressions",
    "arguments",
    "body",
    "condition",
    "then",
    "_else",
    "lhs_object",
    "pattern",
)
_OTHER_CONTEXT = (
    "predicate",
    "stages",
    "group",
    "terms",
    "update",
    "delete",
    "expr",
    "rhs_object",
    "rhs_terms",
)


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    position: int | None
    hint: str | None = None


@dataclass
class Analysis:
    errors: list[Finding] = field(default_factory=list)
    var_reads: list[tuple[str, int | None]] = field(default_factory=list)


def _children(value: Any) -> Iterator[Parser.Symbol]:
    if isinstance(value, Parser.Symbol):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _children(item)


def _bound_names(root: Parser.Symbol) -> set[str]:
    """Variables the expression binds itself (``$x := …``, lambda parameters)."""
    names: set[str] = set()
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.type == "bind" and getattr(node.lhs, "type", None) == "variable":
            names.add(node.lhs.value)
        if node.type == "lambda":
            names.update(a.value for a in _children(node.arguments) if a.type == "variable")
        for attr in (*_SAME_CONTEXT, *_OTHER_CONTEXT, "steps", "procedure"):
            stack.extend(_children(getattr(node, attr, None)))
    return names


class _Walker:
    def __init__(self, roots: frozenset[str], known: frozenset[str]) -> None:
        self.roots = roots
        self.known = known
        self.result = Analysis()
        self.seen: set[int] = set()

    def error(self, code: str, message: str, node: Parser.Symbol, hint: str) -> None:
        self.result.errors.append(Finding(code, message, getattr(node, "position", None), hint))

    def walk(self, node: Parser.Symbol, at_root: bool) -> None:
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        kind = node.type
        if kind == "path":
            self._path(node, at_root)
        elif kind == "name" and at_root and node.value not in self.roots:
            self.error(
                "expression.unknown_root",
                f"{node.value!r} is not in the envelope",
                node,
                f"top-level names are {', '.join(sorted(self.roots))}",
            )
        elif kind in ("function", "partial"):
            self._call(node)
        elif (
            kind == "variable" and node.value in BUILTIN - ALLOWED and node.value not in self.known
        ):
            self.error(
                "expression.function_not_allowed",
                f"${node.value} is not allowed",
                node,
                "definitions may use the documented functions only",
            )
        skip = {"lhs"} if kind == "bind" else {"arguments"} if kind == "lambda" else set()
        for attr in _SAME_CONTEXT:
            if attr not in skip:
                for child in _children(getattr(node, attr, None)):
                    self.walk(child, at_root)
        for attr in _OTHER_CONTEXT:
            for child in _children(getattr(node, attr, None)):
                self.walk(child, False)

    def _call(self, node: Parser.Symbol) -> None:
        proc = node.procedure
        if getattr(proc, "type", None) != "variable":
            self.walk(proc, True)
            return
        name = proc.value
        if name in self.known or name in ALLOWED:
            return
        if name in BUILTIN:
            self.error(
                "expression.function_not_allowed",
                f"${name} is not allowed",
                proc,
                "definitions may use the documented functions only",
            )
        else:
            self.error(
                "expression.unknown_function",
                f"unknown function ${name}",
                proc,
                "see docs/definition-language.md for the function list",
            )

    def _path(self, node: Parser.Symbol, at_root: bool) -> None:
        steps = list(_children(node.steps))
        first_is_context = (
            bool(steps)
            and steps[0].type == "variable"
            and steps[0].value in ("", "$")
            and not getattr(steps[0], "stages", None)
            and not getattr(steps[0], "predicate", None)
        )
        root_index = 1 if first_is_context else 0
        for index, step in enumerate(steps):
            self.walk(step, at_root and index <= root_index)
        if at_root and len(steps) > root_index + 1:
            head, second = steps[root_index], steps[root_index + 1]
            if head.type == "name" and head.value == "vars" and second.type == "name":
                self.result.var_reads.append((second.value, second.position))
        for child in _children(getattr(node, "group", None)):
            self.walk(child, False)


def analyze(
    expression: str,
    roots: frozenset[str] = ENVELOPE_ROOTS,
    variables: frozenset[str] = frozenset(),
) -> Analysis:
    """Check a (syntactically valid) expression; syntax errors raise ExpressionError."""
    ast = compile_expression(expression).ast
    walker = _Walker(roots, frozenset(_bound_names(ast)) | variables)
    walker.walk(ast, True)
    return walker.result
