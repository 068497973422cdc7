"""Cruxes: which unshared fact, if shared, would move the diagnosis most.

Facts that alone change any swap-test choice come first (by how far they move
the belief share); then, when only the pool of all unshared facts changes a
choice, the facts that pool needs.  A fact that matters neither alone nor
together with the others is never offered; when no unshared, unrejected fact
matters either way, the exchange is over.

While the human's values are unknown, any fact that changes how the actions'
predicted outcomes differ, on either side, may change the human's choice: such
facts matter too (ranked by how far they move such a difference), and the
exchange is over only when no unshared fact changes one or a choice.  (A fact
that changes no difference between the actions' outcomes changes no choice
under any values.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crux.beliefs.graph import BeliefGraph
from crux.dialogue.diagnosis import Diagnosis
from crux.dialogue.evaluate import Evaluator

OTHER = {"agent": "human", "human": "agent"}


@dataclass(frozen=True)
class Crux:
    fact: str
    sender: str
    receiver: str
    alone: Diagnosis
    """The diagnosis if the receiver accepts this fact alone."""
    changes_alone: bool
    shift: float
    """How far accepting it alone moves the belief share."""

    def why(self, current: Diagnosis, mode: str) -> str:
        """Why it matters, in words, to the receiver (no agent choice in predict-only mode)."""
        if current.kind == "unknown":
            if self.receiver == "agent" and mode != "predict-only":
                before, after = current.cells[("a", "a")], self.alone.cells[("a", "a")]
                if before != after:
                    return f"if the agent accepts this, its best action changes from {before} to {after}"
            whose = "your" if self.receiver == "human" else "the agent's"
            return (
                f"it changes how the actions compare in {whose} predictions; your values are asked "
                "after the exchange, and it may change your choice"
            )
        if self.receiver == "human":
            before, after = current.cells[("h", "h")], self.alone.cells[("h", "h")]
            if before != after:
                return f"if you accept this, your best action changes from {before} to {after}"
        elif mode == "predict-only":
            before, after = current.cells[("a", "h")], self.alone.cells[("a", "h")]
            if before != after:
                return (
                    "it changes the agent's predictions: with them, your values would choose "
                    f"{after} instead of {before}"
                )
        else:
            before, after = current.cells[("a", "a")], self.alone.cells[("a", "a")]
            if before != after:
                return f"if the agent accepts this, its best action changes from {before} to {after}"
        changed = [c for c in current.cells if current.cells[c] != self.alone.cells[c]]
        if changed:
            b, v = changed[0]
            whose = {"a": "the agent's", "h": "the human's"}
            return (
                f"it changes what {whose[b]} beliefs with {whose[v]} values choose, "
                f"from {current.cells[changed[0]]} to {self.alone.cells[changed[0]]}"
            )
        return "alone it changes no choice, but together with the other unshared facts it does"


def unshared(graphs: Mapping[str, BeliefGraph]) -> list[tuple[str, str, str]]:
    """(fact, sender, receiver) for every fact one party holds and the other has not seen."""
    scenario = graphs["agent"].scenario
    out = []
    for fact in scenario.facts:
        for sender, receiver in (("agent", "human"), ("human", "agent")):
            if graphs[sender].holds(fact) and not graphs[receiver].seen(fact):
                out.append((fact, sender, receiver))
    return out


def _with(graphs: Mapping[str, BeliefGraph], moves: list[tuple[str, str, str]]) -> tuple[BeliefGraph, BeliefGraph]:
    """The (agent, human) beliefs if every move were accepted."""
    new = dict(graphs)
    for party in ("agent", "human"):
        facts = [f for f, _, receiver in moves if receiver == party]
        if facts:
            new[party] = new[party].with_facts(facts, origin=OTHER[party], turn=0)
    return new["agent"], new["human"]


def rank_cruxes(evaluator: Evaluator, graphs: Mapping[str, BeliefGraph], current: Diagnosis) -> list[Crux]:
    """The facts worth offering now, best first; empty when the exchange is over."""
    moves = unshared(graphs)
    if not moves:
        return []
    base = (graphs["agent"], graphs["human"])
    pairs = [base] + [_with(graphs, [m]) for m in moves] + [_with(graphs, moves)]
    diagnoses = evaluator.diagnose(pairs)
    singles, pooled = diagnoses[1:-1], diagnoses[-1]

    def shift(d: Diagnosis) -> float:
        if current.kind == "unknown":
            return d.prediction_change(current)
        return abs((d.belief_share or 0.0) - (current.belief_share or 0.0))

    cruxes = [
        Crux(fact, sender, receiver, d, d.differs(current), shift(d))
        for (fact, sender, receiver), d in zip(moves, singles)
    ]
    changers = [c for c in cruxes if c.changes_alone]
    if changers:
        return sorted(changers, key=lambda c: -c.shift)
    if not pooled.differs(current):
        return []
    # Only together do they change a choice: offer the facts without which the pool changes nothing.
    without = evaluator.diagnose([_with(graphs, [m for m in moves if m is not left]) for left in moves])
    needed = {m for m, d in zip(moves, without) if not d.differs(current)}
    if not needed:  # redundant facts (any few suffice): shrink the pool to a minimal set that still matters
        order = sorted(moves, key=lambda m: shift(singles[moves.index(m)]))
        needed = _minimal(evaluator, graphs, moves, order, current)
    return sorted((c for c, m in zip(cruxes, moves) if m in needed), key=lambda c: -c.shift)


def _minimal(
    evaluator: Evaluator, graphs: Mapping[str, BeliefGraph], moves: list, order: list, current: Diagnosis
) -> set:
    """The pool shrunk greedily: in ``order``, each fact is dropped if the pool without it still
    changes a choice.  Each call tries the rest of the order at once, as if every drop held
    (pool minus the first, minus the first two, ...); the first trial that no longer changes a
    choice keeps its fact, and the next call goes on after it.  The same set as trying one fact
    at a time, in as many calls as facts are kept, plus one."""
    needed = set(moves)
    at = 0
    while at < len(order):
        trials, dropped = [], set()
        for m in order[at:]:
            dropped.add(m)
            trials.append(_with(graphs, [x for x in moves if x in needed and x not in dropped]))
        found = evaluator.diagnose(trials)
        kept = next((j for j, d in enumerate(found) if not d.differs(current)), None)
        if kept is None:  # every drop held
            return needed - dropped
        needed -= set(order[at : at + kept])
        at += kept + 1
    return needed
