"""A party's belief graph: the world's structure, its priors, and every fact with its provenance.

A :class:`BeliefGraph` is immutable: accepting or rejecting a fact returns a
new graph, so hypothetical beliefs ("what if the human accepted radar?") cost
nothing to make and cannot leak into the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

from crux.beliefs.facts import informs, with_reliability
from crux.worldmodel.compile import BeliefState, Network, compile_beliefs, with_fact
from crux.worldmodel.spec import Fact, Scenario

Status = Literal["held", "accepted", "rejected"]


@dataclass(frozen=True)
class FactRecord:
    """One fact in a party's graph and where it came from.

    ``origin`` is ``"own"`` for a fact the party held at the start, else the
    party that offered it; ``turn`` is 0 for own facts, else the turn it was
    offered in; ``reliability`` is the weight the party gives it (None: the
    fact's own).
    """

    fact: str
    origin: str
    turn: int
    status: Status
    reliability: float | None = None

    @property
    def in_force(self) -> bool:
        return self.status != "rejected"


@dataclass(frozen=True)
class BeliefGraph:
    """What one party believes, and why."""

    party: str
    scenario: Scenario
    network: Network
    records: tuple[FactRecord, ...] = ()
    _base: BeliefGraph | None = field(default=None, init=False, compare=False, repr=False)
    """The graph this one extends by its last record (a fact it had not seen): its numbers are
    that graph's plus one fact, made incrementally (``replace`` drops the link: recompiled)."""

    @classmethod
    def initial(cls, scenario: Scenario, network: Network, party: str) -> BeliefGraph:
        """The party's beliefs at the start: its priors and the facts it knows."""
        spec = getattr(scenario.parties, party)
        records = tuple(FactRecord(fact=f, origin="own", turn=0, status="held") for f in spec.beliefs.knows)
        return cls(party=party, scenario=scenario, network=network, records=records)

    @property
    def priors(self):
        return getattr(self.scenario.parties, self.party).beliefs.priors

    def record(self, fact_id: str) -> FactRecord | None:
        return next((r for r in self.records if r.fact == fact_id), None)

    def holds(self, fact_id: str) -> bool:
        """Whether the fact is in force in these beliefs (held from the start or accepted)."""
        r = self.record(fact_id)
        return r is not None and r.in_force

    def seen(self, fact_id: str) -> bool:
        """Whether the party has the fact at all, in force or rejected."""
        return self.record(fact_id) is not None

    def with_record(self, record: FactRecord) -> BeliefGraph:
        kept = tuple(r for r in self.records if r.fact != record.fact)
        graph = replace(self, records=(*kept, record))
        if len(kept) == len(self.records):  # a fact not seen before: appended, so derivable
            object.__setattr__(graph, "_base", self)
        return graph

    def with_facts(self, fact_ids: list[str], origin: str, turn: int) -> BeliefGraph:
        """Hypothetical beliefs after accepting these facts at their own reliability."""
        graph = self
        for f in fact_ids:
            graph = graph.with_record(FactRecord(fact=f, origin=origin, turn=turn, status="accepted"))
        return graph

    def facts_in_force(self) -> list[Fact]:
        return [with_reliability(self.scenario.facts[r.fact], r.reliability) for r in self.records if r.in_force]

    @cached_property
    def state(self) -> BeliefState:
        """The numbers these beliefs give the oracle: compiled from the scenario, or, for a graph
        that only adds a fact to another, that graph's numbers with the fact added (the same
        numbers as compiling; a rejected fact changes nothing, so the very same state)."""
        if self._base is None:
            return compile_beliefs(self.scenario, self.network, self.priors, self.facts_in_force())
        base, last = self._base.state, self.records[-1]
        if not last.in_force:
            return base
        return with_fact(base, self.network, with_reliability(self.scenario.facts[last.fact], last.reliability))

    def informing(self) -> dict[str, list[str]]:
        """For each variable, the facts in force that bear on it."""
        out: dict[str, list[str]] = {}
        for r in self.records:
            if r.in_force:
                for var in informs(self.scenario.facts[r.fact]):
                    out.setdefault(var, []).append(r.fact)
        return out
