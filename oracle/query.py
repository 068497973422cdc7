"""Queries and answers of the oracle, and the check of a query against a network.

The same pydantic models are the JSON of ``crux ask --json``, of ``--batch``
lines and (later) of the HTTP server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from crux.worldmodel.errors import CruxError, unknown
from crux.worldmodel.spec import Believer

if TYPE_CHECKING:  # a query is read, and checked by name, without importing torch
    from crux.worldmodel.compile import Network


class QueryError(CruxError):
    """A query that names something the model does not have, or cannot be answered."""


class Query(BaseModel):
    """What happens to ``outcomes`` if we set ``do`` and see ``given``, in ``as``'s beliefs?"""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    do: dict[str, str] = Field(default_factory=dict, description="Interventions {variable: state}: cut from parents and fixed.")
    given: dict[str, str] = Field(default_factory=dict, description="Hard evidence {variable: state} about the case.")
    outcomes: list[str] = Field(
        default_factory=list, description="Variables to report; empty means the model's outcomes."
    )
    as_: Believer | None = Field(
        default=None,
        alias="as",
        description="Whose beliefs answer: agent, human or world (no party); default agent for a scenario.",
    )


class Distribution(BaseModel):
    """The answer for one outcome variable."""

    states: list[str] = Field(description="The variable's states.")
    p: list[float] = Field(description="Posterior-mean probability of each state.")
    interval: list[list[float]] = Field(
        description="90% credible interval [low, high] of each state's probability, from parameter uncertainty."
    )
    stderr: list[float] | None = Field(default=None, description="Monte Carlo standard error (sampled answers only).")


class Density(BaseModel):
    """The answer for one continuous outcome variable."""

    kind: Literal["continuous"] = Field(default="continuous", description="Marks a continuous outcome.")
    mean: float = Field(description="Posterior mean of the value.")
    sd: float = Field(description="Posterior standard deviation of the value.")
    interval: list[float] = Field(description="90% predictive interval [low, high] of the value.")
    stderr: float | None = Field(default=None, description="Monte Carlo standard error of the mean (sampled only).")


class Answer(BaseModel):
    """The oracle's answer to one query."""

    query: Query = Field(description="The query, with names as the model spells them and defaults filled in.")
    method: Literal["exact", "sampled"] = Field(description="How the probabilities were computed.")
    device: str = Field(description="Where they were computed (cpu, cuda).")
    outcomes: dict[str, Distribution | Density] = Field(description="One distribution per outcome variable.")

    def to_json(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Resolved:
    """A query checked against a network: names as the model spells them, states as indices."""

    query: Query
    party: Believer
    do: tuple[tuple[str, int | float], ...]
    """(variable, state index), or (variable, value) for a continuous one."""
    given: tuple[tuple[str, int | float], ...]
    outcomes: tuple[str, ...]

    @cached_property
    def structure(self) -> tuple:
        """Queries with equal structure run as one batched contraction."""
        return (self.party, tuple(v for v, _ in self.do), tuple(v for v, _ in self.given), self.outcomes)


def _match(name: str, valid: Sequence[str] | Mapping[str, int], kind: str) -> str:
    if name in valid:
        return name
    folded = [v for v in valid if v.casefold() == name.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise QueryError(unknown(kind, name, valid))


def variable_name(network: Network, name: str, what: str) -> str:
    """A variable's name as the model spells it (case and surrounding space forgiven)."""
    return name if name in network.position else _match(name, network.position, f"variable in {what}")


def index_of_state(network: Network, var: str, state: str) -> int:
    """The index of one of a discrete variable's states, named as the model spells it (case and
    surrounding space forgiven)."""
    found = network.state_index[var].get(state)
    return found if found is not None else network.state_index[var][_match(state, network.states[var], f"state of {var}")]


def resolve(
    query: Query, network: Network, parties: Sequence[Believer], default_party: Believer, echo: bool = True
) -> Resolved:
    """Check a query against the network: unknown names are errors listing the valid ones.
    ``echo=False`` skips building the echoed query (for answers that do not carry it)."""
    party = query.as_ or default_party
    if party not in parties:
        raise QueryError(f"this model has no party {party!r}: ask as {' or '.join(parties)}")

    def assignments(items: Mapping[str, str], what: str) -> tuple[tuple[str, int | float], ...]:
        out: dict[str, int | float] = {}
        for var, state in items.items():
            name = variable_name(network, var, what)
            out[name] = _number(name, state) if name in network.continuous else index_of_state(network, name, state)
        return tuple(out.items())

    def text(name: str, value: int | float) -> str:
        return f"{value:g}" if name in network.continuous else network.states[name][int(value)]

    do, given = assignments(query.do, "do"), assignments(query.given, "given")
    both = sorted({v for v, _ in do} & {v for v, _ in given}) if do and given else ()
    if both:
        raise QueryError(
            f"{', '.join(both)} is both set (do) and observed (given): an intervention already fixes it, drop one"
        )
    decision = network.decision
    if decision is not None and any(v == decision for v, _ in given):
        raise QueryError(f"{decision} is the decision: set it with do {decision}=<action>, it cannot be observed")
    if query.outcomes:
        outcomes = tuple(
            dict.fromkeys(o if o in network.position else _match(o, network.position, "outcome variable") for o in query.outcomes)
        )
    else:
        outcomes = network.outcomes or tuple(v for v in network.order if v not in dict(do) and v not in dict(given))
    shown = (
        Query(
            do={v: text(v, i) for v, i in do},
            given={v: text(v, i) for v, i in given},
            outcomes=list(outcomes),
            as_=party,
        )
        if echo
        else query
    )
    return Resolved(query=shown, party=party, do=do, given=given, outcomes=outcomes)


class Resolver:
    """:func:`resolve` for one model, remembered per *shape* of query (the names it sets, sees and
    asks about, and whose beliefs answer): the names of a shape are checked once, and each query
    of it reads its states by one dictionary lookup each.  A state not found as written, and any
    query asking for its echo, takes the full :func:`resolve`, so every error and forgiven
    spelling is the same.  What it saved, measured: ``bench/findings/tuning_notes.md``."""

    def __init__(self, network: Network, parties: Sequence[Believer], default_party: Believer, limit: int = 1024):
        self.network, self.parties, self.default_party, self.limit = network, parties, default_party, limit
        self._shapes: dict[tuple, _Shape | None | bool] = {}
        """Per shape: True once met (a shape met once, as in a batch of mixed structure, is not
        worth remembering yet), then its :class:`_Shape`, or None (always the full check)."""

    def clear(self) -> None:
        """Forget the shapes met."""
        self._shapes.clear()

    def __call__(self, query: Query, echo: bool = True) -> Resolved:
        if echo:
            return resolve(query, self.network, self.parties, self.default_party)
        key = (tuple(query.do), tuple(query.given), tuple(query.outcomes), query.as_)
        shape = self._shapes.get(key, False)
        if shape is None or isinstance(shape, bool):
            first = resolve(query, self.network, self.parties, self.default_party, echo=False)
            if shape is not None:
                if not shape and len(self._shapes) >= self.limit:  # a new key: room for it
                    self._shapes.pop(next(iter(self._shapes)))
                self._shapes[key] = _Shape.of(first, query, self.network) if shape else True
            return first
        return shape.read(query) or resolve(query, self.network, self.parties, self.default_party, echo=False)


@dataclass(frozen=True)
class _Shape:
    """What the queries of one shape share, once their names are checked."""

    party: Believer
    do: tuple[tuple[str, Mapping[str, int] | None], ...]
    """(the variable as the model spells it, its states' indices; None: continuous)."""
    given: tuple[tuple[str, Mapping[str, int] | None], ...]
    outcomes: tuple[str, ...]
    structure: tuple

    @staticmethod
    def of(first: Resolved, query: Query, network: Network) -> _Shape | None:
        """None where two names of the query are one variable (``hr`` and ``HR``): those always
        take the full check, which merges them."""
        if len(first.do) != len(query.do) or len(first.given) != len(query.given):
            return None
        do, given = (
            tuple((v, None if v in network.continuous else network.state_index[v]) for v, _ in pairs)
            for pairs in (first.do, first.given)
        )
        return _Shape(first.party, do, given, first.outcomes, first.structure)

    def read(self, query: Query) -> Resolved | None:
        """The query's states by lookup; None if one is not found as written."""
        try:
            do = tuple([(v, _number(v, s) if states is None else states[s]) for (v, states), s in zip(self.do, query.do.values())])
            given = tuple(
                [(v, _number(v, s) if states is None else states[s]) for (v, states), s in zip(self.given, query.given.values())]
            )
        except KeyError:
            return None
        found = Resolved(query=query, party=self.party, do=do, given=given, outcomes=self.outcomes)
        found.__dict__["structure"] = self.structure  # the shape's, the same for all its queries
        return found


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"{name} is continuous: give a number, not {text!r}") from None
    if not math.isfinite(value):
        raise QueryError(f"{name}: {text!r} is not a finite number")
    return value


_QUESTION = re.compile(
    r"^\s*what\s+happens(?:\s+if\s+(?P<do>.*?))?(?:\s+given\s+(?P<given>.*?))?\s*\??\s*$",
    re.IGNORECASE | re.DOTALL,
)


def parse_question(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``what happens if A=a and B=b given C=c?`` -> ({A: a, B: b}, {C: c})."""
    m = _QUESTION.match(text)
    if not m or not (m.group("do") or m.group("given")):
        raise QueryError(
            f"cannot read the question {text!r}: write it as "
            "'what happens if VAR=state [and VAR=state ...] [given VAR=state [and ...]]'"
        )

    def pairs(part: str | None, where: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not part:
            return out
        for item in re.split(r"\s+and\s+", part.strip(), flags=re.IGNORECASE):
            var, sep, state = item.partition("=")
            if not sep or not var.strip() or not state.strip():
                raise QueryError(f"cannot read {item!r} after '{where}': write VAR=state")
            out.append((var.strip(), state.strip()))
        return out

    return assignments(pairs(m.group("do"), "if"), "do"), assignments(pairs(m.group("given"), "given"), "given")


def assignments(pairs: Iterable[tuple[str, str]], kind: Literal["do", "given"]) -> dict[str, str]:
    """``{variable: state}`` from ``(variable, state)`` pairs, in order: a variable set (``do``) or
    given two different states is an error naming both, not a silent choice of the last."""
    out: dict[str, str] = {}
    for var, state in pairs:
        first = out.setdefault(var, state)
        if first != state:
            if kind == "do":
                raise QueryError(f"{var} is set twice, as {first} and as {state}: set one")
            raise QueryError(f"{var} is given twice, as {first} and as {state}: give one state")
    return out


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``VAR=state`` from a ``--do``/``--given`` option."""
    var, sep, state = text.partition("=")
    if not sep or not var.strip() or not state.strip():
        raise QueryError(f"{option} {text!r}: write VAR=state")
    return var.strip(), state.strip()
