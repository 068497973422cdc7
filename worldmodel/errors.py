"""Errors a user can act on.

Every error that reaches a user is a :class:`CruxError`; its message is the
whole story (what is wrong, where, and the fix).  Front ends print it and exit
non-zero; they never show a traceback for one.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
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


_PLAIN = re.compile(r"^[A-Za-z0-9_\-]+$")


def render_path(path: Iterable[PathPart]) -> str:
    """``("world", "variables", "crash", "table", "wet, swerve")`` -> ``world.variables.crash.table."wet, swerve"``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            continue
        text = part if _PLAIN.match(part) else json.dumps(part)
        out += f".{text}" if out else text
    return out


def unknown(kind: str, name: object, valid: Iterable[str]) -> str:
    """``unknown state 'wte' of road; did you mean 'wet'? valid: dry, wet``."""
    valid = list(valid)
    message = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    shown = ", ".join(valid[:40]) + (f", ... ({len(valid)} in all)" if len(valid) > 40 else "")
    return f"{message} (valid: {shown})" if valid else f"{message} (there are none)"
