"""Standard JSON, strictly: what Python's ``json`` lets through and a Crux input must not hold.

Python's reader accepts ``NaN`` and ``Infinity`` (not JSON), keeps the last of a key given twice
in one object, reads ``1e400`` as infinity and refuses an integer of 4,300 digits with a message
about Python's limits.  :func:`loads` refuses each of these with a sentence a user can act on;
the scenario loader, batch files of queries, observation streams and the server all read JSON
through it.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

__all__ = ["NotStandardJson", "loads"]


class NotStandardJson(ValueError):
    """JSON that holds what a Crux input may not (the message says what, and how to fix it)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        shown = key if len(key) <= 40 else key[:40] + "..."
        raise NotStandardJson(f"the key {shown!r} is given twice in one object: give each key once")
    return out


def _integer(text: str) -> int:
    if len(text) < 309:  # fits a double (the common case, kept cheap)
        return int(text)
    digits = len(text.lstrip("-"))  # read only if it can fit: Python will not read 4,300 digits and more
    value = int(text) if digits <= 309 else None
    if value is None or abs(value) > sys.float_info.max:
        raise NotStandardJson(f"a number of {digits:,} digits is too large: numbers must fit a double (at most about 1.8e308)")
    return value


def _real(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise NotStandardJson(f"the number {shown} is too large: numbers must fit a double (at most about 1.8e308)")
    return value


def _constant(name: str) -> None:
    raise NotStandardJson(f"{name} is not a JSON number: give finite numbers only (JSON has no NaN or Infinity)")


def loads(text: str, *, finite: bool = True) -> Any:
    """Parse standard JSON: :class:`NotStandardJson` for a key twice in one object, ``NaN`` or
    ``Infinity``, or a number beyond a double; ``json.JSONDecodeError`` for malformed text;
    ``RecursionError`` for nesting deeper than Python's reader goes.

    ``finite=False`` lets non-finite numbers through as floats, for a reader whose own checks
    refuse them where they stand (a scenario's validation names the field)."""
    if not finite:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer)
    return json.loads(text, object_pairs_hook=_object, parse_int=_integer, parse_float=_real, parse_constant=_constant)
