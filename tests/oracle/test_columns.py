"""``Oracle.ask_columns``: many queries of one structure as columns of states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel.model import load_model

DATA = Path(__file__).resolve().parent.parent / "data"
GAUSSIAN = Path(__file__).resolve().parent / "linear_gaussian.yaml"


@pytest.fixture(scope="module")
def alarm():
    return load_model(DATA / "alarm.bif.gz")


def rows(model, n: int, seed: int):
    """n queries do(HR=.) given (CVP=., BP=.) about CO, with possible evidence (forward samples)."""
    rng = np.random.default_rng(seed)
    net = model.network
    return {
        "HR": rng.integers(net.card("HR"), size=n),
        "CVP": rng.integers(net.card("CVP"), size=n),
        "BP": rng.integers(net.card("BP"), size=n),
    }


def test_columns_equal_queries_one_by_one(alarm):
    oracle = Oracle(alarm, device="cpu", samples=2)
    net = alarm.network
    cols = rows(alarm, 30, seed=1)
    queries = [
        Query(
            do={"HR": net.states["HR"][cols["HR"][b]]},
            given={"CVP": net.states["CVP"][cols["CVP"][b]], "BP": net.states["BP"][cols["BP"][b]]},
            outcomes=["CO", "HISTORY"],
        )
        for b in range(30)
    ]
    try:
        want = [oracle.posterior_means([q])[0] for q in queries]
    except QueryError:
        pytest.skip("a random row has impossible evidence")
    by_index = oracle.ask_columns(["CO", "HISTORY"], do={"HR": cols["HR"]}, given={"CVP": cols["CVP"], "BP": torch.as_tensor(cols["BP"])})
    by_name = oracle.ask_columns(
        ["co", "HISTORY"],  # names as the user types them
        do={"hr": [net.states["HR"][i] for i in cols["HR"]]},
        given={"CVP": [net.states["CVP"][i] for i in cols["CVP"]], "BP": list(cols["BP"])},
    )
    for got in (by_index, by_name):
        assert set(got) == {"CO", "HISTORY"}
        for t in got:
            assert got[t].shape == (30, net.card(t))
            assert torch.allclose(got[t], torch.stack([w[t] for w in want]), atol=1e-13, rtol=0)


def test_sampled_columns_agree_with_exact(alarm):
    exact = Oracle(alarm, device="cpu", samples=2).ask_columns(["CO"], do={"HR": [0, 1, 2]})
    sampled = Oracle(alarm, device="cpu", samples=2, method="sampled", particles=40_000, seed=3).ask_columns(["CO"], do={"HR": [0, 1, 2]})
    assert (sampled["CO"] - exact["CO"]).abs().max() < 0.02


def test_no_rows_give_empty_answers(alarm):
    got = Oracle(alarm, device="cpu").ask_columns(["CO"], do={"HR": []})
    assert got["CO"].shape == (0, 3)


@pytest.mark.parametrize(
    ("do", "given", "message"),
    [
        ({"HR": [0, 1]}, {"CVP": [0]}, r"lengths differ \(HR: 2, CVP: 1\)"),
        ({"HR": ["LOW", "HIGHER"]}, {}, r"row 2: unknown state of HR 'HIGHER'"),
        ({"HR": [0, 3]}, {}, r"row 2: HR has 3 states, so its index must be 0..2, not 3"),
        ({"HR": [0.5, 1.0]}, {}, r"the column of HR must be one state name or integer index per query"),
        ({"HEART": [0]}, {}, r"unknown variable in do 'HEART'"),
        ({"HR": [0]}, {"HR": [1]}, r"HR is both set \(do\) and observed \(given\)"),
    ],
)
def test_bad_columns_are_named(alarm, do, given, message):
    with pytest.raises(QueryError, match=message):
        Oracle(alarm, device="cpu").ask_columns(["CO"], do=do, given=given)


def test_impossible_evidence_names_its_row():
    asia = load_model(DATA / "asia.bif.gz")
    with pytest.raises(QueryError, match="row 2: the evidence has probability 0"):
        Oracle(asia, device="cpu").ask_columns(["dysp"], given={"lung": ["no", "yes"], "either": ["no", "no"]})


def test_continuous_columns_are_refused_with_the_way_out():
    model = load_model(GAUSSIAN)
    net = model.network
    var = next(iter(net.continuous))
    with pytest.raises(QueryError, match=f"{var} is continuous: columns take discrete variables"):
        Oracle(model, device="cpu").ask_columns([var], given={var: [1.0]})


def test_columns_too_large_for_exact_are_sampled_under_auto(alarm):
    """A contraction over the memory allowed: ``exact`` refuses it, ``auto`` samples the rows."""
    tight = dict(device="cpu", samples=2, max_bytes=64, particles=40_000, seed=1)
    with pytest.raises(QueryError, match="GiB allowed"):
        Oracle(alarm, method="exact", **tight).ask_columns(["CO"], do={"HR": [0, 2]})
    sampled = Oracle(alarm, method="auto", **tight).ask_columns(["CO"], do={"HR": [0, 2]})
    exact = Oracle(alarm, device="cpu", samples=2).ask_columns(["CO"], do={"HR": [0, 2]})
    assert sampled["CO"].shape == (2, 3)
    assert (sampled["CO"] - exact["CO"]).abs().max() < 0.02
