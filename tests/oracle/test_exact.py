"""The exact oracle on the canonical example, against SCENARIO.md and the reference.

Covers the worked numbers of the spec, agreement with the brute-force
enumerator for the agent's, the human's and the world's beliefs, the credible
intervals (per-draw agreement with the reference, Beta quantiles for a root,
reproducibility) and the errors a query can raise.
"""

from __future__ import annotations

import copy
import json
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from crux.oracle.exact import ExactEngine
from crux.oracle.oracle import Oracle
from crux.oracle.params import draw_tables
from crux.oracle.query import Query, QueryError
from crux.worldmodel import reference
from crux.worldmodel.compile import Network
from crux.worldmodel.files import read_data
from crux.worldmodel.load import load_scenario, validate_data
from crux.worldmodel.model import Model
from crux.worldmodel.spec import Scenario
from tests.oracle.test_properties import traced, valid

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "squirrel_or_cat.yaml"
VARIABLES = ["road", "animal", "oncoming", "action", "animal_hit", "crash", "harm"]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(EXAMPLE)


@pytest.fixture(scope="module")
def model(scenario: Scenario) -> Model:
    return Model.from_scenario(scenario)


@pytest.fixture(scope="module")
def oracle(model: Model) -> Oracle:
    return Oracle(model, device="cpu", samples=1000, seed=0)


def _variant() -> Scenario:
    """The example with more evidence in play: soft evidence on a non-root (so every
    agent query depends on the action), counts on a root's prior, and a human row override."""
    data = copy.deepcopy(read_data(EXAMPLE))
    data["facts"]["witness"] = {
        "text": "A witness thinks the car crashed.",
        "source": "witness",
        "reliability": 0.7,
        "observe": {"crash": "crash"},
    }
    data["facts"]["weather_log"] = {
        "text": "The road was dry on 8 of the last 10 days.",
        "source": "weather log",
        "counts": {"variable": "road", "counts": {"dry": 8, "wet": 2}},
    }
    data["facts"]["hit_log"] = {
        "text": "Braking on wet roads missed 3 animals in 4.",
        "source": "fleet logs",
        "counts": {"variable": "animal_hit", "given": {"road": "wet", "action": "brake"}, "counts": {"missed": 3, "hit": 1}},
    }
    data["parties"]["agent"]["beliefs"]["knows"] += ["witness", "hit_log"]
    data["parties"]["human"]["beliefs"]["knows"] += ["weather_log", "radar"]
    data["parties"]["human"]["beliefs"]["priors"]["crash"] = {"wet, swerve, car": [0.2, 0.8]}
    scenario, problems = validate_data(data)
    assert not problems, problems
    return scenario


# -- the worked numbers of SCENARIO.md ---------------------------------------------------


def test_worked_number_agent_crash_if_swerving_on_a_wet_road(oracle: Oracle) -> None:
    answer = oracle.ask(Query(do={"action": "swerve"}, given={"road": "wet"}, outcomes=["crash"], as_="agent"))
    assert answer.outcomes["crash"].states == ["safe", "crash"]
    assert answer.outcomes["crash"].p[1] == pytest.approx(0.300198, abs=1e-6)


def test_worked_numbers_human_if_swerving(oracle: Oracle) -> None:
    answer = oracle.ask(Query(do={"action": "swerve"}, as_="human"))
    assert list(answer.outcomes) == ["harm", "crash"]  # the world's outcomes by default
    assert answer.outcomes["crash"].p[1] == pytest.approx(0.098600, abs=1e-6)
    assert answer.outcomes["harm"].states == ["none", "squirrel", "cat"]
    assert answer.outcomes["harm"].p == pytest.approx([0.945000, 0.016042, 0.038958], abs=1e-6)


def test_each_party_holds_its_facts(oracle: Oracle) -> None:
    """By hand: the agent's road sensor and radar, its fleet logs, the human's camera and prior."""
    agent = oracle.ask(Query(outcomes=["road", "oncoming", "animal"], as_="agent")).outcomes
    assert agent["road"].p[1] == pytest.approx(0.4 * 0.9 / (0.4 * 0.9 + 0.6 * 0.1), abs=1e-12)
    assert agent["oncoming"].p[1] == pytest.approx(0.2 * 0.95 / (0.2 * 0.95 + 0.8 * 0.05), abs=1e-12)
    assert agent["animal"].p == pytest.approx([0.7, 0.3], abs=1e-12)
    human = oracle.ask(Query(outcomes=["road", "animal"], as_="human")).outcomes
    assert human["road"].p == pytest.approx([0.9, 0.1], abs=1e-12)
    assert human["animal"].p[1] == pytest.approx(0.3 * 0.85 / (0.3 * 0.85 + 0.7 * 0.15), abs=1e-12)
    fixed = {"action": "swerve", "road": "wet", "oncoming": "car"}
    crash = oracle.ask(Query(do=fixed, outcomes=["crash"], as_="agent")).outcomes["crash"]
    assert crash.p[1] == pytest.approx((20 * 0.55 + 62) / (20 + 200), abs=1e-12)  # fleet logs
    world = oracle.ask(Query(do=fixed, outcomes=["crash"], as_="world")).outcomes["crash"]
    assert world.p[1] == pytest.approx(0.55, abs=1e-12)


# -- against the reference enumerator ----------------------------------------------------

QUERIES = [
    ({"action": "swerve"}, {"road": "wet"}, ["crash"]),
    ({"action": "brake"}, {}, VARIABLES),
    ({"action": "continue"}, {"oncoming": "car", "animal_hit": "hit"}, VARIABLES),
    ({"action": "swerve"}, {"crash": "crash"}, ["road", "oncoming", "animal", "harm"]),  # backwards
    ({"action": "swerve", "road": "wet"}, {}, ["road", "crash", "harm"]),  # do on a variable with soft evidence
    ({"road": "dry", "action": "brake"}, {"harm": "cat"}, ["animal", "animal_hit", "crash"]),
    ({"action": "brake"}, {"harm": "none", "crash": "safe"}, VARIABLES),
    ({"oncoming": "car", "action": "swerve"}, {"animal": "cat"}, ["crash", "harm", "road"]),
]
NO_DECISION = [({}, {}, ["road", "animal", "oncoming"]), ({}, {"animal": "cat"}, ["road", "oncoming"])]


def _check_against_reference(oracle: Oracle, scenario: Scenario, party: str, do, given, outcomes) -> None:
    answer = oracle.ask(Query(do=do, given=given, outcomes=outcomes, as_=party))
    expected = reference.ask(scenario, party, do, given, outcomes)
    assert list(answer.outcomes) == outcomes
    for var in outcomes:
        assert answer.outcomes[var].p == pytest.approx(expected[var], abs=1e-9), var


@pytest.mark.parametrize("party", ["agent", "human", "world"])
@pytest.mark.parametrize("do, given, outcomes", QUERIES + NO_DECISION)
def test_canonical_equals_reference(oracle: Oracle, scenario: Scenario, party, do, given, outcomes) -> None:
    _check_against_reference(oracle, scenario, party, do, given, outcomes)


@pytest.mark.parametrize("party", ["agent", "human", "world"])
@pytest.mark.parametrize("do, given, outcomes", QUERIES)
def test_variant_equals_reference(party, do, given, outcomes) -> None:
    scenario = _variant()
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2)
    _check_against_reference(oracle, scenario, party, do, given, outcomes)


def test_do_cuts_the_decision_off(oracle: Oracle, scenario: Scenario) -> None:
    """Setting animal_hit cuts the action from harm: no action needed, only the animal matters."""
    cat = 0.3 * 0.85 / (0.3 * 0.85 + 0.7 * 0.15)  # the human's camera
    harm = oracle.ask(Query(do={"animal_hit": "hit"}, outcomes=["harm"], as_="human")).outcomes["harm"]
    assert harm.p == pytest.approx([0.0, 1 - cat, cat], abs=1e-12)
    _check_against_reference(oracle, scenario, "agent", {"animal_hit": "missed"}, {"animal": "cat"}, ["harm", "road"])


def test_mixed_parties_in_one_batch_equal_one_by_one(model: Model) -> None:
    """Same structure, different parties and states: one contraction with per-query tables."""
    batch = [
        Query(do={"action": a}, given={"oncoming": o}, outcomes=["crash", "harm"], as_=party)
        for a, o, party in itertools.product(["brake", "swerve"], ["clear", "car"], ["agent", "human", "world"])
    ]
    batch += [Query(do={"action": "continue"}, as_="human"), Query(do={"action": "swerve"}, given={"road": "wet"}, as_="agent")]
    many = Oracle(model, device="cpu", samples=200, seed=9).ask_many(batch)
    single = Oracle(model, device="cpu", samples=200, seed=9)
    for query, got in zip(batch, many):
        want = single.ask(query)
        assert got.query == want.query
        for var in want.outcomes:
            assert got.outcomes[var].p == pytest.approx(want.outcomes[var].p, abs=1e-12)
            for lo_hi, want_lo_hi in zip(got.outcomes[var].interval, want.outcomes[var].interval):
                assert lo_hi == pytest.approx(want_lo_hi, abs=1e-12)
    assert many[-1].outcomes["crash"].p[1] == pytest.approx(0.300198, abs=1e-6)


# -- intervals (i): individual parameter draws -------------------------------------------


def _reference_tables(network: Network, tables: dict[str, torch.Tensor], draw: int) -> reference.Tables:
    """One draw of the engine's tables in the reference's format {var: {parent states: row}}."""
    out: reference.Tables = {}
    for var, table in tables.items():
        parents = network.parents[var]
        rows = {}
        for combo in itertools.product(*(range(network.card(p)) for p in parents)):
            key = tuple(network.states[p][i] for p, i in zip(parents, combo))
            rows[key] = table[(draw, *combo)].tolist()
        out[var] = rows
    return out


DRAWS = 40
DRAW_QUERIES = [
    ({"action": "swerve"}, {"road": "wet"}, ["crash", "harm"]),
    ({"action": "continue"}, {"crash": "safe"}, ["road", "oncoming", "harm"]),
    ({"action": "brake", "oncoming": "car"}, {"harm": "none"}, ["animal", "road", "crash"]),
]


@pytest.mark.parametrize("party", ["agent", "human", "world"])
@pytest.mark.parametrize("do, given, outcomes", DRAW_QUERIES)
def test_each_draw_equals_reference(model: Model, scenario: Scenario, party, do, given, outcomes) -> None:
    net = model.network
    beliefs = model.beliefs(party)
    tables = draw_tables(beliefs, DRAWS, seed=5)
    assert all(t.shape == (DRAWS + 1, *net.shape(v)) for v, t in tables.items())

    def indices(items: dict[str, str]) -> torch.Tensor:
        return torch.tensor([[net.states[v].index(s) for v, s in items.items()]], dtype=torch.long).reshape(1, -1)

    posts = ExactEngine(net).marginals(
        tables, beliefs.likelihood, list(do), indices(do), list(given), indices(given), outcomes
    )
    mean_tables, likelihood = reference.party_numbers(scenario, party)
    per_draw = {var: [] for var in outcomes}
    for s in range(DRAWS + 1):
        ref_tables = _reference_tables(net, tables, s)
        if s == 0:  # the posterior mean comes first
            for var, rows in mean_tables.items():
                for key, row in rows.items():
                    assert ref_tables[var][key] == pytest.approx(row, abs=1e-12)
        expected = reference.marginals(scenario, ref_tables, likelihood, do, given, outcomes)
        for var in outcomes:
            assert posts[var][s, 0].tolist() == pytest.approx(expected[var], abs=1e-9), (var, s)
            per_draw[var].append(expected[var])

    # The oracle's 90% interval is the 5%/95% quantile of exactly these draws.
    answer = Oracle(model, device="cpu", samples=DRAWS, seed=5).ask(
        Query(do=do, given=given, outcomes=outcomes, as_=party)
    )
    for var in outcomes:
        draws = np.array(per_draw[var][1:])
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        got = np.array(answer.outcomes[var].interval)
        assert got[:, 0] == pytest.approx(low, abs=1e-9), var
        assert got[:, 1] == pytest.approx(high, abs=1e-9), var
        assert answer.outcomes[var].p == pytest.approx(per_draw[var][0], abs=1e-9)


# -- intervals (ii): a root's interval is a Beta's -----------------------------------------


@pytest.mark.parametrize(
    "party, var, index, strength, mean",
    [
        ("world", "road", 0, 10, 0.6),
        ("world", "animal", 1, 10, 0.3),
        ("world", "oncoming", 0, 10, 0.8),
        ("human", "road", 0, 10, 0.9),  # the human's own prior; its camera is about the animal
    ],
)
def test_root_interval_is_beta_quantiles(model: Model, party, var, index, strength, mean) -> None:
    answer = Oracle(model, device="cpu", samples=20000, seed=1).ask(Query(outcomes=[var], as_=party))
    dist = answer.outcomes[var]
    assert dist.p[index] == pytest.approx(mean, abs=1e-12)
    low, high = stats.beta.ppf([0.05, 0.95], strength * mean, strength * (1 - mean))
    assert dist.interval[index][0] == pytest.approx(low, abs=0.01)
    assert dist.interval[index][1] == pytest.approx(high, abs=0.01)


def test_interval_survives_draws_where_the_evidence_underflows() -> None:
    """Given A = a1 and C = c1, B's posterior is B's row (a1, c1), whatever A's and C's
    priors: its interval is the Beta(900, 100) quantiles.  A's and C's rare states have
    concentration 0.001, so many draws give them probabilities near 1e-309, whose product
    underflows to 0."""
    data = {
        "crux": 1,
        "name": "tiny-concentrations",
        "world": {
            "variables": {
                "A": {"states": ["a0", "a1"], "prior": [0.999, 0.001], "strength": 1},
                "C": {"states": ["c0", "c1"], "prior": [0.999, 0.001], "strength": 1},
                "D": {"states": ["go", "stay"]},
                "B": {"states": ["b0", "b1"], "parents": ["A", "C"], "strength": 1000, "table": {
                    "a0, c0": [0.5, 0.5], "a0, c1": [0.5, 0.5], "a1, c0": [0.5, 0.5], "a1, c1": [0.9, 0.1]}},
            },
            "decision": "D",
            "outcomes": ["B"],
        },
    }
    scenario, problems = validate_data(data)
    assert not problems, problems
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2000, seed=0)
    dist = oracle.ask(Query(given={"A": "a1", "C": "c1"}, outcomes=["B"], as_="world")).outcomes["B"]
    assert dist.p == pytest.approx([0.9, 0.1], abs=1e-12)
    low, high = stats.beta.ppf([0.05, 0.95], 900, 100)
    assert dist.interval[0] == pytest.approx([low, high], abs=0.01)  # got [0.0, 0.907]
    assert dist.interval[1] == pytest.approx([1 - high, 1 - low], abs=0.01)  # got [0.0, 0.106]


# -- intervals (iii): p inside its interval ----------------------------------------------

CANONICAL = [
    ("agent", {"action": "swerve"}, {"road": "wet"}, ["crash"]),
    ("human", {"action": "swerve"}, {}, ["harm", "crash"]),
    ("agent", {"action": "brake"}, {}, ["harm", "crash"]),
    ("agent", {"action": "continue"}, {}, ["harm", "crash"]),
    ("human", {"action": "brake"}, {}, ["harm", "crash"]),
    ("human", {"action": "continue"}, {}, ["harm", "crash"]),
    ("world", {"action": "swerve"}, {"crash": "crash"}, ["road", "oncoming"]),
]


@pytest.mark.parametrize("party, do, given, outcomes", CANONICAL)
def test_p_inside_interval(oracle: Oracle, party, do, given, outcomes) -> None:
    answer = oracle.ask(Query(do=do, given=given, outcomes=outcomes, as_=party))
    for var, dist in answer.outcomes.items():
        assert len(dist.interval) == len(dist.states)
        for p, (low, high) in zip(dist.p, dist.interval):
            assert 0.0 <= low <= p <= high <= 1.0, (var, p, low, high)
            if 0.0 < p < 1.0:
                assert low < high, (var, p)  # parameter uncertainty gives a real interval


# -- intervals (iv): seeds ---------------------------------------------------------------


def _intervals(model: Model, seed: int) -> list:
    oracle = Oracle(model, device="cpu", samples=300, seed=seed)
    queries = [Query(do=do, given=given, outcomes=outcomes, as_=party) for party, do, given, outcomes in CANONICAL]
    return [{v: d.interval for v, d in a.outcomes.items()} for a in oracle.ask_many(queries)]


def test_same_seed_same_intervals_other_seed_other_intervals(model: Model) -> None:
    rng = torch.random.get_rng_state()
    first = _intervals(model, seed=3)
    assert torch.equal(rng, torch.random.get_rng_state()), "the oracle must not touch the global random state"
    torch.manual_seed(12345)  # and must not depend on it
    assert _intervals(model, seed=3) == first
    other = _intervals(model, seed=4)
    assert other != first
    for a, b in zip(first, other):
        for var in a:
            assert a[var] != b[var], var


# -- intervals (v) and errors ------------------------------------------------------------


def _zero_scenario() -> Scenario:
    """B never takes b1 when A is a0 (a structural zero); a fact says B is b1 for sure."""
    data = {
        "crux": 1,
        "name": "structural-zero",
        "world": {
            "variables": {
                "A": {"states": ["a0", "a1"], "prior": [0.5, 0.5]},
                "D": {"states": ["left", "right"]},
                "B": {"states": ["b0", "b1"], "parents": ["A"], "table": {"a0": [1.0, 0.0], "a1": [0.3, 0.7]}},
                "C": {"states": ["c0", "c1"], "parents": ["B", "D"], "table": {
                    "b0, left": [0.9, 0.1], "b0, right": [0.2, 0.8], "b1, left": [0.5, 0.5], "b1, right": [0.6, 0.4]}},
            },
            "decision": "D",
            "outcomes": ["C"],
        },
        "facts": {"sure": {"text": "B is b1.", "source": "sensor", "reliability": 1.0, "observe": {"B": "b1"}}},
        "parties": {"agent": {"beliefs": {"knows": ["sure"]}}},
    }
    scenario, problems = validate_data(data)
    assert not problems, problems
    return scenario


def test_impossible_evidence_is_a_query_error() -> None:
    oracle = Oracle(Model.from_scenario(_zero_scenario()), device="cpu", samples=50)
    with pytest.raises(QueryError, match=r"evidence has probability 0.*check the `given` states"):
        oracle.ask(Query(given={"A": "a0", "B": "b1"}, outcomes=["A"], as_="world"))
    with pytest.raises(QueryError, match="probability 0"):  # the agent is sure B is b1
        oracle.ask(Query(given={"A": "a0"}, outcomes=["B"], as_="agent"))
    # Possible evidence next to it is fine, and the zero survives every draw.
    ok = oracle.ask(Query(do={"A": "a0"}, outcomes=["B"], as_="world")).outcomes["B"]
    assert ok.p == [1.0, 0.0]
    assert ok.interval[1] == [0.0, 0.0]
    agent = oracle.ask(Query(outcomes=["A"], as_="agent")).outcomes["A"]
    assert agent.p == pytest.approx([0.0, 1.0], abs=1e-12)


def test_evidence_no_draw_can_condition_on_gives_the_widest_interval() -> None:
    """A state whose concentration is a counts fact of 3e-65: possible under the posterior mean,
    so answered, but every parameter draw puts exactly 0 on it (U^(1/3e-65) underflows).  The
    draws say nothing: the interval is [0, 1], never NaN (which is not JSON)."""
    data = {
        "crux": 1,
        "name": "tiny counts",
        "world": {
            "variables": {
                "D": {"states": ["go", "stay"]},
                "A": {"states": ["a0", "a1"], "prior": [0.0, 1.0]},
                "B": {"states": ["b0", "b1"], "parents": ["A"], "table": {"a0": [0.5, 0.5], "a1": [0.2, 0.8]}},
            },
            "decision": "D",
            "outcomes": ["B"],
        },
        "facts": {"few": {"text": "a trace", "source": "logs", "counts": {"variable": "A", "given": {}, "counts": {"a0": 3e-65}}}},
        "parties": {"agent": {"beliefs": {"knows": ["few"]}}},
    }
    scenario, problems = validate_data(data)
    assert not problems and scenario is not None
    answer = Oracle(Model.from_scenario(scenario), device="cpu", samples=20).ask(
        Query(do={"D": "go"}, given={"A": "a0"}, outcomes=["B"], as_="agent")
    )
    b = answer.outcomes["B"]
    assert b.p == pytest.approx([0.5, 0.5], abs=1e-12)
    assert b.interval == [[0.0, 1.0], [0.0, 1.0]]
    json.dumps(answer.to_json(), allow_nan=False)


def test_impossible_evidence_in_a_batch_names_the_query() -> None:
    oracle = Oracle(Model.from_scenario(_zero_scenario()), device="cpu", samples=50)
    batch = [
        Query(given={"A": "a0", "B": "b0"}, outcomes=["A"], as_="world"),
        Query(given={"A": "a1", "B": "b1"}, outcomes=["A"], as_="world"),
        Query(given={"A": "a0", "B": "b1"}, outcomes=["A"], as_="world"),
    ]
    with pytest.raises(QueryError, match=r"^query 3: .*probability 0"):
        oracle.ask_many(batch)


@pytest.mark.parametrize("count", [1e-280, 1.1125369292536007e-308, 5e-324])
def test_evidence_too_light_to_divide_by_is_impossible_in_both_oracles(count: float) -> None:
    """Evidence on a state whose only weight is a tiny counts fact: the reference and the oracle
    draw the same line (the float64 floor), alone, in a batch of one structure and in the tree."""
    from crux.oracle.exact import _FLOOR

    assert reference.IMPOSSIBLE == _FLOOR[torch.float64]
    scenario = valid(traced({}, count))
    possible = count > reference.IMPOSSIBLE
    if possible:
        assert reference.ask(scenario, "agent", {"D": "go"}, {}, ["A"])["A"] == pytest.approx([1.0, 0.0])
    else:
        with pytest.raises(ZeroDivisionError):
            reference.ask(scenario, "agent", {"D": "go"}, {}, ["A"])
    oracle = Oracle(Model.from_scenario(scenario), device="cpu", samples=2)
    one = Query(do={"D": "go"}, outcomes=["A"], as_="agent")
    for batch in ([one], [one, one], [one, Query(do={"D": "stay"}, outcomes=["D", "A"], as_="agent")]):
        if possible:
            assert oracle.posterior_means(batch)[0]["A"].tolist() == pytest.approx([1.0, 0.0])
        else:
            with pytest.raises(QueryError, match="probability 0"):
                oracle.posterior_means(batch)


def test_query_depending_on_the_decision_must_set_it(oracle: Oracle) -> None:
    with pytest.raises(QueryError, match=r"depends on the decision action.*do action=<one of brake, swerve, continue>"):
        oracle.ask(Query(outcomes=["crash"], as_="agent"))
    with pytest.raises(QueryError, match="decision action"):
        oracle.ask(Query(given={"crash": "crash"}, outcomes=["road"], as_="world"))  # evidence below the action
    with pytest.raises(QueryError, match="action is the decision"):
        oracle.ask(Query(given={"action": "swerve"}, outcomes=["road"], as_="human"))
    # Roots that do not depend on it need no action.
    assert oracle.ask(Query(outcomes=["road"], as_="world")).outcomes["road"].p == pytest.approx([0.6, 0.4])


@pytest.mark.parametrize(
    "query, named, valid",
    [
        (Query(do={"actoin": "swerve"}), "'actoin'", VARIABLES),
        (Query(do={"action": "swirve"}), "'swirve'", ["brake", "swerve", "continue"]),
        (Query(do={"action": "brake"}, given={"raod": "wet"}), "'raod'", VARIABLES),
        (Query(do={"action": "brake"}, given={"road": "icy"}), "'icy'", ["dry", "wet"]),
        (Query(do={"action": "brake"}, outcomes=["crsh"]), "'crsh'", VARIABLES),
    ],
)
def test_unknown_names_list_the_valid_ones(oracle: Oracle, query: Query, named: str, valid: list[str]) -> None:
    with pytest.raises(QueryError) as info:
        oracle.ask(query)
    message = str(info.value)
    assert "unknown" in message and named in message
    listed = message.split("valid: ", 1)[1]
    for name in valid:
        assert name in listed, (name, message)


def test_names_match_case_insensitively(oracle: Oracle) -> None:
    answer = oracle.ask(Query(do={"Action": "SWERVE"}, given={"ROAD": "Wet"}, outcomes=["Crash"], as_="agent"))
    assert answer.query.do == {"action": "swerve"} and answer.query.given == {"road": "wet"}
    assert answer.outcomes["crash"].p[1] == pytest.approx(0.300198, abs=1e-6)


def test_set_and_observed_is_an_error(oracle: Oracle) -> None:
    with pytest.raises(QueryError, match="road is both set"):
        oracle.ask(Query(do={"action": "brake", "road": "wet"}, given={"road": "dry"}))


def test_large_batches_pause_the_garbage_collector_and_restore_it(monkeypatch, oracle: Oracle) -> None:
    """A batch of at least _PAUSE_FROM queries runs with the cyclic collector paused; it is on
    again afterwards, also when the batch fails, and a caller's own pause is left alone."""
    import gc

    from crux.oracle import oracle as oracle_module

    seen: list[bool] = []
    real = Oracle._run

    def spying(self, *args, **kwargs):
        seen.append(gc.isenabled())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Oracle, "_run", spying)
    monkeypatch.setattr(oracle_module, "_PAUSE_FROM", 3)
    query = Query(do={"action": "brake"}, outcomes=["crash"], as_="agent")
    oracle.posterior_means([query] * 2)
    oracle.posterior_means([query] * 3)
    oracle.ask_many([query] * 3)
    assert seen == [True, False, False] and gc.isenabled()
    with pytest.raises(QueryError, match="brek"):  # the third query fails while the collector is paused
        oracle.posterior_means([query, query, Query(do={"action": "brek"}, outcomes=["crash"])])
    assert gc.isenabled()
    gc.disable()
    try:
        oracle.posterior_means([query] * 3)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_batch_too_large_at_once_is_halved_not_sampled(monkeypatch):
    """Per-query tables make intermediates grow with the batch: a batch over the memory allowed is
    split until its parts fit, and stays exact (the same numbers as with memory to spare); only a
    query too large alone is refused (exact) or sampled (auto)."""
    from crux.oracle.exact import TooLarge
    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query
    from crux.worldmodel.model import load_model

    model = load_model(Path(__file__).resolve().parents[1] / "data" / "child.bif.gz")
    base = model.beliefs(model.default_party)
    states = []
    for k in range(16):  # beliefs that differ per query in every table (so every intermediate has a batch axis)
        tables = {v: t + k for v, t in base.concentration.items()}
        states.append(type(base)(tables, base.likelihood, base.normal, base.certain))
    queries = [Query(given={"LowerBodyO2": "<5"}, outcomes=["Age"])] * len(states)
    roomy = Oracle(model, device="cpu", method="exact")
    want = roomy.posterior_means(queries, states)
    with pytest.raises(TooLarge) as err:
        Oracle(model, device="cpu", method="exact", max_bytes=8).posterior_means(queries[:1], states[:1])
    single = err.value.elements * 8
    tight = Oracle(model, device="cpu", method="exact", max_bytes=single * 4)  # room for about 4 at once
    sizes = []
    real = ExactEngine.marginals
    monkeypatch.setattr(ExactEngine, "marginals", lambda self, *a, **k: sizes.append(a[3].shape[0]) or real(self, *a, **k))
    got = tight.posterior_means(queries, states)
    assert sizes[0] == len(states) and 1 < max(sizes[1:]) < len(states)  # refused whole, answered in parts
    for g, w in zip(got, want):
        assert torch.allclose(g["Age"], w["Age"], atol=1e-14, rtol=0)
    with pytest.raises(TooLarge):
        Oracle(model, device="cpu", method="exact", max_bytes=single // 2).posterior_means(queries, states)


def test_clear_forgets_everything_kept_and_answers_the_same(canonical_path):
    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query
    from crux.worldmodel.model import load_model

    oracle = Oracle(load_model(canonical_path), device="cpu", samples=20)
    queries = [Query(do={"action": a}, given={"road": "wet"}) for a in ("brake", "swerve", "continue")] * 2
    before = [a.to_json() for a in oracle.ask_many(queries)]
    einsum = oracle.router.engine("einsum").kernel
    assert len(oracle.work) and einsum._relevant
    oracle.clear()
    assert not len(oracle.work) and not einsum._compiled and not einsum._relevant
    assert oracle.router.engine("tree")._kernel is False
    assert [a.to_json() for a in oracle.ask_many(queries)] == before


def test_a_query_resolved_once_is_not_checked_again(canonical_path, monkeypatch):
    """The CLI's --batch and the server check each query once (Oracle.resolve) and hand the
    result on: answering it resolves nothing again, and answers the same."""
    from crux.oracle import oracle as module
    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query, Resolver
    from crux.worldmodel.model import load_model

    oracle = Oracle(load_model(canonical_path), device="cpu", samples=20)
    queries = [Query(do={"action": a}, given={"road": "wet"}, as_="human") for a in ("brake", "swerve")]
    want = [a.to_json() for a in oracle.ask_many(queries)]
    resolved = [oracle.resolve(q) for q in queries]
    calls = []
    monkeypatch.setattr(module, "resolve", lambda *a, **k: calls.append(a) or None)
    monkeypatch.setattr(Resolver, "__call__", lambda *a, **k: calls.append(a) or None)
    assert [a.to_json() for a in oracle.ask_many(resolved)] == want
    for got, w in zip(oracle.posterior_means(resolved), want):
        assert got["harm"].tolist() == pytest.approx(w["outcomes"]["harm"]["p"], abs=1e-12)
    assert calls == []
