"""Errors a user can act on.

Every error that reaches a user is a :class:`CruxError`; its message is the
whole story (what is wrong, where, and the fix).  Front ends print it and exit
non-zero; they never show a traceback for one.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

PathPart = str | int


class CruxError(Exception):
    """A problem with what the user gave (a file, a query, an option)."""


@dataclass(frozen=True)
class Problem:
    """One problem in a model file, at a path inside it."""

    path: tuple[PathPart, ...]
    message: str

    def render(self, file: str) -> str:
        where = render_path(self.path)
        return f"{file}: {where}: {self.message}" if where else f"{file}: {self.message}"


class ModelError(CruxError):
    """A model file with one or more problems."""

    def __init__(self, file: str, problems: Sequence[Problem]):
        self.file = file
        self.problems = list(problems)
        super().__init__("\n".join(p.render(file) for p in self.problems))


_PLAIN = re.compile(r"^[A-Za-z0-9_\-]{1,120}$")
_PATH_CHARS = 120
"""A name in a path is cut to this many characters (a long name would repeat in every line)."""


def render_path(path: Iterable[PathPart]) -> str:
    """``("world", "variables", "crash", "table", "wet, swerve")`` -> ``world.variables.crash.table."wet, swerve"``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            continue
        text = part if _PLAIN.match(part) else json.dumps(clip(part, _PATH_CHARS))
        out += f".{text}" if out else text
    return out


_SHOWN_NAMES, _SHOWN_CHARS, _NAME_CHARS = 40, 400, 80
"""At most this many names, this many characters of them, and this many characters of one name
in a message: an error about a file never grows faster than the file (a row that repeats a long
list of states, once per bad row, would)."""

_SUGGEST_FROM, _SUGGEST_LENGTH = 5_000, 200
"""``did you mean`` compares a name with at most this many candidates, and only names up to this
long: difflib's ratio is quadratic in the lengths, so a long name would make a CPU bomb."""


def clip(text: str, limit: int = _NAME_CHARS) -> str:
    """``text`` cut to ``limit`` characters (``aaaa... (5000 characters)``)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} characters)"


def short(name: object, limit: int = _NAME_CHARS) -> str:
    """``repr(name)``, cut to about ``limit`` characters (``'aaaa... (5000 characters)``)."""
    text = repr(name)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} characters)"


def _sized(items: Iterable[object]) -> Sequence[object] | Mapping[object, object] | AbstractSet[object]:
    """``items`` as a collection with a length, copied only if it is a bare iterator: a message
    about one name must not cost a copy of a million valid ones."""
    return items if isinstance(items, (Sequence, Mapping, AbstractSet)) else list(items)


def shown(names: Iterable[object]) -> str:
    """Names joined by ", ", cut to 40 names and about 400 characters (``a, b, ... (5000 in all)``)."""
    names = _sized(names)
    out: list[str] = []
    used = 0
    for name in itertools.islice(iter(names), _SHOWN_NAMES):
        text = clip(str(name))
        if out and used + len(text) > _SHOWN_CHARS:
            break
        out.append(text)
        used += len(text) + 2
    if len(out) < len(names):
        out.append(f"... ({len(names)} in all)")
    return ", ".join(out)


def unknown(kind: str, name: object, valid: Iterable[str]) -> str:
    """``unknown state 'wte' of road; did you mean 'wet'? valid: dry, wet``."""
    valid = _sized(valid)
    message = f"unknown {kind} {short(name)}"
    if len(str(name)) <= _SUGGEST_LENGTH and len(valid) <= _SUGGEST_FROM:
        candidates = [str(v) for v in valid if len(str(v)) <= _SUGGEST_LENGTH]
        close = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {short(close[0])}?"
    return f"{message} (valid: {shown(valid)})" if valid else f"{message} (there are none)"


# -- pydantic's errors, as messages that say the fix ----------------------------------------------


def schema_message(e: dict) -> str:
    """One pydantic error as a message that says the fix (the path is rendered apart)."""
    if e["type"] == "value_error":
        return str(e["ctx"]["error"])
    message = e["msg"][0].lower() + e["msg"][1:]
    given = e.get("input")
    if e["type"] in ("float_type", "string_type", "list_type", "dict_type", "model_type", "int_type", "bool_type", "values_shape"):
        message += f", got {short(given)}" if not isinstance(given, (dict, list)) else f", got a {type(given).__name__}"
    if e["type"] == "float_type" and isinstance(given, str):
        message += number_hint(given)
    return message


_YAML11_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?$")
_EXPONENT = re.compile(r"^([-+]?)([0-9]+)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)$")


def number_hint(text: str) -> str:
    """Why a text that looks like a number is not one, and what to write (or "" if it does not).

    YAML 1.1 (PyYAML) reads a number in exponent notation only with a '.' and a signed
    exponent: ``6e-1`` and ``6.0e1`` are text, ``6.0e-1`` and ``0.6`` are numbers."""
    try:
        value = float(text)
    except ValueError:
        return ""
    if not math.isfinite(value):
        return f": {short(text)} is text, and a number must be finite"
    m = _EXPONENT.match(text.strip())
    if m and not _YAML11_FLOAT.match(text.strip()):
        sign, whole, fraction, exp_sign, exp = m.groups()
        written = f"{sign}{whole}.{fraction or '0'}e{exp_sign or '+'}{exp}"
        return f": YAML reads {clip(text)} as text; write {value!r} or {clip(written)}"
    return ": it is quoted text; write the number without quotes"
