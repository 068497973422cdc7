"""Crux: find out whether a disagreement is about what is true (beliefs) or about what matters
(values), before anything is decided.

The public API, all importable from ``crux``::

    from crux import load_model, Oracle, Query

    model = load_model("examples/squirrel_or_cat.yaml")
    answer = Oracle(model).ask(Query(do={"action": "brake"}, given={"road": "wet"}))

- :func:`load_model` reads a scenario (YAML, JSON) or a BIF network; :class:`Model` is what it gives.
- :class:`Oracle` answers :class:`Query` objects ("what happens if I do X, given Y?") with
  an :class:`Answer`: each outcome's distribution and 90% interval.
- :func:`run_session` runs a whole session headless (the agent and a scripted human) and returns
  its report; :class:`LiveSession` is one a front end drives message by message.
- :class:`CruxError` is every error a user can cause (a bad file, a bad query): its message says
  where and how to fix it.

The subpackages hold the rest: ``crux.worldmodel`` (the format, compilation to tensors,
learning), ``crux.oracle`` (inference), ``crux.beliefs`` (belief graphs, world revision),
``crux.values`` (utilities, elicitation, inference of values) and ``crux.dialogue`` (the
engine, sessions, the CLI and the terminal UI).  Names are imported on first use, so that
``import crux`` (and ``crux --help``) costs nothing until a name is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "load_model": "crux.worldmodel.model",
    "Model": "crux.worldmodel.model",
    "CruxError": "crux.worldmodel.errors",
    "Oracle": "crux.oracle.oracle",
    "Query": "crux.oracle.query",
    "Answer": "crux.oracle.query",
    "run_session": "crux.dialogue.session",
    "LiveSession": "crux.dialogue.session",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from crux.dialogue.session import LiveSession, run_session
    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Answer, Query
    from crux.worldmodel.errors import CruxError
    from crux.worldmodel.model import Model, load_model


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'crux' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
