"""Read a model's answer string as a number without ``eval``.

MAmmoTH v1 calls Python's ``eval`` on model output (in its ``utils`` module's namespace, where ``math`` and
``sqrt`` are defined). We walk the AST instead and allow what such an answer can reasonably hold: numeric,
boolean and string literals, arithmetic (with v1's Python meaning: ``^`` is XOR), tuples and lists, the
``math`` module's functions and constants, and ``sqrt``. Sizes are bounded so that no answer can hang or
exhaust memory; anything outside the subset is "not a number", as an exception in v1's ``eval`` is.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from typing import Any

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.BitXor: operator.xor, ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Invert: operator.invert, ast.Not: operator.not_}
#: an int result beyond this many bits is refused (v1 would compute it; float() of it overflows anyway)
MAX_INT_BITS = 1 << 14
MAX_TEXT = 400
_MATH_NAMES = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
_NAMES: dict[str, Any] = {"sqrt": math.sqrt, "True": True, "False": False}
_SLOW = {"factorial", "comb", "perm", "prod", "lcm", "gcd", "isqrt"}


class NotANumber(ValueError):
    pass


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise NotANumber("integer too large")
    return value


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * max(1, abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise NotANumber("power too large")
    return operator.pow(left, right)


def _value(node: ast.AST, depth: int = 0) -> Any:
    if depth > 50:
        raise NotANumber("too deeply nested")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, complex, str, bool)):
        return _check_int(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check_int(_UNARY[type(node.op)](_value(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _check_int(_pow(left, right))
        if isinstance(node.op, ast.LShift) and isinstance(right, int) and right > MAX_INT_BITS:
            raise NotANumber("shift too large")
        if isinstance(node.op, ast.Mult) and isinstance(right, int) and isinstance(left, (str, tuple, list)) \
                and right * len(left) > MAX_TEXT:
            raise NotANumber("sequence too long")
        return _check_int(_BINARY[type(node.op)](left, right))
    if isinstance(node, (ast.Tuple, ast.List)):
        values = [_value(e, depth + 1) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math" \
            and node.attr in _MATH_NAMES:
        return _MATH_NAMES[node.attr]
    if isinstance(node, ast.Call) and not node.keywords:
        func = _value(node.func, depth + 1)
        if not callable(func):
            raise NotANumber("not callable")
        args = [_value(a, depth + 1) for a in node.args]
        if getattr(func, "__name__", "") in _SLOW and any(isinstance(a, int) and abs(a) > 5000 for a in args):
            raise NotANumber("argument too large")
        if not all(isinstance(a, (int, float)) for a in args):
            raise NotANumber("math functions take numbers")
        return _check_int(func(*args))
    raise NotANumber(f"not arithmetic: {type(node).__name__}")


def python_value(text: str) -> Any:
    """What v1's ``eval(text)`` returns, for the safe subset; raises ``ValueError`` where v1's eval would raise
    (or where we refuse to evaluate)."""
    if len(text) > MAX_TEXT:
        raise NotANumber("too long")
    try:
        with warnings.catch_warnings():  # "1e5x" and the like warn before they fail; the answer is just not a number
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
        return _value(tree.body)
    except NotANumber:
        raise
    except (SyntaxError, ValueError, ArithmeticError, TypeError, RecursionError, MemoryError) as e:
        raise NotANumber(str(e)) from None


def safe_arithmetic(text: str) -> float | None:
    """The value of an arithmetic expression (a tuple or list gives its first element), or None. Never raises."""
    try:
        value = python_value(text)
        if isinstance(value, (tuple, list)):
            value = value[0] if value else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    except (ValueError, OverflowError, IndexError):
        return None
