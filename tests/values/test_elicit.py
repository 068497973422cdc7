"""Elicitation: questions chosen by information about the decision, answers reweighing the values."""

from __future__ import annotations

import json
import random

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dialogue.cli.app import app
from oracle.oracle import Oracle
from tests.conftest import CANONICAL
from values.elicit import Elicitor, preferred, simulated_answer
from values.tradeoffs import state_weights
from values.utility import Utility
from worldmodel.model import load_model


def elicit(truth: torch.Tensor, order: str, seed: int, cap: int = 30):
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=8000, seed=seed)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    while not elicitor.settled() and len(elicitor.asked) < cap:
        if order == "information":
            question = elicitor.best_question()
        else:
            question = rng.choice([q for q in elicitor.questions if all(q is not a for a, _ in elicitor.asked)])
        elicitor.answer(question, simulated_answer(question, truth, gen))
    true_decision = elicitor.actions[int((elicitor.decision_features @ truth).argmax())]
    return len(elicitor.asked), elicitor.decision()[0], true_decision


def test_the_human_of_the_canonical_example():
    """The passenger's own values (harm: squirrel -10, cat -300; crash -250), beta 30."""
    truth = 30 * torch.tensor([-10 / 550, -300 / 550, -250 / 550], dtype=torch.float64)
    asked, decided, true_decision = elicit(truth, "information", seed=0)
    assert decided == true_decision == "swerve"
    assert asked <= 15


def test_questions_and_answers():
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=2000)
    kinds = {q.kind for q in elicitor.questions}
    assert kinds == {"actions", "outcomes"}
    assert len(elicitor.situations) == 8  # road x animal x oncoming
    worse = next(q for q in elicitor.questions if q.kind == "outcomes" and q.first == "harm=squirrel" and q.second == "harm=cat")
    assert worse.text() == "Which is worse: harm=squirrel or harm=cat?"
    before = elicitor.summary()["harm"]["cat"]["mean"]
    for _ in range(3):
        elicitor.answer(worse, "harm=cat")
    assert elicitor.summary()["harm"]["cat"]["mean"] < before
    assert elicitor.information(worse) >= 0


def test_information_beats_random_order():
    rng = random.Random(1)
    totals = {"information": 0, "random": 0}
    for seed in range(6):
        raw = torch.tensor([rng.gauss(0, 1) for _ in range(3)], dtype=torch.float64)
        truth = 20 * raw / raw.abs().sum()
        for order in totals:
            asked, _, _ = elicit(truth, order, seed)
            totals[order] += asked
    assert totals["information"] < totals["random"]


def test_cli_elicit_with_scripted_answers():
    runner = CliRunner()
    result = runner.invoke(app, ["values", "elicit", str(CANONICAL), "--max-questions", "3", "--json"], input="1\n2\n1\n")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])  # the test runner echoes the typed answers
    assert len(report["questions"]) == 3 and report["decision"] in ("brake", "swerve", "continue")


def test_stated_utilities_are_held_fixed_on_their_ray():
    """harm stated (squirrel -10, cat -300): every particle keeps that ratio, crash is free."""
    model = load_model(CANONICAL)
    stated = {"harm": {"none": 5.0, "squirrel": -5.0, "cat": -295.0}}  # the first state need not be 0
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=3000, stated=stated)
    assert elicitor.states == [("harm", "squirrel"), ("harm", "cat"), ("crash", "crash")]
    scaled = elicitor.scaled
    assert torch.all(elicitor.scale > 0)
    assert torch.allclose(scaled[:, 0], elicitor.scale * -10.0) and torch.allclose(scaled[:, 1], elicitor.scale * -300.0)
    assert scaled[:, 2].std() > 10  # drawn, as without stated values
    # nothing asks which of two stated states is worse
    assert not [q for q in elicitor.questions if q.kind == "outcomes" and {q.first, q.second} == {"harm=squirrel", "harm=cat"}]
    summary = elicitor.summary(every_state=True)
    assert summary["harm"]["none"]["mean"] > 0  # stated as written: 5 over the range
    ratio = summary["harm"]["cat"]["mean"] / summary["harm"]["none"]["mean"]
    assert ratio == pytest.approx(-295 / 5)
    assert "none" not in elicitor.summary()["harm"]
    values = elicitor.values()
    assert values["harm"] == stated["harm"] and set(values["crash"]) == {"safe", "crash"} and values["crash"]["safe"] == 0.0


def test_stated_zeros_stay_zero():
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=500, stated={"crash": {}})
    assert torch.all(elicitor.scaled[:, 2] == 0)
    assert not elicitor.in_stated_units
    assert elicitor.values()["crash"] == {}


def test_the_point_values_lie_inside_the_intervals():
    """After the canonical human's answers (crash stated), the asked utilities in the stated units,
    put over their range, fall inside the 90% intervals."""
    model = load_model(CANONICAL)
    elicitor = Elicitor(
        Oracle(model, device="cpu"), model.beliefs("human"), particles=8000, stated={"crash": {"crash": -250.0}}
    )
    truth = {"harm": {"squirrel": -10.0, "cat": -300.0}, "crash": {"crash": -250.0}}
    while not elicitor.settled() and len(elicitor.asked) < 12:
        q = elicitor.best_question()
        elicitor.answer(q, preferred(q.kind, q.first, q.second, q.predicted, truth))
    values = elicitor.values()
    assert values["crash"] == {"crash": -250.0}
    summary = elicitor.summary()
    net = model.network
    point = state_weights(Utility.from_values(values, net))
    for o, s in elicitor.states:
        low, high = summary[o][s]["interval"]
        assert low < point[(o, net.states[o].index(s))] < high, (o, s)


def test_a_scripted_answer_is_the_better_option_and_ties_go_first():
    predicted = {"brake": {"crash": {"safe": 0.9, "crash": 0.1}}, "swerve": {"crash": {"safe": 0.8, "crash": 0.2}}}
    assert preferred("actions", "brake", "swerve", predicted, {"crash": {"crash": -1}}) == "brake"
    assert preferred("actions", "swerve", "brake", predicted, {"crash": {"crash": -1}}) == "brake"
    assert preferred("actions", "swerve", "brake", predicted, {}) == "swerve"  # a tie
    worse = {"harm=cat": {"harm": {"none": 0.0, "cat": 1.0}, "crash": {"safe": 1.0, "crash": 0.0}},
             "crash=crash": {"harm": {"none": 1.0, "cat": 0.0}, "crash": {"safe": 0.0, "crash": 1.0}}}
    values = {"harm": {"cat": -300}, "crash": {"crash": -250}}
    assert preferred("outcomes", "harm=cat", "crash=crash", worse, values) == "harm=cat"
    assert preferred("outcomes", "crash=crash", "harm=cat", worse, values) == "harm=cat"
    assert preferred("outcomes", "crash=crash", "harm=cat", worse, {}) == "crash=crash"  # a tie


def test_an_outcome_question_predicts_the_state_against_its_first():
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=100)
    q = next(q for q in elicitor.questions if (q.first, q.second) == ("harm=cat", "crash=crash"))
    assert q.predicted["harm=cat"] == {"harm": {"none": 0.0, "squirrel": 0.0, "cat": 1.0}, "crash": {"safe": 1.0, "crash": 0.0}}
    a = next(q for q in elicitor.questions if q.kind == "actions")
    for option in (a.first, a.second):
        assert all(sum(d.values()) == pytest.approx(1.0) for d in a.predicted[option].values())


def test_situations_ruled_out_by_the_beliefs_are_not_asked_about(tmp_path):
    data = yaml.safe_load(CANONICAL.read_text())
    data["facts"]["road_sensor"]["reliability"] = 1.0
    data["parties"]["human"]["beliefs"]["knows"] = ["camera", "road_sensor"]
    path = tmp_path / "certain.yaml"
    path.write_text(yaml.safe_dump(data))
    model = load_model(path)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=100)
    assert [s["road"] for s in elicitor.situations] == ["wet"] * 4
    assert [(s["animal"], s["oncoming"]) for s in elicitor.situations] == [
        ("squirrel", "clear"), ("squirrel", "car"), ("cat", "clear"), ("cat", "car")
    ]
