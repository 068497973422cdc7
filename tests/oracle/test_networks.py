"""Exact answers on real networks (bnlearn's BIF files) against pyAgrum and the reference
enumerator; pruning and grouping against the plain, unpruned contraction."""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crux.oracle.exact import ExactEngine
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel import reference
from crux.worldmodel.model import load_model

gum = pytest.importorskip("pyagrum")

DATA = Path(__file__).resolve().parent.parent / "data"


def pyagrum_network(name: str, tmp_path: Path):
    plain = tmp_path / f"{name}.bif"
    plain.write_bytes(gzip.decompress((DATA / f"{name}.bif.gz").read_bytes()))
    return gum.loadBN(str(plain))


def pyagrum_answer(bn, do: dict, given: dict, target: str) -> list[float]:
    """P(target | do, given) with pyAgrum: cut the intervened variables' parents, fix them by
    hard evidence on a uniform root, then LazyPropagation (CausalImpact is wrong with do + evidence)."""
    cut = gum.BayesNet(bn)
    for var in do:
        for parent in list(cut.parents(var)):
            cut.eraseArc(parent, cut.idFromName(var))
        cut.cpt(var).fillWith(1.0).normalize()
    engine = gum.LazyPropagation(cut)
    engine.setEvidence({**do, **given})
    engine.makeInference()
    if engine.evidenceProbability() <= 0:
        raise gum.IncompatibleEvidence("the evidence has probability 0")
    return engine.posterior(target).tolist()


def random_queries(model, n: int, seed: int):
    rng = random.Random(seed)
    net = model.network
    out = []
    while len(out) < n:
        names = list(net.order)
        rng.shuffle(names)
        target, x, *rest = names
        evidence = rest[: rng.randint(0, 3)]
        do = {x: rng.choice(net.states[x])}
        given = {e: rng.choice(net.states[e]) for e in evidence}
        out.append((do, given, target))
    return out


@pytest.mark.parametrize("name", ["asia", "cancer", "sachs", "alarm", "survey"])
def test_exact_equals_pyagrum(name, tmp_path):
    """pyAgrum agrees to ~1e-8 (its BIF reader keeps fewer digits of each number than float64;
    it also rejects child's state 'Asy/Patch', so child is checked against pruning instead)."""
    model = load_model(DATA / f"{name}.bif.gz")
    bn = pyagrum_network(name, tmp_path)
    oracle = Oracle(model, device="cpu", samples=2)
    queries = random_queries(model, 25, seed=hash(name) % 1000)
    possible = []
    for do, given, target in queries:
        try:
            theirs = pyagrum_answer(bn, do, given, target)
        except gum.IncompatibleEvidence:
            continue
        possible.append((Query(do=do, given=given, outcomes=[target]), theirs))
    assert len(possible) >= 15
    answers = oracle.ask_many([q for q, _ in possible])  # batched, mixed structures
    for (query, theirs), answer in zip(possible, answers):
        assert answer.outcomes[query.outcomes[0]].p == pytest.approx(theirs, abs=1e-7), query


@pytest.mark.parametrize("name", ["asia", "cancer", "earthquake", "survey"])
def test_exact_equals_the_reference_enumerator(name):
    model = load_model(DATA / f"{name}.bif.gz")
    net, world = model.network, model.beliefs("world")
    tables = {}
    for var in net.order:
        mean = world.mean(var)
        tables[var] = {
            key: mean[net.row_index(var, dict(zip(net.parents[var], key)))].tolist()
            for key in itertools.product(*(net.states[p] for p in net.parents[var]))
        }
    oracle = Oracle(model, device="cpu", samples=2)
    for do, given, target in random_queries(model, 20, seed=7):
        try:
            expected = reference.enumerate_marginals(net.states, net.parents, tables, {}, do, given, [target])
        except ZeroDivisionError:
            continue
        answer = oracle.ask(Query(do=do, given=given, outcomes=[target]))
        assert answer.outcomes[target].p == pytest.approx(expected[target], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["asia", "sachs", "child", "survey"]), st.integers(0, 10_000), st.integers(1, 12))
def test_pruning_and_grouping_equal_the_unpruned_contraction(name, seed, count):
    """Barren variables dropped, queries grouped by structure: same numbers as contracting
    every variable for every query one at a time."""
    model = load_model(DATA / f"{name}.bif.gz")
    net, world = model.network, model.beliefs("world")
    queries = random_queries(model, count, seed)
    oracle = Oracle(model, device="cpu", samples=2)
    plain = ExactEngine(net, prune=False)
    tables = {v: world.mean(v).unsqueeze(0) for v in net.order}

    def index(assignment: dict) -> torch.Tensor:
        return torch.tensor([[net.states[v].index(s) for v, s in assignment.items()]], dtype=torch.long).reshape(1, -1)

    slow = {}
    for k, (do, given_, target) in enumerate(queries):
        try:
            slow[k] = plain.marginals(tables, {}, list(do), index(do), list(given_), index(given_), [target])[target][0, 0]
        except QueryError:
            pass  # impossible evidence
    possible = sorted(slow)
    batched = oracle.posterior_means([Query(do=queries[k][0], given=queries[k][1], outcomes=[queries[k][2]]) for k in possible])
    for k, answer in zip(possible, batched):
        assert answer[queries[k][2]].tolist() == pytest.approx(slow[k].tolist(), abs=1e-12)


def test_float32_is_close_to_float64():
    model = load_model(DATA / "alarm.bif.gz")
    queries = [Query(do=d, given=g, outcomes=[t]) for d, g, t in random_queries(model, 30, seed=11)]
    wide = Oracle(model, device="cpu")
    narrow = Oracle(model, device="cpu", dtype=torch.float32)
    try:
        exact = wide.posterior_means(queries)
    except QueryError:
        pytest.skip("a random query had impossible evidence")
    for a, b in zip(exact, narrow.posterior_means(queries)):
        for t in a:
            assert b[t].tolist() == pytest.approx(a[t].tolist(), abs=1e-5)
