"""Checks for values where they enter the engine, with messages that say what and why.

Every message names the argument, what was expected and what came. Integers
must fit in 64 bits (a log stores them as 64-bit numbers, so a larger one
could not be written); a ``bool`` is never taken for a number; numpy
integers are taken as the integers they are.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UINT64_MAX",
    "check_bool",
    "check_callable",
    "check_int",
    "check_number",
    "check_str",
    "describe",
    "int_tuple",
    "is_integer",
]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1


def describe(value: object) -> str:
    """A value for a message: a plain number as it is, else its type and (shortened) repr.

    A large integer also says how many bits it has.
    """
    if type(value) is int:
        if value.bit_length() > 63:
            return f"{_short(value)} ({value.bit_length()} bits)"
        return repr(value)
    if type(value) is float:
        return repr(value)
    return f"{type(value).__name__} {_short(value)}"


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails is a value's own bug: say what it is
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:40] + "..." + text[-12:]


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (an ``int`` or a numpy integer), not a bool."""
    if isinstance(value, int):
        return not isinstance(value, bool)
    dtype = getattr(value, "dtype", None)
    if dtype is not None:  # numpy: a bool_ or a float is not of kind "i" or "u"
        return getattr(dtype, "kind", "") in ("i", "u") and getattr(value, "ndim", 1) == 0
    return False


def _bounds(low: int | None, high: int | None) -> str:
    if high == INT64_MAX:
        fits = "that fits in 64 bits"
        return fits if low is None else f"of at least {low} {fits}"
    if high == UINT64_MAX and low == INT64_MIN:
        return "that fits in 64 bits"
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"of at least {low}"
    return f"of at most {high}"


def check_int(
    name: str, value: object, *, low: int | None = None, high: int | None = INT64_MAX
) -> int:
    """``value`` as an ``int`` in ``[low, high]``, or ``ValueError`` naming ``name``."""
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer {_bounds(low, high)}, got {describe(value)}")
    number = operator.index(value)  # type: ignore[arg-type]
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be an integer {_bounds(low, high)}, got {describe(number)}")
    return number


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """``value`` as a finite number in its bounds, or ``ValueError`` naming ``name``."""
    dtype = getattr(value, "dtype", None)
    ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
        dtype is not None
        and getattr(dtype, "kind", "") in ("i", "u", "f")
        and getattr(value, "ndim", 1) == 0
    )
    if ok:
        number = float(value)  # type: ignore[arg-type]
        if isinstance(value, int) and abs(value) > 2**53:
            ok = False  # a float would not hold it
        elif (
            not math.isfinite(number)
            or (low is not None and (number <= low if low_open else number < low))
            or (high is not None and number > high)
        ):
            ok = False
    if not ok:
        where = []
        if low is not None:
            where.append(f"{'above' if low_open else 'at least'} {low}")
        if high is not None:
            where.append(f"at most {high}")
        bounds = f" ({', '.join(where)})" if where else ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {describe(value)}")
    return number


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, else ``ValueError`` naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {describe(value)}")
    return value


def check_str(name: str, value: object, *, empty: bool = False) -> str:
    """``value`` if it is a (non-empty, unless ``empty``) string, else ``ValueError``."""
    if not isinstance(value, str) or (not empty and not value):
        what = "a string" if empty else "a non-empty string"
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    return value


def check_callable(name: str, value: object, what: str = "a callable") -> Callable[..., Any]:
    """``value`` if it can be called, else ``ValueError`` naming ``name``."""
    if not callable(value):
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    return value


def int_tuple(
    name: str, value: object, *, low: int | None = 0, high: int | None = INT64_MAX
) -> tuple[int, ...]:
    """An integer or an iterable of integers as a tuple of ints, each in ``[low, high]``."""
    if value is None:
        return ()
    if is_integer(value):
        return (check_int(name, value, low=low, high=high),)
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be an integer or a list of integers, got {describe(value)}")
    return tuple(
        check_int(f"{name}[{i}]", item, low=low, high=high) for i, item in enumerate(value)
    )
