"""Each party's predictions for every action, its expected utilities and its choice.

All actions under both parties' beliefs are asked in one batched oracle call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oracle.oracle import Oracle
from oracle.query import Answer, Query
from values.utility import Utility, choose
from worldmodel.compile import Party


@dataclass(frozen=True)
class Position:
    """What one party expects from each action, and (with values) what it would choose."""

    party: Party
    predictions: dict[str, Answer]
    expected_utility: dict[str, float] | None
    choice: str | None


def positions(oracle: Oracle, parties: tuple[Party, ...] = ("agent", "human"), *, valued: tuple[Party, ...] | None = None) -> dict[Party, Position]:
    """Positions of ``parties``; only those in ``valued`` (default: all) read their values."""
    model = oracle.model
    if model.scenario is None or model.network.decision is None:
        raise ValueError("positions need a scenario with a decision")
    net = model.network
    actions = net.states[net.decision]
    queries = [Query(do={net.decision: a}, as_=p) for p in parties for a in actions]
    answers = oracle.ask_many(queries)
    out: dict[Party, Position] = {}
    for k, party in enumerate(parties):
        predictions = dict(zip(actions, answers[k * len(actions) : (k + 1) * len(actions)]))
        expected = choice = None
        if valued is None or party in valued:
            utility = Utility.from_values(getattr(model.scenario.parties, party).values, net)
            marginals = {
                o: torch.tensor([predictions[a].outcomes[o].p for a in actions], dtype=torch.float64)
                for o in net.outcomes
            }
            eu = utility.expected(marginals).tolist()
            expected = dict(zip(actions, eu))
            choice = actions[choose(eu)]
        out[party] = Position(party=party, predictions=predictions, expected_utility=expected, choice=choice)
    return out
