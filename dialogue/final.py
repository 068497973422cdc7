"""What remains after the exchange: unresolved beliefs and value conflicts.

Unresolved beliefs are differences that no exchange settled (priors, rejected
or discounted facts) and that matter to a choice: each comes with the
observation that would settle it, ranked by its expected value of information.
They are belief disagreements and are never reported as value conflicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crux.beliefs.diff import differences
from crux.beliefs.graph import BeliefGraph
from crux.dialogue.diagnosis import Diagnosis
from crux.dialogue.evaluate import Evaluator
from crux.dialogue.protocol import Concluded
from crux.oracle.predict import action_marginals
from crux.values.information import observation_value, row_values
from crux.values.tradeoffs import tradeoff, value_conflicts

MATTERS = 1e-9
"""Value of information below this is taken as zero: the difference cannot change a choice."""


def conclude(
    evaluator: Evaluator,
    graphs: Mapping[str, BeliefGraph],
    diagnosis: Diagnosis,
    human_intervals: Mapping[tuple[str, str], Sequence[float]] | None = None,
) -> Concluded:
    """What remains; ``human_intervals`` ((outcome, state) -> 90% interval of utility / range)
    when the human's values were elicited, for the value conflicts."""
    oracle = evaluator.oracle
    agent, human = graphs["agent"], graphs["human"]
    states = {"a": agent.state, "h": human.state}
    cells = [(states[b], evaluator.utilities[evaluator.value_keys.index(v)]) for b, v in evaluator.cells]
    diffs = differences(oracle, agent, human)
    state_vars = [d.variable for d in diffs if d.row is None]
    seen = observation_value(oracle, cells, state_vars)
    net = agent.network
    mechanisms = [d for d in diffs if d.row is not None]
    settled = row_values(
        oracle, cells, [(d.variable, tuple(net.states[p].index(s) for p, s in d.row.items())) for d in mechanisms]
    )
    learnt = {id(d): v for d, v in zip(mechanisms, settled)}
    unresolved = []
    for d in diffs:
        value = seen[d.variable] if d.row is None else learnt[id(d)]
        if value <= MATTERS:
            continue
        entry = {"variable": d.variable, "states": list(net.states[d.variable]), "agent": _round(d.a), "human": _round(d.b)}
        if d.row is not None:
            entry["given"] = d.row
        entry.update(
            {
                "kind": "state" if d.row is None else "mechanism",
                "settle": d.settle(dict(net.states)),
                "value_of_information": round(value, 6),
                "causes": d.causes,
            }
        )
        unresolved.append(entry)
    unresolved.sort(key=lambda e: -e["value_of_information"])
    conflicts, words = [], None
    ua = None if evaluator.predict_only else evaluator.utilities[0]
    if ua is not None:
        uh = evaluator.utilities[1]
        moved = None
        aa, ah = diagnosis.cells[("a", "a")], diagnosis.cells[("h", "h")]
        if aa != ah:
            i, j = evaluator.actions.index(aa), evaluator.actions.index(ah)
            ma, mh = action_marginals(oracle, [agent.state, human.state])
            moved = {o: ((ma[o][i] - ma[o][j]) + (mh[o][i] - mh[o][j])) / 2 for o in net.outcomes}
        found = value_conflicts(ua, uh, dict(net.states), moved, human_intervals)
        conflicts = [c.to_json() for c in found]
        words = tradeoff(found) if moved is not None else None  # a trade-off only where the choices differ
    return Concluded(unresolved_beliefs=unresolved, value_conflicts=conflicts, tradeoff=words)


def _round(xs: list[float]) -> list[float]:
    return [round(x, 6) for x in xs]


__all__ = ["conclude"]
