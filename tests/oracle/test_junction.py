"""The junction tree pass (batches of mixed structure) against the reference enumerator, the
einsum engine and the tree's own invariants."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from crux.oracle import junction
from crux.oracle.junction import JunctionTree, elimination_cliques
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from tests.oracle.test_networks import random_queries
from tests.oracle.test_properties import PARTIES, close, traced, valid
from crux.worldmodel import reference
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import Model, load_model

DATA = Path(__file__).resolve().parent.parent / "data"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"
NETWORKS = ["asia", "cancer", "earthquake", "sachs", "survey", "alarm", "child"]


def spy(monkeypatch) -> list[int]:
    """Count the junction tree passes (and the queries in each)."""
    calls: list[int] = []
    real = JunctionTree.marginals

    def counting(self, *args, **kwargs):
        calls.append(args[-1] if args else kwargs["batch"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JunctionTree, "marginals", counting)
    return calls


@pytest.mark.parametrize("name", NETWORKS)
def test_the_tree_is_a_junction_tree(name):
    """Every family lies in a clique (its table has a home), every clique is maximal, the tree
    spans the cliques, and the cliques holding a variable are connected (running intersection)."""
    net = load_model(DATA / f"{name}.bif.gz").network
    tree = JunctionTree(net)
    cliques = [set(c.variables) for c in tree.cliques]
    assert all(not a < b for a in cliques for b in cliques)
    assert len(tree.order) == len(cliques) == len(set(tree.order))
    for v in net.order:
        assert {v, *net.parents[v]} <= cliques[tree.family_home[v]]
        holding = {i for i, c in enumerate(cliques) if v in c}
        # connected: all but one of the holding cliques have their tree parent holding v too
        tops = [i for i in holding if tree.parent[i] is None or tree.parent[i] not in holding]
        assert len(tops) == 1, (v, tops)


def test_big_cliques_with_small_factors_are_contracted():
    """insurance's cliques of 28,800, 7,200 and 2,400 numbers hold small tables and messages:
    their messages are contracted (never more than 9,600 numbers at once), small cliques are
    materialised."""
    net = load_model(DATA / "insurance.bif.gz").network
    auto, every, none = (JunctionTree(net, contract=c) for c in ("auto", "all", "none"))
    sizes = [math.prod(auto.cliques[i].shape) for i in auto.contracted]
    assert {2400, 7200, 28800} <= set(sizes) and min(sizes) >= junction._CONTRACTED_CELLS
    assert every.contracted == set(every.order) and none.contracted == set()
    assert none.cells == sum(math.prod(c.shape) for c in none.cliques) > auto.cells > every.cells
    with pytest.raises(ValueError, match="contract"):
        JunctionTree(net, contract="some")


def test_a_clique_too_large_gives_up():
    net = load_model(DATA / "alarm.bif.gz").network
    assert elimination_cliques(net, net.order, max_cells=10) is None
    assert elimination_cliques(net, net.order, max_cells=0) is None
    assert not JunctionTree(net, max_cells=10).fits
    assert JunctionTree(net).fits


def _chain(count: float, roots: str = "A") -> dict:
    """A -> B -> C -> E -> F -> G (and a lone root per further letter of ``roots``), each root
    seen in a state only a trace of weight ``count`` allows (:func:`traced`)."""
    variables: dict = {}
    before, states = "A", ["a0", "a1"]
    for var in "BCEFG":
        variables[var] = {"states": ["x0", "x1"], "parents": [before], "table": dict(zip(states, ([0.7, 0.3], [0.2, 0.8])))}
        before, states = var, ["x0", "x1"]
    return traced(variables, count, roots, outcome="G")


@pytest.mark.parametrize("count, roots", [(1e-280, "A"), (1.1e-308, "A"), (5e-324, "A"), (1e-140, "AH"), (1e-150, "AH")])
@pytest.mark.parametrize("contract", ["none", "all"])
def test_evidence_too_light_is_impossible_however_far_from_the_root(count, roots, contract):
    """The tree divides each message by its weight on the way up; the evidence's weight is the
    product of all of them, and of every part's (a lone H seen too: 1e-150 squared is under the
    floor, 1e-140 squared is not).  Weighed at the root alone, a trace of evidence five cliques
    away was answered (A's posterior [5.5e-18, 0.0], not even normalised) where the einsum
    engine and the enumerator refuse it: now every route draws the same line."""
    from crux.oracle.exact import _FLOOR

    scenario = valid(_chain(count, roots))
    possible = count ** len(roots) > _FLOOR[torch.float64]
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2)
    oracle.router.engine("tree").kernel = JunctionTree(oracle.model.network, contract=contract)
    for target in "ABCEFG":
        want = reference.ask(scenario, "agent", {"D": "go"}, {}, [target])[target] if possible else None
        one = Query(do={"D": "go"}, outcomes=[target], as_="agent")
        other = Query(do={"D": "stay", "B": "x0"}, outcomes=["G"], as_="agent")
        for batch in ([one], [one, other], [other, one]):  # alone: einsum; with another structure: the tree
            if possible:
                answer = oracle.posterior_means(batch)[batch.index(one)][target].tolist()
                assert close(answer, want, 1e-12), (target, batch)
            else:
                with pytest.raises(QueryError, match="probability 0"):
                    oracle.posterior_means(batch)


@pytest.mark.parametrize("count", [1e-291, 3e-291, 1e-290])
@pytest.mark.parametrize("contract", ["none", "all"])
def test_evidence_just_over_the_floor_is_answered_normalised(count, contract):
    """A -> B (ten states) -> C, A seen in a state its prior rules out but for a trace: C's
    clique sends B's message up with weight 10, so A's clique weighs a tenth of the evidence.
    Where the evidence is over the floor and A's clique under it, A's answer was divided by the
    floor, not by its weight ([0.30, 0] for a trace of 3e-291): now it is the enumerator's."""
    ten = [f"b{i}" for i in range(10)]
    scenario = valid(traced({
        "B": {"states": ten, "parents": ["A"], "table": {"a0": [0.1] * 10, "a1": [0.1] * 10}},
        "C": {"states": ["c0", "c1"], "parents": ["B"], "table": {b: [0.5, 0.5] for b in ten}},
    }, count))
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2)
    oracle.router.engine("tree").kernel = JunctionTree(oracle.model.network, contract=contract)
    other = Query(do={"D": "stay", "B": "b0"}, outcomes=["C"], as_="agent")
    for target in "ABC":
        one = Query(do={"D": "go"}, outcomes=[target], as_="agent")
        try:
            want = reference.ask(scenario, "agent", {"D": "go"}, {}, [target])[target]
        except ZeroDivisionError:
            with pytest.raises(QueryError, match="probability 0"):
                oracle.posterior_means([one, other])
            continue
        assert close(oracle.posterior_means([one, other])[0][target].tolist(), want, 1e-12), target


@pytest.mark.parametrize("name, contract", [("alarm", "none"), ("alarm", "all"), ("insurance", "auto"), ("insurance", "all")])
@pytest.mark.parametrize("share", [0.0, 0.5, 1.01])
def test_mixed_batches_run_in_one_tree_pass_and_equal_the_einsum_engine(monkeypatch, share, name, contract):
    """Whether cliques are computed for every query (share 0), for the queries that need them
    only (above 1), or for all once half need them, and whether they are materialised or their
    messages contracted from their factors, the answers are the einsum engine's."""
    monkeypatch.setattr("crux.oracle.junction._ALL_ROWS", share)
    model = load_model(DATA / f"{name}.bif.gz")
    oracle = Oracle(model, device="cpu", samples=2)
    oracle.router.engine("tree").kernel = JunctionTree(model.network, contract=contract)
    einsum = Oracle(model, device="cpu", samples=2)
    einsum.router.engine("tree").kernel = None  # no junction tree: every query is one einsum contraction
    found = [Query(do=d, given=g, outcomes=[t]) for d, g, t in random_queries(model, 60, seed=3)]
    possible, refused = [], []
    for q in found:
        try:
            possible.append((q, einsum.posterior_means([q])[0]))
        except QueryError:
            refused.append(q)
    calls = spy(monkeypatch)
    batched = oracle.posterior_means([q for q, _ in possible])
    assert calls == [len(possible)]
    for (q, alone), together in zip(possible, batched):
        target = q.outcomes[0]
        assert torch.allclose(together[target], alone[target], atol=1e-13, rtol=0), q
    for q in refused:  # and what the einsum engine refuses, the tree refuses
        with pytest.raises(QueryError, match=f"query {len(possible) + 1}: the evidence has probability 0"):
            oracle.posterior_means([*(p for p, _ in possible), q])


def test_one_structure_is_one_contraction_and_more_go_to_the_tree(monkeypatch):
    """A batch of one structure (even a single new query) is one einsum contraction; a batch of
    several structures is one tree pass; both give the same numbers."""
    model = load_model(DATA / "asia.bif.gz")
    calls = spy(monkeypatch)
    oracle = Oracle(model, device="cpu", samples=2)
    one = [Query(do={"smoke": "yes"}, outcomes=["dysp"])]
    many = [Query(do={"smoke": s}, given={"xray": x}, outcomes=["dysp"]) for s in ("yes", "no") for x in ("yes", "no")] * 2
    first = oracle.posterior_means(one)
    oracle.posterior_means(many)  # 8 of one structure
    assert calls == []
    mixed = oracle.posterior_means([*one, many[0]])
    assert calls == [2]
    assert torch.allclose(first[0]["dysp"], mixed[0]["dysp"], atol=1e-14, rtol=0)


def test_batches_follow_the_parties_tables(monkeypatch):
    """Batches alternating between parties' beliefs (one tree, other tables each call): the
    answers equal the einsum engine's, call after call."""
    model = Model.from_scenario(load_scenario(EXAMPLE))
    net = model.network
    oracle = Oracle(model, device="cpu", samples=2)
    einsum = Oracle(model, device="cpu", samples=2)
    einsum.router.engine("tree").kernel = None
    calls = spy(monkeypatch)
    first, *others = net.outcomes
    for action in net.states[net.decision]:
        for party in PARTIES:
            for outcome in others:
                qs = [Query(do={net.decision: action}, outcomes=[o], as_=party) for o in (first, outcome)]
                got, want = oracle.posterior_means(qs), einsum.posterior_means(qs)
                for g, w, o in zip(got, want, (first, outcome)):
                    assert torch.allclose(g[o], w[o], atol=1e-14, rtol=0), (action, party, o)
    assert len(calls) == len(net.states[net.decision]) * len(PARTIES) * len(others)


def test_chunks_of_a_large_batch_equal_one_pass(monkeypatch):
    model = load_model(DATA / "child.bif.gz")
    qs = [Query(do=d, given=g, outcomes=[t]) for d, g, t in random_queries(model, 40, seed=5)]
    oracle = Oracle(model, device="cpu", samples=2)
    try:
        whole = oracle.posterior_means(qs)
    except QueryError:
        pytest.skip("a random query has impossible evidence")
    monkeypatch.setattr("crux.oracle.junction.TREE_CELLS", 1)  # one query per pass
    calls = spy(monkeypatch)
    parts = oracle.posterior_means(qs)
    assert calls == [1] * len(qs)
    for a, b in zip(whole, parts):
        for t in a:
            assert torch.equal(a[t], b[t])


def test_impossible_evidence_names_its_query():
    model = load_model(DATA / "asia.bif.gz")
    oracle = Oracle(model, device="cpu", samples=2)
    # asia's `either` is a logical OR: lung=yes with either=no cannot happen.
    good = Query(do={"smoke": "yes"}, outcomes=["dysp"])
    bad = Query(do={"asia": "yes"}, given={"lung": "yes", "either": "no"}, outcomes=["dysp"])
    with pytest.raises(QueryError, match="query 2: the evidence has probability 0"):
        oracle.posterior_means([good, bad])


def test_a_tree_that_does_not_fit_leaves_the_batch_to_the_einsum_engine(monkeypatch):
    model = load_model(DATA / "alarm.bif.gz")
    qs = [Query(do=d, given=g, outcomes=[t]) for d, g, t in random_queries(model, 20, seed=9)]
    calls = spy(monkeypatch)
    small = Oracle(model, device="cpu", samples=2, max_bytes=8 * 4 * 50)  # cliques of <= 50 numbers
    roomy = Oracle(model, device="cpu", samples=2)
    try:
        want = roomy.posterior_means(qs)
    except QueryError:
        pytest.skip("a random query has impossible evidence")
    assert len(calls) == 1
    got = small.posterior_means(qs)
    assert len(calls) == 1  # no second pass: the tree did not fit
    for a, b in zip(got, want):
        for t in a:
            assert torch.allclose(a[t], b[t], atol=1e-13, rtol=0)


def test_a_tree_too_costly_per_query_is_not_used(monkeypatch):
    model = load_model(DATA / "alarm.bif.gz")
    qs = [Query(do=d, given=g, outcomes=[t]) for d, g, t in random_queries(model, 20, seed=9)]
    calls = spy(monkeypatch)
    monkeypatch.setattr("crux.oracle.junction.TREE_MAX_CELLS", 1000)  # alarm's tree holds 1,065
    try:
        Oracle(model, device="cpu", samples=2).posterior_means(qs)
    except QueryError:
        pytest.skip("a random query has impossible evidence")
    assert calls == []


def test_queries_that_leave_the_decision_unset_keep_their_error(monkeypatch):
    """On a scenario the tree takes only the queries that set the decision: the others go to the
    einsum engine, which says when an answer depends on the decision."""
    model = Model.from_scenario(load_scenario(EXAMPLE))
    net = model.network
    oracle = Oracle(model, device="cpu", samples=2)
    action = net.states[net.decision][0]
    calls = spy(monkeypatch)
    fine = [Query(do={net.decision: action}, outcomes=[o], as_=p) for o in net.outcomes for p in PARTIES]
    assert len(oracle.posterior_means(fine)) == len(fine)
    assert calls == [len(fine)]
    with pytest.raises(QueryError, match="depends on the decision"):
        oracle.posterior_means([*fine, Query(outcomes=[net.outcomes[0]])])


@pytest.mark.parametrize("name", ["alarm", "child", "sachs"])
def test_the_root_is_where_a_typical_query_costs_least(name):
    """The root found for every clique at once (moving it edge by edge) is the one a direct
    count, rooting the tree at each clique in turn, finds cheapest (sachs's tree is a forest)."""
    import networkx as nx

    net = load_model(DATA / f"{name}.bif.gz").network
    tree = JunctionTree(net)
    graph = nx.Graph((i, p) for i, p in tree.parent.items() if p is not None)
    graph.add_nodes_from(tree.parent)
    size = [math.prod(c.shape) for c in tree.cliques]
    share = 1 / len(net.order)

    def cost(root: int, part: set[int]) -> float:
        parent = {root: None, **{b: a for a, b in nx.bfs_edges(graph, root)}}
        rooted = nx.bfs_tree(graph, root)
        total = 0.0
        for i in part:
            below = {i} | nx.descendants(rooted, i)
            t = sum(share for v in net.order if tree.family_home[v] in below)
            a = sum(share for v in net.order if tree.home[v] in below)
            total += size[i] * (1 - (1 - min(t, 1.0)) ** junction._TOUCHED + a)
        assert parent[root] is None
        return total

    for root in tree.roots:
        part = nx.node_connected_component(graph, root)
        costs = {i: cost(i, part) for i in part}
        assert costs[root] == pytest.approx(min(costs.values()), rel=1e-9)


def test_pattern_keys_are_equal_exactly_when_every_code_is():
    """Queries' keys (one int64 per query from several columns of codes) match exactly when all
    their codes do, also when the codes' ranges multiply past 2^62 and are renumbered."""
    from crux.oracle.junction import _mixed_radix

    generator = torch.Generator().manual_seed(0)
    columns = [(torch.randint(0, 3, (200,), generator=generator) * (1 << 38), 1 << 40) for _ in range(4)]
    columns.append((torch.randint(0, 2, (200,), generator=generator), 2))
    key = _mixed_radix(columns)
    codes = list(zip(*[c.tolist() for c, _ in columns]))
    for a in range(0, 200, 7):
        for b in range(200):
            assert (key[a] == key[b]).item() == (codes[a] == codes[b])


def test_one_structure_asking_about_many_variables_takes_the_tree(monkeypatch):
    """A batch of one structure asking about many variables (a session's upstream marginals) is
    one tree pass, where the einsum engine would contract once per variable: the same numbers."""
    model = load_model(DATA / "alarm.bif.gz")
    net = model.network
    targets = [v for v in net.order if net.parents[v]][:12]
    qs = [Query(given={"HR": s}, outcomes=targets) for s in net.states["HR"]]
    einsum = Oracle(model, device="cpu", samples=2)
    einsum.router.engine("tree").kernel = None
    want = einsum.posterior_means(qs)
    calls = spy(monkeypatch)
    got = Oracle(model, device="cpu", samples=2).posterior_means(qs)
    assert calls == [len(qs)]
    for g, w in zip(got, want):
        for t in targets:
            assert torch.allclose(g[t], w[t], atol=1e-13, rtol=0), t
    few = [Query(given={"HR": s}, outcomes=targets[:2]) for s in net.states["HR"]]
    Oracle(model, device="cpu", samples=2).posterior_means(few)
    assert calls == [len(qs)]  # asking about a few: one einsum contraction per target, no tree
