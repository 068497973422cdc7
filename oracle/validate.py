"""A query checked field by field: each problem :func:`~oracle.query.resolve` finds, at the field
that causes it (``do.<var>``, ``given.<var>``, ``outcomes.<i>``, ``as``).

Problems are plain dicts ``{"loc", "msg", "type"}``, the shape of pydantic's validation errors,
so a front end (the HTTP server) can report them beside the schema's own.
"""

from __future__ import annotations

from typing import Any

from crux.oracle.query import Query, QueryError, Resolved, resolve
from crux.worldmodel.model import Model

Loc = tuple[str | int, ...]
"""Where a problem is: the part of the request (``body``, ``header``, ...), then the field inside it."""


def error_at(loc: Loc, msg: str, kind: str = "query") -> dict[str, Any]:
    """One problem: where (``loc``), what is wrong and the fix (``msg``), and a short kind."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def checked(query: Query, model: Model, prefix: Loc = ("body",)) -> tuple[Resolved | None, list[dict[str, Any]]]:
    """``query`` resolved (checked once: pass it on to the oracle), or None and the problems
    :func:`resolve` finds, each at its field (``do.<var>``, ``outcomes.<i>``, ``as``)."""
    net, parties, default = model.network, model.parties, model.default_party

    def refused(q: Query) -> str | None:
        try:
            resolve(q, net, parties, default)
        except QueryError as err:
            return str(err)
        return None

    try:
        return resolve(query, net, parties, default), []
    except QueryError as err:
        whole = str(err)
    message = refused(Query(as_=query.as_))
    if message is not None:
        return None, [error_at((*prefix, "as"), message)]
    errors = []
    for name in ("do", "given"):
        for var, state in getattr(query, name).items():
            message = refused(Query(**{name: {var: state}}, as_=query.as_))
            if message is not None:
                errors.append(error_at((*prefix, name, var), message))
    for i, outcome in enumerate(query.outcomes):
        message = refused(Query(outcomes=[outcome], as_=query.as_))
        if message is not None:
            errors.append(error_at((*prefix, "outcomes", i), message))
    if not errors:  # each part is fine, together they are not (set and observed at once)
        both = sorted(set(query.do) & set(query.given))
        errors.append(error_at((*prefix, "given", both[0]) if both else prefix, whole))
    return None, errors

