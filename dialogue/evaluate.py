"""Diagnose many hypothetical pairs of beliefs at once: one batched oracle call for all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from crux.beliefs.graph import BeliefGraph
from crux.dialogue.diagnosis import FULL_CELLS, PREDICT_CELLS, Diagnosis, diagnose
from crux.oracle.oracle import Oracle
from crux.oracle.predict import action_marginals
from crux.values.utility import Utility

Pair = tuple[BeliefGraph, BeliefGraph]
"""(agent's beliefs, human's beliefs)."""


class Evaluator:
    """The swap test for pairs of belief graphs, under the parties' values.

    Without agent values (predict-only) only the cells with the human's values exist; while
    the human's values are unknown, only the cells with the agent's (none in predict-only), and
    each diagnosis carries both sides' predictions, as what tells the actions apart.
    """

    def __init__(self, oracle: Oracle, utilities: Mapping[str, Utility | None], actions: Sequence[str]):
        self.oracle = oracle
        self.actions = tuple(actions)
        self.predict_only = utilities.get("agent") is None
        self.values_unknown = utilities.get("human") is None
        known = {"a": utilities.get("agent"), "h": utilities.get("human")}
        self.value_keys = tuple(v for v in ("a", "h") if known[v] is not None)
        self.cells = tuple(c for c in (PREDICT_CELLS if self.predict_only else FULL_CELLS) if c[1] in self.value_keys)
        self.utilities = [known[v] for v in self.value_keys]

    def diagnose(self, pairs: Sequence[Pair]) -> list[Diagnosis]:
        """The diagnosis of every pair; all distinct belief states and all actions in one call."""
        states, index = [], {}
        for pair in pairs:
            for graph in pair:
                key = id(graph.state)
                if key not in index:
                    index[key] = len(states)
                    states.append(graph.state)
        marginals = action_marginals(self.oracle, states)
        eu = [[u.expected(m) for u in self.utilities] for m in marginals]  # type: ignore[union-attr]
        net = self.oracle.model.network
        scored = [o for o in net.outcomes if o not in net.continuous]
        out = []
        for agent, human in pairs:
            belief = {"a": index[id(agent.state)], "h": index[id(human.state)]}
            cells = {(b, v): eu[belief[b]][self.value_keys.index(v)] for b, v in self.cells}
            predictions = None
            if self.values_unknown:
                predictions = {b: _contrasts(marginals[k], scored) for b, k in belief.items()}
            out.append(diagnose(cells, self.actions, predictions))
        return out


def _contrasts(marginals: Mapping[str, torch.Tensor], outcomes: Sequence[str]) -> torch.Tensor:
    """How each action's predicted outcomes differ from the first action's, flat: all a choice
    can depend on, whatever the values (a change the same for every action changes none)."""
    return torch.cat([(marginals[o] - marginals[o][:1]).flatten() for o in outcomes])
