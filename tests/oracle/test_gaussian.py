"""Continuous variables: linear-Gaussian answers against the closed form, sampled ones within
their standard errors, and the routing between exact and sampled."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from crux.oracle.oracle import Oracle
from crux.oracle.query import Density, Query, QueryError
from crux.worldmodel.model import load_model

MODEL = Path(__file__).resolve().parent / "linear_gaussian.yaml"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def closed_form(policy_offset: float, load: float | None = None, distance: float | None = None):
    """load ~ N(2, .5^2); speed = 3 + .4 load + offset + N(0, .3^2); distance = .5 + 1.2 speed + .3 load + N(0, .4^2)."""
    mu_l, v_l = 2.0, 0.25
    a, b, c = 3.0 + policy_offset, 0.4, 0.09  # speed = a + b load + e_s
    # distance = .5 + 1.2 a + (1.2 b + .3) load + 1.2 e_s + e_d
    k = 1.2 * b + 0.3
    if load is not None:
        speed = (a + b * load, math.sqrt(c))
        dist = (0.5 + 1.2 * a + k * load, math.sqrt(1.44 * c + 0.16))
        return {"speed": speed, "distance": dist}
    mean_d = 0.5 + 1.2 * a + k * mu_l
    var_d = k * k * v_l + 1.44 * c + 0.16
    if distance is None:
        return {"distance": (mean_d, math.sqrt(var_d)), "load": (mu_l, math.sqrt(v_l))}
    cov_ld = k * v_l
    mean_l = mu_l + cov_ld / var_d * (distance - mean_d)
    var_l = v_l - cov_ld**2 / var_d
    return {"load": (mean_l, math.sqrt(var_l))}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(do={"policy": "slow"}, given={"load": "3"}, outcomes=["distance", "speed"]), closed_form(-1.5, load=3.0)),
        (Query(do={"policy": "normal"}, outcomes=["distance", "load"]), closed_form(0.0)),
        (Query(do={"policy": "normal"}, given={"distance": "7.5"}, outcomes=["load"]), closed_form(0.0, distance=7.5)),
    ],
)
def test_exact_answers_are_the_closed_form(model, query, expected):
    answer = Oracle(model, device="cpu").ask(query)
    assert answer.method == "exact"
    for name, (mean, sd) in expected.items():
        d = answer.outcomes[name]
        assert isinstance(d, Density)
        assert d.mean == pytest.approx(mean, abs=1e-12) and d.sd == pytest.approx(sd, abs=1e-12)
        assert d.interval == pytest.approx([mean - 1.6448536269514722 * sd, mean + 1.6448536269514722 * sd], abs=1e-9)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(do={"policy": "slow"}, given={"load": "3"}, outcomes=["distance"]), closed_form(-1.5, load=3.0)),
        (Query(do={"policy": "normal"}, given={"distance": "7.5"}, outcomes=["load"]), closed_form(0.0, distance=7.5)),
    ],
)
def test_sampled_answers_lie_within_four_standard_errors(model, query, expected):
    answer = Oracle(model, device="cpu", method="sampled", particles=100_000, seed=5).ask(query)
    assert answer.method == "sampled"
    for name in query.outcomes:
        mean, sd = expected[name]
        d = answer.outcomes[name]
        assert abs(d.mean - mean) <= 4 * d.stderr
        assert d.sd == pytest.approx(sd, rel=0.05)


@pytest.mark.parametrize("method", ["auto", "exact", "sampled"])
@pytest.mark.parametrize("target", ["distance", "slip"])
def test_every_engine_refuses_an_answer_that_needs_the_unset_decision(model, method, target):
    """Continuous (closed form or sampled) answers refuse an unset decision as discrete ones do
    (was: an internal error from the sampler)."""
    with pytest.raises(QueryError, match="depends on the decision policy: set it with do policy="):
        Oracle(model, device="cpu", method=method, samples=2).ask(Query(outcomes=[target]))


def test_mixed_queries_route_per_target(model):
    query = Query(do={"policy": "slow"}, given={"load": "3"}, outcomes=["distance", "slip"])
    answer = Oracle(model, device="cpu").ask(query)
    assert answer.method == "exact"  # load is d-separated from slip: both targets are exact
    assert answer.outcomes["slip"].p == pytest.approx([0.7 * 0.98 + 0.3 * 0.85, 0.7 * 0.02 + 0.3 * 0.15])
    with pytest.raises(QueryError, match="is continuous: give a number"):
        Oracle(model, device="cpu").ask(Query(do={"policy": "slow"}, given={"load": "heavy"}))


MIXED = """
crux: 1
name: mixed
world:
  variables:
    act: {states: [a, b]}
    kind: {states: [light, heavy], prior: [0.5, 0.5]}
    weight:
      parents: [kind]
      normal: {intercept: 1.0, offsets: {kind: {heavy: 2.0}}, scale: 0.5}
  decision: act
  outcomes: [kind, weight]
"""


def test_continuous_evidence_on_a_discrete_parent_is_sampled(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    model = load_model(path)
    query = Query(given={"weight": "2.5"}, outcomes=["kind"], as_="world")
    answer = Oracle(model, device="cpu", particles=100_000, seed=2).ask(query)
    assert answer.method == "sampled"
    # P(heavy | w) = N(w; 3, .5) / (N(w; 1, .5) + N(w; 3, .5))
    light, heavy = (math.exp(-((2.5 - m) ** 2) / (2 * 0.25)) for m in (1.0, 3.0))
    truth = heavy / (light + heavy)
    d = answer.outcomes["kind"]
    assert abs(d.p[1] - truth) <= 4 * d.stderr[1]
    with pytest.raises(QueryError, match="mixes discrete and continuous"):
        Oracle(model, device="cpu", method="exact").ask(query)
