"""Diagnose many hypothetical pairs of beliefs at once: one batched oracle call for all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from beliefs.graph import BeliefGraph
from dialogue.diagnosis import FULL_CELLS, PREDICT_CELLS, Diagnosis, diagnose
from oracle.oracle import Oracle
from values.expected import expected_utilities
from values.utility import Utility

Pair = tuple[BeliefGraph, BeliefGraph]
"""(agent's beliefs, human's beliefs)."""


class Evaluator:
    """The swap test for pairs of belief graphs, under the parties' values.

    Without agent values (predict-only) only the cells with the human's values exist.
    """

    def __init__(self, oracle: Oracle, utilities: Mapping[str, Utility | None], actions: Sequence[str]):
        self.oracle = oracle
        self.actions = tuple(actions)
        self.predict_only = utilities.get("agent") is None
        self.cells = PREDICT_CELLS if self.predict_only else FULL_CELLS
        self.value_keys = ("h",) if self.predict_only else ("a", "h")
        self.utilities = [utilities["human"] if v == "h" else utilities["agent"] for v in self.value_keys]

    def diagnose(self, pairs: Sequence[Pair]) -> list[Diagnosis]:
        """The diagnosis of every pair; all distinct belief states and all actions in one call."""
        states, index = [], {}
        for pair in pairs:
            for graph in pair:
                key = id(graph.state)
                if key not in index:
                    index[key] = len(states)
                    states.append(graph.state)
        eu = expected_utilities(self.oracle, states, self.utilities)  # type: ignore[arg-type]
        out = []
        for agent, human in pairs:
            belief = {"a": index[id(agent.state)], "h": index[id(human.state)]}
            cells = {(b, v): eu[belief[b], self.value_keys.index(v)] for b, v in self.cells}
            out.append(diagnose(cells, self.actions))
        return out
