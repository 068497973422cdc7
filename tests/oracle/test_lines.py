"""``crux ask --batch`` in columns (:mod:`oracle.lines`) answers as ``ask_many`` does, query by
query: the same JSON, numbers within 1e-12, on every bundled network and the example
scenarios (every party), whichever group a line falls in; bad lines get their own error line
and the good ones are answered."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from crux.oracle.lines import answer_lines
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel.model import load_model

ROOT = Path(__file__).resolve().parents[2]
MODELS = [
    *sorted((ROOT / "tests" / "data").glob("*.bif.gz")),
    ROOT / "examples" / "squirrel_or_cat.yaml",
    ROOT / "examples" / "anticoagulation.yaml",
    ROOT / "examples" / "warehouse" / "scene.yaml",
]


def random_lines(model, count: int, seed: int) -> list[dict]:
    """Queries of mixed structure (some sharing one), every party, the decision set where there is one."""
    rng = random.Random(seed)
    net = model.network
    names = [v for v in net.order if v not in net.continuous and v != net.decision]
    shared = rng.sample(names, 3)
    out = []
    for k in range(count):
        picked = shared if k % 3 == 0 else rng.sample(names, 3)
        do, seen, target = picked
        query: dict = {"do": {do: rng.choice(net.states[do])}, "given": {seen: rng.choice(net.states[seen])}}
        if net.decision is not None:
            query["do"][net.decision] = rng.choice(net.states[net.decision])
        if k % 4:
            query["outcomes"] = [target] if k % 2 else [target, rng.choice(names)]
        if len(model.parties) > 1:
            query["as"] = rng.choice(list(model.parties))
        out.append(query)
    return out


def one_by_one(oracle: Oracle, query: dict) -> dict:
    try:
        return oracle.ask_many([Query.model_validate(query)])[0].to_json()
    except QueryError as err:
        return {"error": str(err)}


def close(got, want, path="") -> None:
    if isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-12, rel=0), path
    elif isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for k, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{path}[{k}]")
    else:
        assert got == want, path


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_the_columns_answer_as_ask_many_does(path):
    model = load_model(path, steps=2 if path.name == "scene.yaml" else None)
    oracle = Oracle(model, device="cpu", samples=50)
    queries = random_lines(model, 80, seed=len(path.name))  # past 64 rows a group is written distinct rows once
    lines = [json.dumps(q) for q in queries]
    out, failed = answer_lines(oracle, lines)
    assert len(out) == len(lines)
    errors = 0
    for n, (query, text) in enumerate(zip(queries, out), 1):
        got, want = json.loads(text), one_by_one(oracle, query)
        if "error" in want:
            errors += 1
            assert got["line"] == n and got["error"]["message"] == want["error"], (n, got)
            continue
        close(got, want)
    assert failed == errors


def test_bad_lines_among_good_ones_get_their_own_error_and_the_rest_are_answered():
    model = load_model(ROOT / "examples" / "squirrel_or_cat.yaml")
    oracle = Oracle(model, device="cpu", samples=20)
    good = {"do": {"action": "swerve"}, "given": {"road": "wet"}, "outcomes": ["crash"], "as": "human"}
    lines = [
        json.dumps(good),
        "not json",
        "",  # blank: no output line, but counted
        json.dumps({"do": {"action": "swerv"}, "given": {"road": "wet"}}),
        json.dumps({"do": {"action": "brake"}, "given": {"road": "wet", "road_x": "dry"}}),
        '{"do": {"action": "brake"}, "do": {"action": "swerve"}}',
        json.dumps({"do": {"action": "brake"}, "given": {"road": "wet"}, "outcomes": ["crash"], "as": "human"}),
        json.dumps({"do": {"action": ["brake"]}}),
        json.dumps({"given": {"road": "wet"}}),  # the decision left unset
        json.dumps({"do": {"action": "brake"}, "when": "now"}),
        json.dumps({**good, "do": {"action": "Swerve"}}),  # forgiven spelling: the general path answers it
    ]
    out, failed = answer_lines(oracle, lines)
    got = [json.loads(text) for text in out]
    assert len(got) == len(lines) - 1
    answered = [g for g in got if "query" in g]
    assert [g["query"]["do"]["action"] for g in answered] == ["swerve", "brake", "swerve"]
    assert answered[0] == answered[2]  # "Swerve" is swerve, echoed as the model spells it
    want = oracle.ask(Query.model_validate(good)).to_json()
    close(answered[0], want)
    errors = {g["line"]: g["error"] for g in got if "line" in g}
    assert failed == len(errors) == 7
    assert errors[2]["message"].startswith("not JSON")
    assert errors[4]["problems"] == [
        {"loc": ["do", "action"], "msg": errors[4]["problems"][0]["msg"]}
    ] and "did you mean 'swerve'" in errors[4]["message"]
    assert errors[5]["problems"][0]["loc"] == ["given", "road_x"]
    assert "given twice" in errors[6]["message"]
    assert errors[8]["problems"][0]["loc"][:2] == ["do", "action"]
    assert "depends on the decision action" in errors[9]["message"]
    assert errors[10]["problems"][0]["loc"] == ["when"]


def test_impossible_evidence_is_an_error_on_its_line_only():
    model = load_model(ROOT / "tests" / "data" / "asia.bif.gz")
    oracle = Oracle(model, device="cpu")
    # asia's `either` is a logical OR: lung=yes with either=no cannot happen.
    lines = [
        json.dumps({"do": {"asia": "yes"}, "given": {"lung": "yes", "either": "no"}, "outcomes": ["dysp"]}),
        json.dumps({"do": {"asia": "yes"}, "given": {"lung": "yes", "either": "yes"}, "outcomes": ["dysp"]}),
    ]
    out, failed = answer_lines(oracle, lines)
    first, second = (json.loads(text) for text in out)
    assert failed == 1 and first["line"] == 1 and "probability 0" in first["error"]["message"]
    close(second, oracle.ask(Query.model_validate(json.loads(lines[1]))).to_json())


@pytest.mark.parametrize("path", [ROOT / "examples" / "squirrel_or_cat.yaml", ROOT / "tests" / "data" / "alarm.bif.gz"], ids=lambda p: p.name)
def test_many_lines_of_one_structure_asked_again_are_written_as_ask_many_writes_them(path):
    """Past 64 rows a target's distinct rows are written once and shared by the lines asking
    the same (with draws: the mean and the interval together)."""
    model = load_model(path)
    oracle = Oracle(model, device="cpu", samples=50)
    net = model.network
    rng = random.Random(7)
    do = net.decision or net.order[0]
    seen = next(v for v in net.order if v != do and v not in net.outcomes)
    queries = [{"do": {do: rng.choice(net.states[do])}, "given": {seen: rng.choice(net.states[seen])}} for _ in range(150)]
    out, failed = answer_lines(oracle, [json.dumps(q) for q in queries])
    want = [a.to_json() for a in oracle.ask_many([Query.model_validate(q) for q in queries])]
    assert failed == 0 and len(set(out)) < len(out)  # lines asked again
    for text, w in zip(out, want):
        close(json.loads(text), w)
