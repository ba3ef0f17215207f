"""The client's built-in functions, answered when the profile declares them."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200


class ToolError(Exception):
    """A function could not run; its message goes back to the model."""


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ToolError("exponent too large")
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return float(_UNARY[type(node.op)](_eval(node.operand)))
    raise ToolError("only numbers and + - * / // % ** are allowed")


def calculate(expression: object) -> dict[str, Any]:
    """Evaluate basic arithmetic safely (no names, calls or attributes)."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION:
        raise ToolError("expression must be a string of at most 200 characters")
    try:
        value = _eval(ast.parse(expression, mode="eval"))
    except (SyntaxError, ZeroDivisionError, OverflowError) as exc:
        raise ToolError(f"cannot evaluate: {type(exc).__name__}") from None
    return {"result": int(value) if value.is_integer() else value}


def get_current_time() -> dict[str, Any]:
    """The current time in UTC, ISO 8601."""
    return {"utc": datetime.now(UTC).isoformat(timespec="seconds")}


BUILTIN_TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "calculate": calculate,
    "get_current_time": get_current_time,
}


def run_tool(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """Run a built-in function; unknown names and bad arguments become an error response, never a crash."""
    fn = BUILTIN_TOOLS.get(name)
    if fn is None:
        return {"error": f"unknown function {name!r}"}
    try:
        return fn(**(args or {}))
    except ToolError as exc:
        return {"error": str(exc)}
    except TypeError:
        return {"error": f"bad arguments for {name}"}
