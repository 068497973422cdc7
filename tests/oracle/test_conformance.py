"""One conformance suite for every inference engine behind :class:`oracle.engine.Engine`.

Every engine of ``Oracle.router.engines`` (the junction ``tree``, ``einsum``, closed-form
``gaussian``, the ``sampler``), in float64 and float32, on the CPU (and CUDA where a GPU is
present), is held to the same contract against the slow enumerator
(:mod:`worldmodel.reference`) on random scenarios (the strategies of ``test_properties``:
soft evidence, counts, per-party priors):

a. an engine that ``holds`` a batch answers it: one structure for einsum and the sampler,
   several structures (and one structure with many targets) for the tree; each target's
   ``(S, B, card)`` rows are its asking queries' (discrete ones on the oracle's device), and equal
   the reference (exact engines to 1e-9 in float64 and 1e-4 in float32; the sampler within
   :data:`SAMPLED_SE` of its standard errors plus :data:`SAMPLED_FLOOR`), whether answered in
   one call or in chunks by the router;
b. impossible evidence: an exact engine's ``impossible`` mask marks exactly the queries the
   reference refuses (in float32, also those whose evidence weighs under float32's floor), and
   the oracle's public call raises a ``QueryError`` naming one of them by number;
c. normal models: the Gaussian engine equals the closed form of ``test_gaussian``, the sampler
   lies within its standard errors of it, and both agree on random linear-Gaussian models;
d. ``holds`` is honest: what an engine does not hold it is never routed (einsum: a continuous
   target touching normal variables; tree: parameter draws, continuous networks, one structure
   asking about few targets; the sampler: several structures; gaussian: discrete targets).

Hypothesis runs derandomised (the same examples every run) and the sampler is seeded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace

import pytest
import torch
from crux.oracle.engine import Batch, Posterior
from crux.oracle.gaussian import Z90
from crux.oracle.junction import TREE_TARGETS, JunctionTree
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.oracle.router import Router
from crux.worldmodel import reference
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model, load_model
from crux.worldmodel.spec import Scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.oracle.test_exact import _zero_scenario
from tests.oracle.test_gaussian import MODEL as LINEAR_GAUSSIAN
from tests.oracle.test_gaussian import closed_form
from tests.oracle.test_properties import (
    SLOW_DATA,
    queries,
    row_keys,
    rows,
    scenarios,
    sibling,
    valid,
)

ENGINES = ("tree", "einsum", "gaussian", "sampler")
EXACT = ("tree", "einsum", "gaussian")
DTYPES = (torch.float64, torch.float32)
DEVICES = (
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")),
)


def matrix(engines: Sequence[str] = ENGINES):
    """Parametrise a test over engine x dtype x device."""

    def decorate(test):
        test = pytest.mark.parametrize("device", DEVICES)(test)
        test = pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])(test)
        return pytest.mark.parametrize("engine", engines)(test)

    return decorate


ATOL = {torch.float64: 1e-9, torch.float32: 1e-4}
"""Exact engines against the reference: float64 to the enumerator's own rounding; float32 to
its ~1e-7 relative precision, summed over the few products and sums of these small networks."""
FLOAT32_EVIDENCE = 1e-20
"""In float32, evidence weighing less than this (in float64) may be refused (float32's floor,
tiny / eps, is 1e-31, and values near it have lost their precision) or answered less exactly."""
PARTICLES = 20_000
"""Particles of a sampled answer on a discrete scenario (normal models: :data:`NORMAL_PARTICLES`)."""
NORMAL_PARTICLES = 50_000
SAMPLED_SE = 6.0
"""The sampler's mean lies within this many of its reported standard errors of the truth..."""
SAMPLED_FLOOR = 2e-3
"""... plus this (a state of probability 1e-5 may have no particle at all: standard error 0)."""
SAMPLED_EVIDENCE = 0.05
"""The sampler is held to the reference where the evidence weighs at least this: with weights
at most 1, the effective sample size is then about PARTICLES x 0.05 = 1,000 or more, enough for
its standard errors to be trusted.  Rarer evidence may have no particle at all (marked impossible)."""

CONFORMANCE = settings(
    max_examples=50, deadline=None, derandomize=True, suppress_health_check=[*SLOW_DATA, HealthCheck.filter_too_much]
)
"""Random scenarios, derandomised (the same examples every run), for the exact engines..."""
SAMPLED = settings(CONFORMANCE, max_examples=15)
"""... and for the sampler, whose answers take 20,000 particles per query."""


def event(text: str) -> None:
    """Count a kind of example (in hypothesis tests; elsewhere nothing)."""
    if currently_in_test_context():
        hypothesis_event(text)


def make_oracle(model: Model, dtype: torch.dtype, device: str, particles: int = PARTICLES) -> Oracle:
    return Oracle(model, device=device, dtype=dtype, samples=2, seed=0, particles=particles)


def batch_of(oracle: Oracle, batch: Sequence[Query], draws: bool = False) -> Batch:
    resolved = oracle._resolve(list(batch), echo=False)
    states = [oracle.model.beliefs(r.party) for r in resolved]  # one object per party, as the oracle's
    return Batch.of(oracle.work, resolved, states, draws=draws)


@contextmanager
def only(oracle: Oracle, name: str):
    """The oracle's public calls answered by engine ``name`` alone."""
    kept = oracle.router
    oracle.router = Router([kept.engine(name)], "auto")  # type: ignore[list-item]
    try:
        yield
    finally:
        oracle.router = kept


# -- what the reference says ------------------------------------------------------------------


class Truth:
    """The reference's answers to a scenario's queries, and the weight of each query's evidence."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self._weights: dict[tuple, float] = {}

    def answer(self, q: Query, outcomes: Sequence[str]) -> dict[str, list[float]] | None:
        """None where the reference refuses the evidence (ZeroDivisionError)."""
        try:
            return reference.ask(self.scenario, q.as_ or "agent", q.do, q.given, list(outcomes))
        except ZeroDivisionError:
            return None

    def weight(self, q: Query) -> float:
        """P(soft and hard evidence | do) under the party's mean numbers, by the chain rule over the
        reference's own conditionals (0 where it refuses a step: the whole weighs less still)."""
        party = q.as_ or "agent"
        key = (party, tuple(sorted(q.do.items())), tuple(sorted(q.given.items())))
        if key in self._weights:
            return self._weights[key]
        scenario = self.scenario
        tables, likelihood = reference.party_numbers(scenario, party)
        soft = {v: row for v, row in likelihood.items() if v not in q.do}  # an intervention cuts soft evidence
        weight, seen_soft, seen = 1.0, {}, {}
        try:
            for v, row in soft.items():
                p = reference.marginals(scenario, tables, seen_soft, q.do, {}, [v])[v]
                weight *= sum(a * b for a, b in zip(p, row))
                seen_soft[v] = row
            for v, state in q.given.items():
                p = reference.marginals(scenario, tables, soft, q.do, seen, [v])[v]
                weight *= p[scenario.world.variables[v].states.index(state)]
                seen[v] = state
        except ZeroDivisionError:
            weight = 0.0
        self._weights[key] = weight
        return weight


# -- the contract of one posterior --------------------------------------------------------------


def impossible_of(post: Posterior, size: int) -> list[bool]:
    """The posterior's mask of impossible queries (None: none is)."""
    if post.impossible is None:
        return [False] * size
    assert post.impossible.shape == (size,) and post.impossible.dtype == torch.bool, post.impossible
    return post.impossible.cpu().tolist()


def check_shape(name: str, batch: Batch, post: Posterior, dtype: torch.dtype, device: torch.device) -> None:
    """Shapes, dtype, device and method of a posterior of ``batch`` (without draws)."""
    net = batch.work.network
    assert set(post.p) == set(batch.targets), (name, set(post.p), batch.targets)
    assert getattr(post, "size", batch.size) == batch.size, (name, post)
    impossible_of(post, batch.size)
    assert post.method == ("exact" if name in EXACT else "sampled"), (name, post.method)
    for t, p in post.p.items():
        width = 4 if t in net.continuous else net.card(t)
        assert p.shape == (1, len(batch.asks[t]), width), (name, t, tuple(p.shape))
        if t not in net.continuous:  # computed where the tables are (the closed form: on the CPU)
            assert p.device.type == device.type, (name, t, p.device)
        # the oracle's dtype, or float64 where nothing in it needs a table (a target set by do;
        # the closed form, which works in float64 whatever the dtype)
        assert p.dtype in (dtype, torch.float64), (name, t, p.dtype)
    if name in EXACT:
        assert post.stderr is None, name
    else:
        assert post.stderr is not None and set(post.stderr) == set(batch.targets), name
        for t, se in post.stderr.items():
            width = 4 if t in net.continuous else net.card(t)
            assert se.shape == (len(batch.asks[t]), width), (name, t, tuple(se.shape))


def check_discrete(
    name: str, batch: Batch, post: Posterior, members: Sequence[Query], truth: Truth, dtype: torch.dtype, device
) -> None:
    """A posterior of a batch of discrete queries against the reference, row by row."""
    check_shape(name, batch, post, dtype, device)
    impossible = impossible_of(post, batch.size)
    for b, q in enumerate(members):
        asked = [t for t in batch.targets if b in batch.asks[t].tolist()]
        want = truth.answer(q, asked)
        rows = {t: batch.asks[t].tolist().index(b) for t in asked}
        got = {t: post.p[t][0, rows[t]].double().cpu() for t in asked}
        if impossible[b]:  # the protocol: an impossible query's rows are NaN
            assert all(bool(g.isnan().all()) for g in got.values()), (name, b, got)
        if want is None:
            event("evidence the reference refuses")
            if name in EXACT:  # float64's floor is the reference's; float32's is above it
                assert impossible[b], (name, b, q, got)
            continue
        if name in EXACT:
            light = dtype == torch.float32 and truth.weight(q) < FLOAT32_EVIDENCE
            if light:
                event("float32: evidence near its floor")
                continue
            assert not impossible[b], (name, b, q, truth.weight(q))
            for t in asked:
                assert torch.allclose(got[t], torch.tensor(want[t], dtype=torch.float64), atol=ATOL[dtype], rtol=0), (
                    name, q, t, got[t].tolist(), want[t],
                )
            continue
        if truth.weight(q) < SAMPLED_EVIDENCE:
            event("sampler: evidence too rare to hold it to the reference")
            continue
        assert not impossible[b], (name, b, q, truth.weight(q))
        for t in asked:
            se = post.stderr[t][rows[t]].double().cpu()  # type: ignore[index]
            error = (got[t] - torch.tensor(want[t], dtype=torch.float64)).abs()
            assert bool((error <= SAMPLED_SE * se + SAMPLED_FLOOR).all()), (name, q, t, got[t].tolist(), want[t], se.tolist())


def check_public(name: str, oracle: Oracle, members: Sequence[Query], truth: Truth, dtype: torch.dtype) -> None:
    """The oracle's public call, answered by this engine alone (the tree: with the others, as the
    oracle routes; the tree takes every batch of several structures).  A batch with impossible
    evidence is refused naming a query impossible for this engine and dtype; without those queries
    it is answered as the reference does; each of them, after the rest, is refused by number."""
    refused = {b for b, q in enumerate(members) if truth.answer(q, q.outcomes) is None}
    if name in EXACT:
        low = FLOAT32_EVIDENCE if dtype == torch.float32 else 0.0
        may = refused | {b for b, q in enumerate(members) if truth.weight(q) < low}
        must = refused
    else:  # the sampler refuses what no particle reaches: rare evidence, or impossible
        may = {b for b, q in enumerate(members) if truth.weight(q) < SAMPLED_EVIDENCE}
        must = set()
    alone = only(oracle, name) if name != "tree" else nullcontext()
    possible = [q for b, q in enumerate(members) if b not in may]
    with alone:
        try:
            answers = oracle.posterior_means(list(members))
        except QueryError as err:
            found = re.match(r"query (\d+): the evidence has probability 0", str(err))
            assert found, (name, str(err))
            assert int(found.group(1)) - 1 in may, (name, str(err), may)
            answers = None
        else:
            assert not must, (name, "answered queries whose evidence is impossible", must)
        if answers is None or may:
            answers = oracle.posterior_means(possible)
        for b in sorted(must):
            with pytest.raises(QueryError, match=rf"^(query {len(possible) + 1}: )?the evidence has probability 0"):
                oracle.posterior_means([*possible, members[b]])
    if name not in EXACT:
        return  # values: the sampler's direct answers are held to its standard errors
    for q, answer in zip(possible, answers):
        want = truth.answer(q, list(answer))
        assert want is not None
        for t, p in answer.items():
            assert torch.allclose(p.double(), torch.tensor(want[t], dtype=torch.float64), atol=ATOL[dtype], rtol=0), (
                name, q, t, p.tolist(), want[t],
            )


def answers_by(oracle: Oracle, name: str, batch: Batch, chunk: int) -> list[Posterior]:
    """The engine's answer to the batch in one call, and the router's in calls of ``chunk`` queries
    (the sampler: the router's alone, one call when ``chunk`` is the batch, to halve its time)."""
    engine = oracle.router.engine(name)
    whole = engine.answer(batch) if engine.exact else None  # type: ignore[union-attr]
    engine.most = lambda _batch: chunk  # type: ignore[union-attr, method-assign]
    try:
        chunked = oracle.router.answer(batch, engine)
    finally:
        del engine.most  # type: ignore[union-attr]
    return [chunked] if whole is None else [whole, chunked]


HOLDS = {
    # engine: (holds a batch of several structures, holds one structure asking about few targets)
    "tree": (True, False),
    "einsum": (False, True),
    "gaussian": (False, False),
    "sampler": (False, True),
}


# -- a, b. random discrete scenarios ----------------------------------------------------------------


@matrix(EXACT)
@CONFORMANCE
@given(raw=scenarios(), data=st.data())
def test_random_batches_equal_the_reference(engine, dtype, device, raw, data):
    random_batches(engine, dtype, device, raw, data)


@matrix(["sampler"])
@SAMPLED
@given(raw=scenarios(), data=st.data())
def test_random_batches_sampled_equal_the_reference(engine, dtype, device, raw, data):
    random_batches(engine, dtype, device, raw, data)


def random_batches(engine, dtype, device, raw, data):
    """A batch of several structures and parties, and a batch of one structure and several
    parties: who holds which is fixed, and each held batch is answered as the reference does,
    impossible evidence masked, in one call or in chunks; the public call agrees."""
    scenario = valid(raw)
    oracle = make_oracle(Model.from_scenario(scenario), dtype, device)
    if engine == "tree":  # every clique materialised, or every clique's messages contracted ("auto": none, so small)
        contract = data.draw(st.sampled_from(["none", "all"]), label="contract")
        oracle.router.engine("tree").kernel = JunctionTree(oracle.model.network, contract=contract)  # type: ignore[union-attr]
    truth = Truth(scenario)
    mixed = data.draw(st.lists(queries(scenario), min_size=2, max_size=8), label="several structures")
    first = data.draw(queries(scenario), label="query")
    one = [first, *data.draw(st.lists(sibling(scenario, first), min_size=1, max_size=4), label="siblings")]
    several, single = batch_of(oracle, mixed), batch_of(oracle, one)
    assert single.one_structure and len(single.targets) < TREE_TARGETS  # at most 6 variables
    held = oracle.router.engine(engine).holds  # type: ignore[union-attr]
    assert held(several) == HOLDS[engine][0 if not several.one_structure else 1], engine
    assert held(single) == HOLDS[engine][1], engine
    for batch, members in ((several, mixed), (single, one)):
        if not held(batch):
            continue
        event(f"{len({r.structure[1:] for r in batch.members})} structures")
        chunk = data.draw(st.integers(1, batch.size), label="chunk")
        for post in answers_by(oracle, engine, batch, chunk):
            check_discrete(engine, batch, post, members, truth, dtype, oracle.device)
        check_public(engine, oracle, members, truth, dtype)


@st.composite
def wide_scenarios(draw) -> dict:
    """A random scenario grown to at least TREE_TARGETS variables: binary children of one or
    two earlier variables each (the decision among them), with their own rows."""
    raw = draw(scenarios())
    variables = raw["world"]["variables"]
    k = 0
    while len(variables) < TREE_TARGETS:
        names = list(variables)
        parents = draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=2), label="parents")
        combos: list[tuple[str, ...]] = [()]
        for p in parents:
            combos = [(*c, s) for c in combos for s in variables[p]["states"]]
        variables[f"w{k}"] = {
            "states": ["no", "yes"],
            "parents": parents,
            "table": {draw(row_keys(c)): draw(rows(2)) for c in combos},
        }
        k += 1
    return raw


@matrix(EXACT)
@settings(CONFORMANCE, max_examples=25)
@given(raw=wide_scenarios(), data=st.data())
def test_one_structure_asking_about_many_targets(engine, dtype, device, raw, data):
    many_targets(engine, dtype, device, raw, data)


@matrix(["sampler"])
@SAMPLED
@given(raw=wide_scenarios(), data=st.data())
def test_one_structure_asking_about_many_targets_sampled(engine, dtype, device, raw, data):
    many_targets(engine, dtype, device, raw, data)


def many_targets(engine, dtype, device, raw, data):
    """One structure asking about every variable (at least TREE_TARGETS): the tree holds it, and
    so do einsum and the sampler; the answers are the reference's."""
    scenario = valid(raw)
    oracle = make_oracle(Model.from_scenario(scenario), dtype, device)
    truth = Truth(scenario)
    first = data.draw(queries(scenario), label="query").model_copy(update={"outcomes": list(scenario.world.variables)})
    members = [first, *data.draw(st.lists(sibling(scenario, first), max_size=3), label="siblings")]
    batch = batch_of(oracle, members)
    assert batch.one_structure and len(batch.targets) >= TREE_TARGETS
    holds = oracle.router.engine(engine).holds(batch)  # type: ignore[union-attr]
    assert holds == (engine != "gaussian"), engine
    if not holds:
        return
    chunk = data.draw(st.integers(1, batch.size), label="chunk")
    for post in answers_by(oracle, engine, batch, chunk):
        check_discrete(engine, batch, post, members, truth, dtype, oracle.device)


# -- b. impossible evidence, by construction ------------------------------------------------------

ZERO_ONE_STRUCTURE = [  # B is never b1 when A is a0: the second query is impossible
    Query(do={"D": "left"}, given={"A": "a0", "B": "b0"}, outcomes=["C", "A"], as_="world"),
    Query(do={"D": "left"}, given={"A": "a0", "B": "b1"}, outcomes=["C", "A"], as_="world"),
    Query(do={"D": "right"}, given={"A": "a1", "B": "b1"}, outcomes=["C", "A"], as_="agent"),
]
ZERO_SEVERAL = [
    Query(do={"D": "left"}, given={"A": "a1"}, outcomes=["B", "C"], as_="world"),
    Query(do={"D": "right"}, given={"A": "a0", "B": "b1"}, outcomes=["C"], as_="world"),
    Query(do={"D": "left"}, given={"B": "b1"}, outcomes=["A"], as_="agent"),  # the agent is sure B is b1
    Query(do={"D": "right"}, given={"A": "a0"}, outcomes=["C"], as_="agent"),  # ... so A is never a0
]


@matrix()
def test_structural_zeros_are_masked_and_named(engine, dtype, device):
    """Evidence a structural zero rules out: every engine that holds the batch (the sampler too:
    no particle can weigh anything) masks exactly those queries, and the public call names the
    first of them; their rows are NaN, the others' the reference's."""
    scenario = _zero_scenario()
    truth = Truth(scenario)
    oracle = make_oracle(Model.from_scenario(scenario), dtype, device)
    for members, impossible in ((ZERO_ONE_STRUCTURE, [False, True, False]), (ZERO_SEVERAL, [False, True, False, True])):
        assert [truth.answer(q, q.outcomes) is None for q in members] == impossible
        batch = batch_of(oracle, members)
        holds = oracle.router.engine(engine).holds(batch)  # type: ignore[union-attr]
        assert holds == HOLDS[engine][0 if not batch.one_structure else 1], (engine, batch.one_structure)
        if holds:
            post = oracle.router.engine(engine).answer(batch)  # type: ignore[union-attr]
            assert impossible_of(post, batch.size) == impossible
            assert post.first_impossible() == 1
            check_discrete(engine, batch, post, members, truth, dtype, oracle.device)
        if engine == "gaussian" or (engine == "tree" and batch.one_structure):
            continue  # the public call has no engine for these queries (checked by test_no_engine_...)
        with only(oracle, engine):  # the oracle groups queries by structure for einsum and the sampler
            with pytest.raises(QueryError, match=r"^query 2: the evidence has probability 0"):
                oracle.posterior_means(members)
            if engine != "tree":  # one query alone is refused without a number
                with pytest.raises(QueryError, match=r"^the evidence has probability 0"):
                    oracle.posterior_means([members[1]])


# -- c. normal models --------------------------------------------------------------------------------


def normal_cases() -> list[tuple[list[Query], list[dict[str, tuple[float, float]]]]]:
    """Batches of one structure on the linear-Gaussian model, each query with its closed form."""
    offset = {"normal": 0.0, "slow": -1.5}
    cases = []
    loads = [("slow", 3.0), ("slow", 1.0), ("normal", 2.2), ("normal", 2.0)]
    cases.append((
        [Query(do={"policy": p}, given={"load": str(x)}, outcomes=["distance", "speed"]) for p, x in loads],
        [closed_form(offset[p], load=x) for p, x in loads],
    ))
    cases.append((
        [Query(do={"policy": p}, outcomes=["distance", "load"]) for p in ("normal", "slow")],
        [closed_form(offset[p]) for p in ("normal", "slow")],
    ))
    distances = [("normal", 7.5), ("normal", 5.0), ("slow", 3.5), ("slow", 4.5)]  # within 3 sd of the prior
    cases.append((
        [Query(do={"policy": p}, given={"distance": str(d)}, outcomes=["load"]) for p, d in distances],
        [closed_form(offset[p], distance=d) for p, d in distances],
    ))
    return cases


def check_normal(name: str, post: Posterior, expected: Sequence[dict[str, tuple[float, float]]], dtype) -> None:
    """Means, sds and 90% intervals against the closed form: exactly (gaussian), or within the
    sampler's standard errors (the mean), 5% (the sd) and a tenth of an sd (the quantiles)."""
    assert not any(impossible_of(post, len(expected)))
    for t in expected[0]:
        for b, want in enumerate(expected):
            mean, sd = want[t]
            got = post.p[t][0, b].double().cpu().tolist()
            if name == "gaussian":
                closed = [mean, sd, mean - Z90 * sd, mean + Z90 * sd]
                atol = 1e-12 if dtype == torch.float64 else 1e-5
                assert got == pytest.approx(closed, abs=atol), (t, b, got, closed)
                continue
            se = float(post.stderr[t][b, 0])  # type: ignore[index]
            assert 0 < se < 0.05 * sd, (t, b, se)
            assert abs(got[0] - mean) <= SAMPLED_SE * se + 1e-6, (t, b, got, mean, se)
            assert got[1] == pytest.approx(sd, rel=0.05), (t, b, got, sd)
            assert got[2] == pytest.approx(mean - Z90 * sd, abs=0.1 * sd), (t, b, got)
            assert got[3] == pytest.approx(mean + Z90 * sd, abs=0.1 * sd), (t, b, got)


@matrix()
def test_normal_models_equal_the_closed_form(engine, dtype, device):
    """The linear-Gaussian model of ``test_gaussian`` (a set policy shifts the speed): the Gaussian
    engine holds every batch of continuous targets and is the closed form; the sampler holds them
    too and lies within its standard errors; einsum and the tree hold none."""
    model = load_model(LINEAR_GAUSSIAN)
    oracle = make_oracle(model, dtype, device, NORMAL_PARTICLES)
    for members, expected in normal_cases():
        batch = batch_of(oracle, members)
        assert all(batch.kind(t) == "normal" for t in batch.targets)
        holds = oracle.router.engine(engine).holds(batch)  # type: ignore[union-attr]
        assert holds == (engine in ("gaussian", "sampler")), (engine, batch.targets)
        if not holds:
            continue
        posts = answers_by(oracle, engine, batch, 1)
        for post in posts:
            check_shape(engine, batch, post, dtype, oracle.device)
            check_normal(engine, post, expected, dtype)


@matrix()
def test_mixed_kinds_of_targets_go_each_to_an_engine_that_holds_them(engine, dtype, device):
    """One structure asking about a normal target and a discrete one: no engine but the sampler
    holds both; the router sends each kind to the first engine that holds it, and merges."""
    model = load_model(LINEAR_GAUSSIAN)
    oracle = make_oracle(model, dtype, device, NORMAL_PARTICLES)
    members = [Query(do={"policy": p}, given={"load": "3"}, outcomes=["distance", "slip"]) for p in ("slow", "normal")]
    batch = batch_of(oracle, members)
    assert [batch.kind(t) for t in batch.targets] == ["normal", "discrete"]
    assert oracle.router.engine(engine).holds(batch) == (engine == "sampler")  # type: ignore[union-attr]
    slip = {"slow": [0.7 * 0.98 + 0.3 * 0.85, 0.7 * 0.02 + 0.3 * 0.15], "normal": [0.7 * 0.95 + 0.3 * 0.7, 0.7 * 0.05 + 0.3 * 0.3]}
    if engine == "sampler":
        post = oracle.router.answer(batch, oracle.router.engine("sampler"))
    else:  # the exact router: gaussian for distance, einsum for slip
        exact = Router([e for e in oracle.router.engines if e.exact], "exact")
        assert exact.route(batch.with_targets(["distance"])).name == "gaussian"  # type: ignore[union-attr]
        assert exact.route(batch.with_targets(["slip"])).name == "einsum"  # type: ignore[union-attr]
        post = exact.answer(batch)
        assert post.method == "exact"
    assert not any(impossible_of(post, batch.size))
    for b, p in enumerate(("slow", "normal")):
        got = post.p["slip"][0, b].double().cpu()
        tol = ATOL[dtype] if post.method == "exact" else SAMPLED_SE * post.stderr["slip"][b].double().cpu() + SAMPLED_FLOOR
        assert bool(((got - torch.tensor(slip[p], dtype=torch.float64)).abs() <= tol).all()), (engine, p, got)
        mean, sd = closed_form(-1.5 if p == "slow" else 0.0, load=3.0)["distance"]
        distance = post.p["distance"][0, b].double().cpu().tolist()
        assert distance[0] == pytest.approx(mean, abs=1e-6 if post.method == "exact" else 0.02), (engine, p, distance)
        assert distance[1] == pytest.approx(sd, rel=1e-6 if post.method == "exact" else 0.05), (engine, p, distance)


@st.composite
def normal_scenarios(draw) -> dict:
    """A decision and 2-4 normal variables, each linear in some earlier ones (the decision may
    shift a mean), with random weights and scales."""
    n = draw(st.integers(2, 4))
    names = [f"x{i}" for i in range(n)]
    variables: dict[str, dict] = {"act": {"states": ["a", "b"]}}
    for i, v in enumerate(names):
        parents = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=2)) if i else []
        law: dict = {
            "intercept": draw(st.floats(-3, 3)),
            "scale": draw(st.floats(0.3, 2.0)),
            "weights": {p: draw(st.floats(-1.5, 1.5)) for p in parents},
        }
        if draw(st.booleans()):
            law["offsets"] = {"act": {"b": draw(st.floats(-2, 2))}}
            parents = [*parents, "act"]
        variables[v] = {"parents": parents, "normal": law} if parents else {"normal": law}
    return {"crux": 1, "name": "random normal", "world": {"variables": variables, "decision": "act", "outcomes": names}}


@matrix(["gaussian"])
@settings(CONFORMANCE, max_examples=10)
@given(raw=normal_scenarios(), data=st.data())
def test_random_normal_models_equal_the_sampler(engine, dtype, device, raw, data):
    """Random linear-Gaussian models, a query setting the decision and maybe one variable, seeing
    one more near its prior mean: both the Gaussian engine and the sampler hold it (einsum and the
    tree do not); what is set or seen is its value, and the sampler's means lie within its standard
    errors of the Gaussian engine's, its sds within 5%."""
    scenario, problems = validate_data(raw)
    assert not problems and scenario is not None, problems
    oracle = make_oracle(Model.from_scenario(scenario), dtype, device, NORMAL_PARTICLES)
    names = [v for v in scenario.world.variables if v != "act"]
    do = {"act": data.draw(st.sampled_from(["a", "b"]), label="act")}
    if data.draw(st.booleans(), label="set one"):
        do[data.draw(st.sampled_from(names), label="set")] = str(data.draw(st.floats(-2, 2), label="value"))
    rest = [v for v in names if v not in do]
    given_: dict[str, str] = {}
    gaussian, sampler = oracle.router.engine(engine), oracle.router.engine("sampler")
    if rest and data.draw(st.booleans(), label="see one"):
        seen = data.draw(st.sampled_from(rest), label="seen")
        prior = gaussian.answer(batch_of(oracle, [Query(do=do, outcomes=[seen])]))  # type: ignore[union-attr]
        mean, sd = prior.p[seen][0, 0, :2].tolist()
        given_[seen] = str(mean + sd * data.draw(st.floats(-1.5, 1.5), label="z"))
    batch = batch_of(oracle, [Query(do=do, given=given_, outcomes=names)])
    assert all(batch.kind(t) == "normal" for t in names)
    assert gaussian.holds(batch) and sampler.holds(batch)  # type: ignore[union-attr]
    assert not oracle.router.engine("einsum").holds(batch) and not oracle.router.engine("tree").holds(batch)  # type: ignore[union-attr]
    exact, sampled = gaussian.answer(batch), sampler.answer(batch)  # type: ignore[union-attr]
    check_shape(engine, batch, exact, dtype, oracle.device)
    check_shape("sampler", batch, sampled, dtype, oracle.device)
    for t in names:
        mean, sd = exact.p[t][0, 0, :2].tolist()
        fixed = {**do, **given_}.get(t)
        if fixed is not None:  # set or seen: its value, for certain
            assert mean == pytest.approx(float(fixed), abs=1e-9), (t, mean)
            assert sd == pytest.approx(0.0, abs=1e-6), (t, sd)  # seen: the square root of a variance's rounding
            assert float(sampled.p[t][0, 0, 0]) == pytest.approx(float(fixed), abs=1e-4), t
            continue
        check_normal("sampler", replace(sampled, p={t: sampled.p[t]}), [{t: (mean, sd)}], dtype)


# -- d. holds is honest -------------------------------------------------------------------------------


@contextmanager
def watched(oracle: Oracle, routed: dict[str, list[Batch]]):
    """Every batch an engine answers is one it holds (recorded per engine in ``routed``)."""
    for engine in oracle.router.engines:
        real = engine.answer

        def answer(batch: Batch, engine=engine, real=real) -> Posterior:
            assert engine.holds(batch), (engine.name, batch.targets, batch.one_structure, batch.per_query)
            routed.setdefault(engine.name, []).append(batch)
            return real(batch)

        engine.answer = answer  # type: ignore[method-assign]
    try:
        yield
    finally:
        for engine in oracle.router.engines:
            del engine.answer


@matrix(["every"])
@settings(CONFORMANCE, max_examples=10)
@given(raw=scenarios(), data=st.data())
def test_no_engine_is_routed_a_batch_it_does_not_hold(engine, dtype, device, raw, data):
    """Through every public call (answers with intervals, posterior means, columns), exact and
    sampled, no engine answers a batch it does not hold: the tree no batch with parameter draws,
    einsum none with a continuous target (the linear-Gaussian model), the Gaussian engine no
    discrete target, the sampler no batch of several structures."""
    scenario = valid(raw)
    mixed = data.draw(st.lists(queries(scenario), min_size=1, max_size=5), label="queries")
    routed: dict[str, list[Batch]] = {}
    for method in ("auto", "sampled"):
        oracle = Oracle(Model.from_scenario(scenario), device=device, dtype=dtype, samples=3, particles=1000, method=method)
        with watched(oracle, routed):
            for ask in (oracle.ask_many, oracle.posterior_means):
                try:
                    ask(mixed)
                except QueryError as err:  # impossible evidence: refused, by an engine that held it
                    assert "probability 0" in str(err), str(err)
        draws = batch_of(oracle, mixed, draws=True)
        assert draws.per_query > 1 and not oracle.router.engine("tree").holds(draws)  # type: ignore[union-attr]
    assert "gaussian" not in routed and all(b.per_query == 1 for b in routed.get("tree", []))
    assert all(b.one_structure for b in routed.get("sampler", []) + routed.get("einsum", []))
    model = load_model(LINEAR_GAUSSIAN)
    oracle = Oracle(model, device=device, dtype=dtype, samples=3, particles=1000)
    routed.clear()
    with watched(oracle, routed):
        oracle.ask_many([
            Query(do={"policy": "slow"}, given={"load": "3"}, outcomes=["distance", "slip", "speed"]),
            Query(do={"policy": "normal"}, outcomes=["slip", "floor"]),
            Query(do={"policy": "normal"}, given={"slip": "yes"}, outcomes=["floor", "load"]),  # load: mixed, sampled
        ])
        oracle.ask_columns(["slip"], do={"policy": ["slow", "normal"]}, given={"floor": ["wet", "dry"]})
    assert {name: sorted({t for b in found for t in b.targets}) for name, found in routed.items()} == {
        "einsum": ["floor", "slip"], "gaussian": ["distance", "speed"], "sampler": ["load"],
    }
    continuous = batch_of(oracle, [Query(do={"policy": "slow"}, outcomes=["distance", "slip"])])
    for name in ("tree", "einsum", "gaussian"):
        assert not oracle.router.engine(name).holds(continuous), name  # type: ignore[union-attr]
