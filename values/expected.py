"""Expected utility of every action under many belief states, through one batched oracle call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.values.utility import Utility
from crux.worldmodel.compile import BeliefState


def action_marginals(
    oracle: Oracle, states: Sequence[BeliefState], situations: Sequence[Mapping[str, str]] | None = None
) -> list[dict[str, torch.Tensor]]:
    """For each belief state (seeing its situation, if given: ``{variable: state}``),
    ``{outcome: (actions, card)}``: the outcomes of every action.

    All states and actions run as one batch (the tables of the states are
    stacked), not as a loop of queries.
    """
    net = oracle.model.network
    if net.decision is None:
        raise ValueError("the model has no decision")
    actions = net.states[net.decision]
    seen = situations if situations is not None else [{}] * len(states)
    queries = [Query(do={net.decision: a}, given=dict(g)) for g in seen for a in actions]
    means = oracle.posterior_means(queries, [s for s in states for _ in actions])
    out = []
    for k in range(len(states)):
        rows = means[k * len(actions) : (k + 1) * len(actions)]
        out.append({o: torch.stack([r[o] for r in rows]) for o in net.outcomes})
    return out


def expected_utilities(
    oracle: Oracle, states: Sequence[BeliefState], utilities: Sequence[Utility]
) -> torch.Tensor:
    """``(len(states), len(utilities), actions)``: every belief state against every utility."""
    marginals = action_marginals(oracle, states)
    return torch.stack([torch.stack([u.expected(m) for u in utilities]) for m in marginals])
