"""Where two belief graphs differ: in what they expect of a variable, or in a table row.

A *state* difference is about the case at hand (a variable upstream of the
decision whose marginals differ; an observation would settle it).  A
*mechanism* difference is about how the world works (a table row whose means
differ; data on that row would settle it).  Ranking by how much a difference
matters to the decision is the caller's (it needs values).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from crux.beliefs.facts import informs
from crux.beliefs.graph import BeliefGraph
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query

TOLERANCE = 1e-6


@dataclass(frozen=True)
class Difference:
    variable: str
    row: dict[str, str] | None
    """Parent states of the differing row (mechanism), or None (state of the case)."""
    a: list[float]
    b: list[float]
    causes: list[str]

    @property
    def gap(self) -> float:
        return max(abs(x - y) for x, y in zip(self.a, self.b))

    def settle(self, network_states: dict[str, tuple[str, ...]]) -> str:
        """The observation that would settle it, in words."""
        if self.row is None:
            return f"observe {self.variable} ({' or '.join(network_states[self.variable])})"
        given = ", ".join(f"{p}={s}" for p, s in self.row.items())
        return f"data on {self.variable} when {given} (counts of each outcome)"


def upstream_variables(graph: BeliefGraph) -> list[str]:
    """Variables the decision cannot affect (so they can be observed before deciding)."""
    net = graph.network
    if net.decision is None:
        return list(net.order)
    downstream = nx.descendants(net.graph, net.decision) | {net.decision}
    return [v for v in net.order if v not in downstream]


def _causes(a: BeliefGraph, b: BeliefGraph, var: str) -> list[str]:
    causes = []
    for g in (a, b):
        if var in g.priors:
            causes.append(f"{g.party}'s priors")
        for r in g.records:
            if r.status == "rejected" and var in informs(g.scenario.facts[r.fact]):
                causes.append(f"{g.party} rejected {r.fact}")
            if r.reliability is not None and r.in_force and var in informs(g.scenario.facts[r.fact]):
                causes.append(f"{g.party} discounted {r.fact} to {r.reliability:g}")
    for fact_id, fact in a.scenario.facts.items():
        if var in informs(fact) and a.holds(fact_id) != b.holds(fact_id) and not (a.seen(fact_id) and b.seen(fact_id)):
            holder = a.party if a.holds(fact_id) else b.party
            causes.append(f"only the {holder} holds {fact_id} (not shared: alone or with all the others it changed no choice)")
    return causes or ["follows from differences upstream"]


def differences(oracle: Oracle, a: BeliefGraph, b: BeliefGraph) -> list[Difference]:
    """Every state and mechanism difference between two parties' beliefs, in network order."""
    net = a.network
    out: list[Difference] = []
    upstream = upstream_variables(a)
    if upstream:
        # Upstream variables do not depend on the action; one is set only so that soft
        # evidence downstream of the decision, if any, has a case to weigh.
        do = {net.decision: net.states[net.decision][0]} if net.decision else {}
        query = Query(do=do, outcomes=upstream)
        ma, mb = oracle.posterior_means([query, query], [a.state, b.state])
        for var in upstream:
            if "#" in var or var in net.continuous:  # an aggregate's chain link (internal); a density
                continue
            pa, pb = ma[var].tolist(), mb[var].tolist()
            if max(abs(x - y) for x, y in zip(pa, pb)) > TOLERANCE:
                out.append(Difference(var, None, pa, pb, _causes(a, b, var)))
    for var in net.order:
        if not net.parents[var] or var == net.decision or "#" in var or var in net.continuous:
            continue
        ta, tb = a.state.mean(var), b.state.mean(var)
        rows = ((ta - tb).abs().amax(-1) > TOLERANCE).nonzero().tolist()
        for idx in rows:
            given = {p: net.states[p][i] for p, i in zip(net.parents[var], idx)}
            out.append(Difference(var, given, ta[tuple(idx)].tolist(), tb[tuple(idx)].tolist(), _causes(a, b, var)))
    return out
