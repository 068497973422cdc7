"""Belief graphs: provenance, hypothetical beliefs, and diffs."""

from __future__ import annotations

import pytest

from crux.beliefs.diff import differences, upstream_variables
from crux.beliefs.graph import BeliefGraph, FactRecord
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL
from crux.worldmodel import reference
from crux.worldmodel.model import load_model


@pytest.fixture(scope="module")
def model():
    return load_model(CANONICAL)


def test_initial_graph_holds_the_known_facts(model):
    g = BeliefGraph.initial(model.scenario, model.network, "agent")
    assert [r.fact for r in g.records] == ["road_sensor", "radar", "fleet_logs"]
    assert all(r.origin == "own" and r.turn == 0 and r.status == "held" for r in g.records)
    assert g.informing() == {"road": ["road_sensor"], "oncoming": ["radar"], "crash": ["fleet_logs"]}


def test_accepting_returns_a_new_graph_and_matches_the_reference(model):
    g = BeliefGraph.initial(model.scenario, model.network, "human")
    h = g.with_facts(["radar"], origin="agent", turn=2)
    assert not g.holds("radar") and h.holds("radar") and h.record("radar").origin == "agent"
    oracle = Oracle(model, device="cpu")
    from crux.oracle.query import Query

    [p] = oracle.posterior_means([Query(do={"action": "swerve"}, outcomes=["crash"])], [h.state])
    scenario = model.scenario.model_copy(deep=True)
    scenario.parties.human.beliefs.knows.append("radar")
    expected = reference.ask(scenario, "human", {"action": "swerve"}, {}, ["crash"])["crash"]
    assert p["crash"].tolist() == pytest.approx(expected, abs=1e-12)


def test_rejected_and_discounted_facts(model):
    g = BeliefGraph.initial(model.scenario, model.network, "human")
    rejected = g.with_record(FactRecord("radar", "agent", 1, "rejected"))
    assert rejected.seen("radar") and not rejected.holds("radar")
    assert "oncoming" not in rejected.state.likelihood
    discounted = g.with_record(FactRecord("radar", "agent", 1, "accepted", reliability=0.6))
    assert discounted.state.likelihood["oncoming"].tolist() == pytest.approx([0.4, 0.6])


def test_diff_finds_state_and_mechanism_differences(model):
    oracle = Oracle(model, device="cpu")
    a = BeliefGraph.initial(model.scenario, model.network, "agent")
    h = BeliefGraph.initial(model.scenario, model.network, "human")
    assert upstream_variables(a) == ["road", "animal", "oncoming"]
    diffs = {(d.variable, None if d.row is None else tuple(d.row.values())): d for d in differences(oracle, a, h)}
    assert set(diffs) == {("road", None), ("animal", None), ("oncoming", None), ("crash", ("wet", "swerve", "car"))}
    assert "human's priors" in diffs[("road", None)].causes
    assert diffs[("crash", ("wet", "swerve", "car"))].a[1] == pytest.approx(73 / 220)


def test_a_discounted_counts_fact_counts_less(model):
    g = BeliefGraph.initial(model.scenario, model.network, "human")
    half = g.with_record(FactRecord("fleet_logs", "agent", 1, "accepted", reliability=0.5))
    row = half.state.concentration["crash"][1, 1, 1]  # wet, swerve, car
    assert row.tolist() == pytest.approx([20 * 0.45 + 69, 20 * 0.55 + 31])
