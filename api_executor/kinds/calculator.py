"""Calculator: arithmetic over Python's `ast`, never eval/exec/compile.

Only a whitelist of node types is interpreted (numbers, + - * / // % **, unary +/-, calls of a few
math functions, the names pi and e); anything else — attributes, subscripts, strings, lambdas,
comprehensions, other names — is refused. Abuse is bounded before it costs anything: input length,
exponent size (checked before computing), and the magnitude of every intermediate value.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from api_executor.errors import ToolError

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
MAX_MAGNITUDE = 1e100
MAX_ROUND_DIGITS = 15

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round() digits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(x, ndigits)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, min args, max args)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (math.sqrt, 1, 1), "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1),
    "log": (_log, 1, 2), "log10": (math.log10, 1, 1), "exp": (math.exp, 1, 1), "abs": (abs, 1, 1),
    "round": (_round, 1, 2), "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1),
    "min": (min, 1, 64), "max": (max, 1, 64),
}


def run(arguments: dict[str, Any]) -> str:
    expression = arguments.get("expression")
    if expression is None:
        raise ToolError("missing argument 'expression' (the arithmetic expression to evaluate)")
    if not isinstance(expression, str):
        raise ToolError("argument 'expression' must be a string")
    return format_number(evaluate(expression))


def evaluate(expression: str) -> Number:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if not expression.strip():
        raise ToolError("empty expression")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolError("invalid expression: too deeply nested") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("result too large") from None
    except RecursionError:
        raise ToolError("expression too deeply nested") from None
    except (ValueError, TypeError) as exc:
        raise ToolError(str(exc) or "invalid value") from None


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"unsupported literal {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name {node.id!r} (constants: pi, e)")
    if isinstance(node, ast.Call):
        return _call(node)
    raise ToolError(f"unsupported syntax: {type(node).__name__}")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name):
        raise ToolError(f"unsupported syntax: call of {type(node.func).__name__}")
    if node.func.id not in _FUNCTIONS:
        raise ToolError(f"unknown function {node.func.id!r} (allowed: {', '.join(_FUNCTIONS)})")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise ToolError(f"{node.func.id}() takes positional arguments only")
    fn, lo, hi = _FUNCTIONS[node.func.id]
    if not lo <= len(node.args) <= hi:
        raise ToolError(f"{node.func.id}() takes {lo}{'' if lo == hi else f' to {hi}'} argument(s)")
    return _checked(fn(*(_eval(a) for a in node.args)))


def _check_power(base: Number, exponent: Number) -> None:
    """Refuses powers whose size is known to explode, before computing them."""
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponent too large (limit {MAX_EXPONENT})")
    if abs(base) > 1 and exponent > 0 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ToolError("result too large")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolError("result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ToolError(f"result too large (limit {MAX_MAGNITUDE:g})")
    return value


def format_number(value: Number) -> str:
    """Integers exactly; floats to 12 significant digits, so 0.1+0.2 reads 0.3 and sqrt(16) reads 4."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.12g}"
    return "0" if text == "-0" else text
