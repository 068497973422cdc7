"""Utilities, range normalisation and batched expected utility (SCENARIO.md's worked numbers)."""

from __future__ import annotations

import pytest
import torch

from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL
from crux.values.expected import expected_utilities
from crux.values.tradeoffs import tradeoff, value_conflicts
from crux.values.utility import Utility, choose
from crux.worldmodel import reference
from crux.worldmodel.model import load_model


@pytest.fixture(scope="module")
def model():
    return load_model(CANONICAL)


def utility(model, party):
    return Utility.from_values(getattr(model.scenario.parties, party).values, model.network)


def test_worked_expected_utilities(model):
    oracle = Oracle(model, device="cpu")
    eu = expected_utilities(oracle, [model.beliefs("agent"), model.beliefs("human")], [utility(model, "agent"), utility(model, "human")])
    assert eu[0, 0].tolist() == pytest.approx([0.942063, 0.734606, 0.947111], abs=1e-6)
    assert eu[1, 1].tolist() == pytest.approx([0.917716, 0.933640, 0.642955], abs=1e-6)
    assert choose(eu[0, 0].tolist()) == 2 and choose(eu[1, 1].tolist()) == 1


def test_expected_utility_equals_brute_force(model):
    """The batched path against the reference enumerator and the definition of range normalisation."""
    oracle = Oracle(model, device="cpu")
    for b in ("agent", "human"):
        eu = expected_utilities(oracle, [model.beliefs(b)], [utility(model, v) for v in ("agent", "human")])
        for k, v in enumerate(("agent", "human")):
            values = getattr(model.scenario.parties, v).values
            low = sum(min([0.0, *values.get(o, {}).values()]) for o in model.network.outcomes)
            high = sum(max([0.0, *values.get(o, {}).values()]) for o in model.network.outcomes)
            for i, action in enumerate(model.network.states["action"]):
                p = reference.ask(model.scenario, b, {"action": action})
                raw = sum(
                    p[o][j] * values.get(o, {}).get(s, 0.0)
                    for o in model.network.outcomes
                    for j, s in enumerate(model.network.states[o])
                )
                assert float(eu[0, k, i]) == pytest.approx((raw - low) / (high - low), abs=1e-12)


def test_ties_go_to_the_first_action():
    assert choose([0.5, 0.5, 0.2]) == 0
    assert choose([0.2, 0.5, 0.5 + 1e-15]) == 1
    assert choose([0.2, 0.5, 0.6]) == 2


def test_flat_values_normalise_to_zero(model):
    flat = Utility.from_values({}, model.network)
    marginals = {o: torch.full((3, model.network.card(o)), 1.0 / model.network.card(o), dtype=torch.float64) for o in model.network.outcomes}
    assert flat.expected(marginals).tolist() == [0.0, 0.0, 0.0]


def test_value_conflicts_and_words(model):
    found = value_conflicts(utility(model, "agent"), utility(model, "human"), dict(model.network.states))
    names = [(c.outcome, c.state) for c in found]
    assert set(names) == {("harm", "cat"), ("crash", "crash"), ("harm", "squirrel")}
    assert tradeoff(found) == "you would risk crash=crash to avoid harm=cat; the agent would not"
    same = value_conflicts(utility(model, "human"), utility(model, "human"), dict(model.network.states))
    assert same == [] and tradeoff(same) is None
