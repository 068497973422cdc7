"""Elicitation: questions chosen by information about the decision, answers reweighing the values."""

from __future__ import annotations

import json
import random

import pytest
import torch
import yaml
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL
from hypothesis import given, settings
from hypothesis import strategies as st

from crux.values.elicit import SPAN, Elicitor, Question, preferred, simulated_answer
from crux.values.tradeoffs import state_weights
from crux.values.utility import Utility
from crux.worldmodel.model import load_model


def elicit(truth: torch.Tensor, order: str, seed: int, cap: int = 30):
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=8000, seed=seed)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    while not elicitor.settled() and len(elicitor.asked) < cap:
        question = elicitor.best_question() if order == "information" else rng.choice(elicitor.candidates())
        elicitor.answer(question, simulated_answer(question, truth, gen))
    true_decision = elicitor.actions[int((elicitor.decision_features @ truth).argmax())]
    return len(elicitor.asked), elicitor.decision()[0], true_decision


def canonical_elicitor(particles: int = 2000, **kw) -> Elicitor:
    model = load_model(CANONICAL)
    return Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=particles, **kw)


def ask(elicitor: Elicitor, kind: str, first: str, second: str = "") -> Question:
    """The question of that kind about those options (a sign: about the state ``first``)."""
    if kind == "sign":
        return next(q for q in elicitor.questions if q.kind == "sign" and q.text().startswith(f"Is {first} "))
    return next(q for q in elicitor.questions if (q.kind, q.first, q.second) == (kind, first, second))


def test_the_human_of_the_canonical_example():
    """The passenger's own values (harm: squirrel -10, cat -300; crash -250), beta 30."""
    truth = 30 * torch.tensor([-10 / 550, -300 / 550, -250 / 550], dtype=torch.float64)
    asked, decided, true_decision = elicit(truth, "information", seed=0)
    assert decided == true_decision == "swerve"
    assert asked <= 8


def test_signs_first_then_sizes_in_plain_words():
    elicitor = canonical_elicitor()
    assert {q.kind for q in elicitor.questions} == {"sign", "outcomes", "actions"}
    assert len(elicitor.situations) == 8  # road x animal x oncoming
    assert {q.kind for q in elicitor.candidates()} == {"sign"}  # no size before the signs that matter
    assert ask(elicitor, "sign", "harm=cat").text() == "Is harm=cat better or worse than harm=none?"
    worse = ask(elicitor, "outcomes", "harm=squirrel", "harm=cat")
    assert worse.text() == "Which would be worse: harm=squirrel or harm=cat?"
    action = next(q for q in elicitor.questions if q.kind == "actions" and len(q.given) == 3)
    assert action.text().startswith("If road is ") and " and oncoming is " in action.text()
    assert action.text().endswith(f"would you rather {action.first} or {action.second}?")
    for state in ("harm=squirrel", "harm=cat", "crash=crash"):
        elicitor.answer(ask(elicitor, "sign", state), "worse")
    kinds = {q.kind for q in elicitor.candidates()}
    assert kinds == {"outcomes", "actions", "lottery"}
    lottery = next(q for q in elicitor.lotteries() if q.first == "harm=cat for sure")
    assert lottery.text().startswith("Would you rather have harm=cat for sure, or a ")
    assert lottery.text().endswith("(and otherwise harm=none and crash=safe)?")
    before = elicitor.summary()["harm"]["cat"]["mean"]
    for _ in range(3):
        elicitor.answer(worse, "harm=cat")
    assert elicitor.summary()["harm"]["cat"]["mean"] < before
    assert elicitor.information(worse) >= 0


ANSWERS = st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), st.integers(0, 10_000)), max_size=8)


@settings(max_examples=25, deadline=None)
@given(answers=ANSWERS, signs=st.dictionaries(st.sampled_from(["harm=squirrel", "harm=cat", "crash=crash"]), st.sampled_from([-1, 1])))
def test_no_particle_ever_holds_a_sign_that_was_given(answers, signs):
    """Any sequence of answers (signs, sizes, lotteries, some withdrawn), with signs from the scenario
    too: every particle, and so every interval, keeps every sign given."""
    elicitor = canonical_elicitor(particles=400, signs=signs)
    for pick, first, withdraw in answers:
        candidates = elicitor.candidates()
        q = candidates[pick % len(candidates)]
        elicitor.answer(q, q.first if first else q.second)
        if withdraw % 4 == 0:
            elicitor.withdraw(withdraw % len(elicitor.asked))
        for j, sign in elicitor.signs().items():
            assert torch.all(sign * elicitor.scaled[:, j] >= 0), (elicitor.states[j], sign)
    summary = elicitor.summary()
    for name, sign in signs.items():
        o, s = name.split("=")
        low, high = summary[o][s]["interval"]
        assert (low >= 0) if sign > 0 else (high <= 0), name


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.67, 0.83, 0.93])
def test_a_lottery_bisection_pins_a_ratio_in_six_answers(ratio):
    """u(crash=crash) / u(harm=cat), both worse than their references: six standard gambles, each at
    the middle of the ratio's plausible span, pin its posterior median within 0.05."""
    elicitor = canonical_elicitor(particles=20000, seed=3)
    truth = {"harm": {"squirrel": -10.0, "cat": -100.0}, "crash": {"crash": -100.0 * ratio}}
    for state in ("harm=squirrel", "harm=cat", "crash=crash"):
        elicitor.answer(ask(elicitor, "sign", state), "worse")
    crash, cat = elicitor.states.index(("crash", "crash")), elicitor.states.index(("harm", "cat"))

    def cut(q: Question) -> float | None:
        """The ratio u(crash)/u(cat) at which the person is indifferent (None: another pair)."""
        if q.first == "crash=crash for sure" and q.second.endswith("of harm=cat"):
            return -float(q.features[cat])  # crash for sure, or a p chance of cat: p
        if q.first == "harm=cat for sure" and q.second.endswith("of crash=crash"):
            return -1 / float(q.features[crash])  # cat for sure, or a p chance of crash: 1 / p
        return None

    for _ in range(6):
        low, high = elicitor.ratio(crash, cat, SPAN)
        q = min(  # the gamble at the middle of what is still plausible below 1: a bisection on the chance
            (q for q in elicitor.lotteries() if cut(q) is not None),
            key=lambda q: abs(cut(q) - (low + min(high, 1.0)) / 2),
        )
        elicitor.answer(q, preferred(q.kind, q.first, q.second, q.predicted, truth))
    [estimate] = elicitor.ratio(crash, cat)
    assert abs(estimate - ratio) <= 0.05


def test_answers_that_cannot_all_hold_are_found_with_the_fewest_that_clash():
    elicitor = canonical_elicitor()
    elicitor.answer(ask(elicitor, "outcomes", "harm=squirrel", "harm=cat"), "harm=cat")  # cat worse than squirrel
    elicitor.answer(ask(elicitor, "outcomes", "harm=cat", "crash=crash"), "crash=crash")  # crash worse than cat
    assert elicitor.conflicts() == []
    elicitor.answer(ask(elicitor, "sign", "harm=cat"), "worse")
    assert elicitor.conflicts() == []
    elicitor.answer(ask(elicitor, "outcomes", "harm=squirrel", "crash=crash"), "harm=squirrel")  # a cycle
    assert elicitor.conflicts() == [0, 1]  # the sign answer (2) plays no part
    elicitor.withdraw(3)
    assert elicitor.conflicts() == []
    # a lottery against an earlier ordering: crash is worse than cat, yet crash for sure is
    # preferred to a 90% chance of cat, with both worse than their references
    elicitor.answer(ask(elicitor, "sign", "crash=crash"), "worse")
    gamble = Question(
        "lottery", "crash=crash for sure", "a 90% chance of harm=cat", {},
        torch.tensor([0.0, -0.9, 1.0], dtype=torch.float64), {}, text_="(a test lottery)",
    )
    elicitor.answer(gamble, "crash=crash for sure")  # u(crash) > 0.9 u(cat)
    assert elicitor.conflicts() == [1, 3]  # "crash worse than cat" and one sign (crash's; cat's would do too)


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


def test_a_scripted_sign_and_lottery_answer():
    elicitor = canonical_elicitor(particles=100)
    values = {"harm": {"cat": -300}, "crash": {"crash": -250}}
    q = ask(elicitor, "sign", "harm=cat")
    assert preferred(q.kind, q.first, q.second, q.predicted, values) == "worse"
    assert preferred(q.kind, q.first, q.second, q.predicted, {"harm": {"cat": 5}}) == "better"
    for state in ("harm=squirrel", "harm=cat", "crash=crash"):
        elicitor.answer(ask(elicitor, "sign", state), "worse")
    for q in elicitor.lotteries():  # the sure thing against the gamble, by expected utility
        sure = next(s for s in elicitor.states if q.first == f"{s[0]}={s[1]} for sure")
        gamble_p = float(q.second.split("%")[0].split()[-1]) / 100
        target = next(s for s in elicitor.states if q.second.endswith(f"of {s[0]}={s[1]}"))
        u = lambda s: values.get(s[0], {}).get(s[1], 0.0)  # noqa: E731
        expected = q.first if u(sure) >= gamble_p * u(target) else q.second
        assert preferred(q.kind, q.first, q.second, q.predicted, values) == expected, q.text()


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
