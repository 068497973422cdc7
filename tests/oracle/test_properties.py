"""Property tests of the exact oracle on random small scenarios.

A hypothesis strategy builds valid version-1 scenario dicts (2-6 variables of
2-3 states, a random DAG over a random order, one decision root, random rows
with structural zeros, strengths, observe and counts facts, two parties with
prior overrides and facts they know, values).  On them:

a. the batched einsum engine equals the brute-force reference enumerator,
b. ``do(X = x)`` says nothing about X's causes,
c. hard evidence on a child moves its parent exactly as Bayes' rule says,
d. ``ask_many`` on a mixed batch equals asking one query at a time.
"""

from __future__ import annotations

import re

import networkx as nx
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel import reference
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model
from crux.worldmodel.spec import Scenario

PARTIES = ("agent", "human", "world")
STATE_SETS = (("s0", "s1"), ("no", "yes"), ("s0", "s1", "s2"), ("lo", "mid", "hi"))
MAX_PARENTS = 3

SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]  # building a scenario draws a lot


# -- strategies --------------------------------------------------------------------------


@st.composite
def rows(draw, k: int, *, zeros: bool = True) -> list[float]:
    """A probability row of length k summing to 1 (to rounding): integer weights, normalised."""
    weights = draw(st.lists(st.integers(0 if zeros else 1, 9), min_size=k, max_size=k))
    if sum(weights) == 0:
        weights[draw(st.integers(0, k - 1))] = 1
    total = sum(weights)
    return [w / total for w in weights]


@st.composite
def row_keys(draw, states: tuple[str, ...]) -> str:
    """A row key for these parent states, with the white space around names varied."""
    sep = draw(st.sampled_from([", ", ",", " , ", ",  "]))
    key = sep.join(states)
    return draw(st.sampled_from([key, f" {key}", f"{key} "]))


@st.composite
def scenarios(draw) -> dict:
    n = draw(st.integers(2, 6))
    names = [f"v{i}" for i in range(n)]
    order = draw(st.permutations(names))  # the DAG respects this order
    decision = order[draw(st.integers(0, n - 1))]
    states = {v: list(draw(st.sampled_from(STATE_SETS))) for v in names}
    parents: dict[str, list[str]] = {}
    for i, v in enumerate(order):
        earlier = list(order[:i])
        if v == decision or not earlier:
            parents[v] = []
        else:
            parents[v] = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=min(MAX_PARENTS, len(earlier))))
    chance = [v for v in names if v != decision]

    def combos(v: str) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = [()]
        for p in parents[v]:
            out = [(*c, s) for c in out for s in states[p]]
        return out

    variables: dict[str, dict] = {}
    for v in draw(st.permutations(names)):  # the file's order is not the causal order
        spec: dict = {"states": states[v]}
        if v != decision:
            if parents[v]:
                spec["parents"] = parents[v]
                spec["table"] = {draw(row_keys(c)): draw(rows(len(states[v]))) for c in combos(v)}
            else:
                spec["prior"] = draw(rows(len(states[v])))
            strength = draw(st.one_of(st.none(), st.sampled_from([0.5, 1, 3, 10]), st.floats(0.2, 60)))
            if strength is not None:
                spec["strength"] = strength
        variables[v] = spec

    facts: dict[str, dict] = {}
    for i in range(draw(st.integers(0, 3))):
        observed = draw(st.lists(st.sampled_from(chance), unique=True, min_size=1, max_size=2))
        fact: dict = {
            "text": f"observation {i}",
            "source": draw(st.sampled_from(["sensor", "witness"])),
            "observe": {v: draw(st.sampled_from(states[v])) for v in observed},
        }
        reliability = draw(st.one_of(st.none(), st.just(1.0), st.floats(0.05, 1.0)))
        if reliability is not None:
            fact["reliability"] = reliability
        facts[f"obs{i}"] = fact
    for i in range(draw(st.integers(0, 2))):
        v = draw(st.sampled_from(chance))
        counted = draw(st.lists(st.sampled_from(states[v]), unique=True, min_size=1))
        counts = {s: draw(st.one_of(st.integers(0, 30), st.floats(0.0, 30.0))) for s in counted}
        if sum(counts.values()) == 0:
            counts[counted[0]] = 1
        facts[f"cnt{i}"] = {
            "text": f"counts {i}",
            "source": "logs",
            "counts": {
                "variable": v,
                "given": {p: draw(st.sampled_from(states[p])) for p in parents[v]},
                "counts": counts,
            },
        }

    outcomes = draw(st.lists(st.sampled_from(chance), unique=True, min_size=1))
    parties: dict[str, dict] = {}
    for party in ("agent", "human"):
        priors: dict = {}
        for v in draw(st.lists(st.sampled_from(chance), unique=True)):
            if parents[v]:
                keys = draw(st.lists(st.sampled_from(combos(v)), unique=True, min_size=1))
                priors[v] = {draw(row_keys(c)): draw(rows(len(states[v]))) for c in keys}
            else:
                priors[v] = draw(rows(len(states[v])))
        knows = draw(st.lists(st.sampled_from(sorted(facts)), unique=True)) if facts else []
        values = {
            o: {s: draw(st.integers(-100, 100)) for s in draw(st.lists(st.sampled_from(states[o]), unique=True))}
            for o in draw(st.lists(st.sampled_from(outcomes), unique=True))
        }
        parties[party] = {"beliefs": {"priors": priors, "knows": knows}, "values": values}

    return {
        "crux": 1,
        "name": "random",
        "world": {"variables": variables, "decision": decision, "outcomes": outcomes},
        "facts": facts,
        "parties": parties,
    }


def valid(data: dict) -> Scenario:
    scenario, problems = validate_data(data)
    assert not problems, [f"{p.path}: {p.message}" for p in problems]
    assert scenario is not None
    return scenario


def traced(variables: dict, count: float, roots: str = "A", outcome: str | None = None) -> dict:
    """A scenario of a decision D, a root per letter of ``roots`` and ``variables``, whose agent
    saw each root in its first state: a state its prior rules out but for a counts fact of
    weight ``count`` (evidence near float64's floor, to tell how each route weighs it)."""
    facts: dict = {}
    for root in roots:
        facts[f"seen {root}"] = {"text": "a0 seen", "source": "eyes", "observe": {root: "a0"}}
        facts[f"few {root}"] = {"text": "a trace", "source": "logs", "counts": {"variable": root, "given": {}, "counts": {"a0": count}}}
    every = {"D": {"states": ["go", "stay"]}, **{r: {"states": ["a0", "a1"], "prior": [1.0, 0.0]} for r in roots}, **variables}
    return {
        "crux": 1,
        "name": "a trace",
        "world": {"variables": every, "decision": "D", "outcomes": [outcome or list(every)[-1]]},
        "facts": facts,
        "parties": {"agent": {"beliefs": {"priors": dict.fromkeys(roots, [0.0, 1.0]), "knows": list(facts)}}},
    }


@st.composite
def assignments(draw, scenario: Scenario, *, extra_do: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """``do`` (always the decision, sometimes one more variable) and hard evidence ``given``."""
    world = scenario.world
    variables = world.variables
    chance = [v for v in variables if v != world.decision]
    do_vars = [world.decision]
    if extra_do and draw(st.booleans()):
        do_vars.append(draw(st.sampled_from(chance)))
    do_vars = draw(st.permutations(do_vars))
    rest = [v for v in chance if v not in do_vars]
    given_vars = draw(st.permutations(rest))[: draw(st.integers(0, len(rest)))]
    do = {v: draw(st.sampled_from(variables[v].states)) for v in do_vars}
    given_ = {v: draw(st.sampled_from(variables[v].states)) for v in given_vars}
    return do, given_


@st.composite
def queries(draw, scenario: Scenario) -> Query:
    do, given_ = draw(assignments(scenario))
    names = list(scenario.world.variables)
    outcomes = draw(st.one_of(st.just([]), st.lists(st.sampled_from(names), unique=True, min_size=1)))
    return Query(do=do, given=given_, outcomes=outcomes, as_=draw(st.sampled_from(PARTIES)))


@st.composite
def sibling(draw, scenario: Scenario, query: Query) -> Query:
    """A query of the same structure (same variables and outcomes) with other states and
    maybe another party: the oracle runs these as one contraction, with per-query tables
    when the parties differ."""
    variables = scenario.world.variables
    return Query(
        do={v: draw(st.sampled_from(variables[v].states)) for v in query.do},
        given={v: draw(st.sampled_from(variables[v].states)) for v in query.given},
        outcomes=query.outcomes,
        as_=draw(st.sampled_from([query.as_, *PARTIES])),
    )


def close(got: list[float], want: list[float], tol: float) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= tol for a, b in zip(got, want))


# -- a. exact equals the reference -------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_DATA)
@given(raw=scenarios(), data=st.data())
def test_exact_equals_reference(raw: dict, data: st.DataObject) -> None:
    scenario = valid(raw)
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2, seed=0)
    party = data.draw(st.sampled_from(PARTIES), label="party")
    do, given_ = data.draw(assignments(scenario), label="do, given")
    outcomes = list(scenario.world.variables)  # every variable, the decision included
    query = Query(do=do, given=given_, outcomes=outcomes, as_=party)
    try:
        expected = reference.ask(scenario, party, do, given_, outcomes)
    except ZeroDivisionError:
        event("impossible evidence")
        with pytest.raises(QueryError, match="probability 0"):
            oracle.ask(query)
        return
    event(f"{len(given_)} given, {len(do)} do")
    answer = oracle.ask(query)
    assert list(answer.outcomes) == outcomes
    for var in outcomes:
        dist = answer.outcomes[var]
        assert dist.states == list(scenario.world.variables[var].states)
        assert close(dist.p, expected[var], 1e-9), (var, dist.p, expected[var])


# -- b. do cuts a variable from its parents ----------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=SLOW_DATA)
@given(raw=scenarios(), data=st.data())
def test_do_says_nothing_about_causes(raw: dict, data: st.DataObject) -> None:
    scenario = valid(raw)
    model = Model.from_scenario(scenario)
    net = model.network
    decision = net.decision
    candidates = [v for v in net.order if any(p != decision for p in net.parents[v])]
    assume(candidates)
    x = data.draw(st.sampled_from(candidates), label="X")
    x_state = data.draw(st.sampled_from(net.states[x]), label="x")
    action = data.draw(st.sampled_from(net.states[decision]), label="action")
    party = data.draw(st.sampled_from(PARTIES), label="party")
    # Soft evidence on X or below it does inform X's causes when nothing is done, and
    # is cut off by the intervention: the property holds without such evidence.
    below = nx.descendants(net.graph, x) | {x}
    if set(model.beliefs(party).likelihood) & below:
        party = "world"
    causes = [p for p in net.parents[x] if p != decision]
    oracle = Oracle(model, device="cpu", samples=2, seed=0)
    cut = Query(do={decision: action, x: x_state}, outcomes=causes, as_=party)
    plain = Query(do={decision: action}, outcomes=causes, as_=party)
    try:
        without = oracle.ask(plain)
    except QueryError:  # the party's (other) soft evidence is impossible: so it is under do
        with pytest.raises(QueryError, match="probability 0"):
            oracle.ask(cut)
        return
    with_do = oracle.ask(cut)
    expected = reference.ask(scenario, party, {decision: action}, {}, causes)
    for cause in causes:
        assert close(with_do.outcomes[cause].p, without.outcomes[cause].p, 1e-12), cause
        assert close(with_do.outcomes[cause].p, expected[cause], 1e-9), cause


# -- c. evidence on a child moves its parent (Bayes' rule) ------------------------------


@st.composite
def chains(draw) -> dict:
    """A -> B with B's rows clearly different, a decision D on the side, and an agent
    with its own prior for A, counts for one row of B and soft evidence about A."""
    a_states = list(draw(st.sampled_from(STATE_SETS)))
    b_states = list(draw(st.sampled_from([("b0", "b1"), ("b0", "b1", "b2")])))
    table = {a: draw(rows(len(b_states))) for a in a_states}
    spread = max(abs(table[a][j] - table[a2][j]) for a in a_states for a2 in a_states for j in range(len(b_states)))
    assume(spread >= 0.2)
    a_spec: dict = {"states": a_states, "prior": draw(rows(len(a_states), zeros=False))}
    b_spec: dict = {"states": b_states, "parents": ["A"], "table": table}
    for spec in (a_spec, b_spec):
        strength = draw(st.one_of(st.none(), st.floats(0.5, 50)))
        if strength is not None:
            spec["strength"] = strength
    counted_row = draw(st.sampled_from(a_states))
    return {
        "crux": 1,
        "name": "chain",
        "world": {
            "variables": {"B": b_spec, "D": {"states": ["go", "stay"]}, "A": a_spec},
            "decision": "D",
            "outcomes": ["B"],
        },
        "facts": {
            "tally": {
                "text": "a tally of B",
                "source": "logs",
                "counts": {
                    "variable": "B",
                    "given": {"A": counted_row},
                    "counts": {s: draw(st.integers(0, 20)) + (i == 0) for i, s in enumerate(b_states)},
                },
            },
            "hint": {
                "text": "a hint about A",
                "source": "witness",
                "reliability": draw(st.floats(0.1, 0.99)),
                "observe": {"A": draw(st.sampled_from(a_states))},
            },
        },
        "parties": {
            "agent": {
                "beliefs": {"priors": {"A": draw(rows(len(a_states), zeros=False))}, "knows": ["tally", "hint"]}
            },
            "human": {},
        },
    }


def _bayes(scenario: Scenario, party: str, b: str) -> tuple[list[float], list[float] | None]:
    """P(A) and P(A | B = b) by hand, from the party's Dirichlet means and soft evidence
    (None when B = b has probability 0)."""
    world = scenario.world.variables
    a_states, b_states = world["A"].states, world["B"].states
    spec = None if party == "world" else getattr(scenario.parties, party)
    prior = list(spec.beliefs.priors.get("A", world["A"].prior)) if spec else list(world["A"].prior)
    alpha_a = [world["A"].strength * p for p in prior]
    alpha_b = {a: [world["B"].strength * p for p in world["B"].table[a]] for a in a_states}
    like = [1.0] * len(a_states)
    for fact_id in spec.beliefs.knows if spec else []:
        fact = scenario.facts[fact_id]
        if fact.counts is not None:
            for s, n in fact.counts.counts.items():
                alpha_b[fact.counts.given["A"]][b_states.index(s)] += n
        for var, state in (fact.observe or {}).items():
            r = fact.weight
            like = [
                l * (r if s == state else (1 - r) / (len(a_states) - 1)) for l, s in zip(like, a_states)
            ]
    p_a = [x / sum(alpha_a) for x in alpha_a]
    p_b = {a: [x / sum(alpha_b[a]) for x in alpha_b[a]] for a in a_states}
    marginal = [p * l for p, l in zip(p_a, like)]
    marginal = [m / sum(marginal) for m in marginal]
    joint = [m * p_b[a][b_states.index(b)] for m, a in zip(marginal, a_states)]
    return marginal, ([j / sum(joint) for j in joint] if sum(joint) > 0 else None)


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_DATA)
@given(raw=chains())
def test_evidence_on_child_moves_parent(raw: dict) -> None:
    scenario = valid(raw)
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2, seed=0)
    for party in ("world", "agent"):
        # A and B do not depend on the decision: no `do` is needed.
        before = oracle.ask(Query(outcomes=["A"], as_=party)).outcomes["A"].p
        moved = 0.0
        for b in scenario.world.variables["B"].states:
            by_hand_before, by_hand = _bayes(scenario, party, b)
            assert close(before, by_hand_before, 1e-12)
            query = Query(given={"B": b}, outcomes=["A"], as_=party)
            if by_hand is None:  # a structural zero: B = b cannot happen
                with pytest.raises(QueryError, match="probability 0"):
                    oracle.ask(query)
                continue
            after = oracle.ask(query).outcomes["A"].p
            assert close(after, by_hand, 1e-12), (party, b, after, by_hand)
            moved = max(moved, max(abs(x - y) for x, y in zip(after, before)))
        if party == "world":  # rows clearly differ and A's prior has full support
            assert moved > 1e-3


# -- d. ask_many equals one by one -------------------------------------------------------


def _same(a, b) -> None:
    assert a.query == b.query
    assert list(a.outcomes) == list(b.outcomes)
    for var in a.outcomes:
        assert a.outcomes[var].states == b.outcomes[var].states
        assert close(a.outcomes[var].p, b.outcomes[var].p, 1e-12)
        for lo_hi, lo_hi2 in zip(a.outcomes[var].interval, b.outcomes[var].interval):
            assert close(lo_hi, lo_hi2, 1e-12)


@settings(max_examples=100, deadline=None, suppress_health_check=SLOW_DATA)
@given(raw=scenarios(), data=st.data())
def test_ask_many_equals_one_by_one(raw: dict, data: st.DataObject) -> None:
    scenario = valid(raw)
    model = Model.from_scenario(scenario)
    base = data.draw(st.lists(queries(scenario), min_size=1, max_size=4), label="queries")
    batch = list(base)
    for q in base:  # siblings share a structure, so they run as one contraction
        batch += data.draw(st.lists(sibling(scenario, q), max_size=3), label="siblings")
    batch = data.draw(st.permutations(batch), label="batch")

    single = Oracle(model, device="cpu", samples=5, seed=11)
    one_by_one: list = []
    for q in batch:
        try:
            one_by_one.append(single.ask(q))
        except QueryError as err:
            assert "probability 0" in str(err)
            one_by_one.append(None)

    many = Oracle(model, device="cpu", samples=5, seed=11)
    split = data.draw(st.sampled_from([0, 4]), label="_SPLIT_STATES")  # tables stacked per query, or per party
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("crux.oracle.oracle._SPLIT_STATES", split)
        _ask_many_as_one_by_one(many, batch, one_by_one)


def _ask_many_as_one_by_one(many: Oracle, batch: list[Query], one_by_one: list) -> None:
    impossible = {i + 1 for i, a in enumerate(one_by_one) if a is None}
    if impossible:
        with pytest.raises(QueryError) as info:
            many.ask_many(batch)
        if len(batch) > 1:  # a batch says which of its queries is impossible
            found = re.match(r"query (\d+): ", str(info.value))
            assert found and int(found.group(1)) in impossible, str(info.value)
        assert "probability 0" in str(info.value)
    kept = [q for q, a in zip(batch, one_by_one) if a is not None]
    answers = many.ask_many(kept)
    assert len(answers) == len(kept)
    for got, want in zip(answers, [a for a in one_by_one if a is not None]):
        _same(got, want)
