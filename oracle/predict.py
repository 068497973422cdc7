"""What each action would lead to, for many belief states at once: the predictions a decision is
weighed on.

The oracle predicts and never ranks: these functions give the outcome marginals of every action
(and the situations a party thinks possible); weighing them by utilities is ``values/``'s job.
Each runs as one batched oracle call (one per variable for :func:`possible_situations`): the belief
states' tables are stacked, not looped over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.worldmodel.compile import BeliefState

POSSIBLE = 1e-12
"""A state less probable than this under a party's beliefs is taken as impossible."""


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


def possible_situations(
    oracle: Oracle,
    beliefs: BeliefState,
    variables: Sequence[str],
    do: Mapping[str, str] | None = None,
    possible: float = POSSIBLE,
) -> list[dict[str, str]]:
    """Every combination of states of ``variables`` that ``beliefs`` (doing ``do``) give a
    probability above ``possible``: a fact held for certain rules its variable's other states out.
    Built one variable at a time, each given the ones before, in one batched call per variable."""
    net = oracle.model.network
    situations: list[dict[str, str]] = [{}]
    for var in variables:
        queries = [Query(do=dict(do or {}), given=s, outcomes=[var]) for s in situations]
        answers = oracle.posterior_means(queries, [beliefs] * len(queries))
        situations = [
            {**s, var: state}
            for s, answer in zip(situations, answers)
            for state, p in zip(net.states[var], answer[var].tolist())
            if p > possible
        ]
    return situations
