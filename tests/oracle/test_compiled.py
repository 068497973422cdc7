"""Compiled structures (the einsum engine's joint over every state of what a structure sets,
sees and asks, read off by indexing) against the per-query one-hot contraction and the
reference enumerator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from tests.oracle.test_properties import PARTIES, SLOW_DATA, close, queries, scenarios, sibling, valid
from crux.worldmodel import reference
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import Model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"


def one_hot_only(monkeypatch) -> None:
    monkeypatch.setattr("crux.oracle.exact._COMPILED_CELLS", 0)


@settings(max_examples=120, deadline=None, suppress_health_check=SLOW_DATA)
@given(raw=scenarios(), data=st.data())
def test_compiled_equals_one_hot_contraction(raw, data):
    """Batches of one structure and one party (so the tables are shared and the structure is
    compiled), outcomes that may be set or seen themselves: the same numbers, with intervals,
    as contracting one-hot vectors per query."""
    scenario = valid(raw)
    model = Model.from_scenario(scenario)
    first = data.draw(queries(scenario), label="query")
    rest = data.draw(st.lists(sibling(scenario, first), max_size=4), label="siblings")
    batch = [first, *(q.model_copy(update={"as_": first.as_}) for q in rest)]
    compiled = Oracle(model, device="cpu", samples=5, seed=2)
    try:
        want = compiled.ask_many(batch)
    except QueryError as err:  # impossible evidence (or an unset decision): refused the same way
        with pytest.MonkeyPatch.context() as patch, pytest.raises(QueryError) as other:
            one_hot_only(patch)
            Oracle(model, device="cpu", samples=5, seed=2).ask_many(batch)
        assert str(other.value) == str(err)
        return
    with pytest.MonkeyPatch.context() as patch:
        one_hot_only(patch)
        got = Oracle(model, device="cpu", samples=5, seed=2).ask_many(batch)
    for a, b in zip(want, got):
        for var in a.outcomes:
            assert close(a.outcomes[var].p, b.outcomes[var].p, 1e-12), var
            for lo_hi, lo_hi2 in zip(a.outcomes[var].interval, b.outcomes[var].interval):
                assert close(lo_hi, lo_hi2, 1e-12), var


def test_compiled_structures_follow_the_parties_tables():
    """One structure asked as agent, human, world, agent again: each answer is that party's
    (a compiled structure is reused only with the very tables it was made from)."""
    scenario = load_scenario(EXAMPLE)
    model = Model.from_scenario(scenario)
    net = model.network
    oracle = Oracle(model, device="cpu", samples=2)
    for party in (*PARTIES, "agent", "human"):
        for action in net.states[net.decision]:
            for road in net.states["road"]:
                q = {"do": {net.decision: action}, "given": {"road": road}}
                got = oracle.posterior_means([Query(**q, outcomes=list(net.outcomes), as_=party)])[0]
                want = reference.ask(scenario, party, q["do"], q["given"], list(net.outcomes))
                for var in net.outcomes:
                    assert close(got[var].tolist(), want[var], 1e-12), (party, action, road, var)
    assert len(oracle.router.engine("einsum").kernel._compiled) > 0


def test_a_structure_too_large_to_compile_is_contracted_per_query(monkeypatch):
    scenario = load_scenario(EXAMPLE)
    model = Model.from_scenario(scenario)
    net = model.network
    batch = [Query(do={net.decision: a}, outcomes=list(net.outcomes), as_="human") for a in net.states[net.decision]]
    want = Oracle(model, device="cpu", samples=2).posterior_means(batch)
    one_hot_only(monkeypatch)
    oracle = Oracle(model, device="cpu", samples=2)
    got = oracle.posterior_means(batch)
    assert len(oracle.router.engine("einsum").kernel._compiled) == 0
    for a, b in zip(want, got):
        for var in a:
            assert torch.allclose(a[var], b[var], atol=1e-14, rtol=0)
