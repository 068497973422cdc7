"""The oracle's resolver (names checked once per shape of query, states looked up) against the
full check, :func:`oracle.query.resolve`: the same resolved queries and the same errors."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError, Resolver, resolve
from crux.worldmodel.model import Model, load_model

DATA = Path(__file__).resolve().parent.parent / "data"
GAUSSIAN = Path(__file__).resolve().parent / "linear_gaussian.yaml"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"


def full(model: Model, query: Query):
    try:
        return resolve(query, model.network, model.parties, model.default_party, echo=False)
    except QueryError as err:
        return str(err)


def fast(resolver: Resolver, query: Query):
    try:
        found = resolver(query, echo=False)
    except QueryError as err:
        return str(err)
    assert found.structure == (found.party, tuple(v for v, _ in found.do), tuple(v for v, _ in found.given), found.outcomes)
    return found


def spellings(model: Model):
    """Variable and state names as written, in other cases, padded, and wrong; numbers for the
    continuous variables (and a word that is not one)."""
    net = model.network
    names = st.sampled_from(list(net.order)).flatmap(
        lambda v: st.sampled_from([v, v.upper(), f" {v.lower()} ", v + "x"])
    )

    def state(var: str):
        var = var.strip()
        match = next((v for v in net.order if v.casefold() == var.casefold()), None)
        if match is None:
            return st.just("s")
        if match in net.continuous:
            return st.sampled_from(["1.5", "-2", "nan", "fast"])
        return st.sampled_from(list(net.states[match])).flatmap(lambda s: st.sampled_from([s, s.upper(), f"{s} ", "nope"]))

    pairs = st.dictionaries(names, st.just(None), max_size=3).flatmap(
        lambda d: st.tuples(*[state(k).map(lambda s, k=k: (k, s)) for k in d]) if d else st.just(())
    )
    return st.builds(
        lambda do, seen, outcomes, party: Query(do=dict(do), given=dict(seen), outcomes=outcomes, as_=party),
        pairs, pairs, st.lists(names, max_size=2), st.sampled_from([None, "agent", "human", "world"]),
    )


MODELS = {"example": EXAMPLE, "asia": DATA / "asia.bif.gz", "gaussian": GAUSSIAN}


@functools.cache
def loaded(name: str) -> Model:
    return load_model(MODELS[name])


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batches_resolve_as_the_full_check(name, data):
    """Query by query through one resolver (its shapes remembered across the batch, its first
    query of a shape failing or not): each is what the full check makes of it, or its error."""
    model = loaded(name)
    resolver = Resolver(model.network, model.parties, model.default_party, limit=4)
    batch = data.draw(st.lists(spellings(model), min_size=1, max_size=12), label="batch")
    batch = batch + [q for q in batch for _ in range(2)]  # every shape met again, states and all
    for q in data.draw(st.permutations(batch), label="order"):
        want = full(model, q)
        event("error" if isinstance(want, str) else "resolved")
        assert fast(resolver, q) == want, q


def test_a_shape_keeps_its_names_and_reads_each_querys_states():
    model = load_model(DATA / "asia.bif.gz")
    resolver = Resolver(model.network, model.parties, model.default_party)
    first = resolver(Query(do={"SMOKE": "yes"}, given={"xray": "no"}, outcomes=["dysp"]), echo=False)
    again = resolver(Query(do={"SMOKE": "no"}, given={"xray": "yes"}, outcomes=["dysp"]), echo=False)
    assert first.do == (("smoke", 0),) and again.do == (("smoke", 1),)
    assert again.given == (("xray", 0),) and again.structure == first.structure
    assert resolver(Query(do={"SMOKE": "YES"}, given={"xray": "no"}, outcomes=["dysp"]), echo=False).do == (("smoke", 0),)
    with pytest.raises(QueryError, match="'maybe'"):
        resolver(Query(do={"SMOKE": "maybe"}, given={"xray": "no"}, outcomes=["dysp"]), echo=False)
    merged = resolver(Query(do={"smoke": "yes", "SMOKE": "no"}, outcomes=["dysp"]), echo=False)
    assert merged.do == (("smoke", 1),)  # one variable named twice: the full check merges them


def test_posterior_means_of_a_batch_equal_one_by_one():
    oracle = Oracle(load_model(DATA / "asia.bif.gz"), device="cpu")
    batch = [Query(do={"smoke": s}, given={"xray": x}, outcomes=["dysp", "lung"]) for s in ("yes", "no") for x in ("yes", "no")]
    together = oracle.posterior_means(batch * 3)
    for q, answer in zip(batch * 3, together):
        alone = Oracle(load_model(DATA / "asia.bif.gz"), device="cpu").posterior_means([q])[0]
        assert answer.keys() == alone.keys()
        for t in answer:
            assert answer[t].shape == (2,) and answer[t].tolist() == pytest.approx(alone[t].tolist(), abs=1e-15)
