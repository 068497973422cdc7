"""Sessions in which the human's values are unknown: asked after the exchange, reported with intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crux.dialogue.elicitation import Elicitation
from crux.dialogue.engine import Engine, EngineError
from crux.dialogue.parties import Agent, ScriptedHuman
from crux.dialogue.protocol import (
    Answered,
    Asked,
    Decide,
    Decline,
    Declined,
    Diagnosed,
    Elicited,
    Eliciting,
    Respond,
    SetValues,
    Share,
    Undo,
    Undone,
    ValueAnswer,
    Withdraw,
    Withdrawn,
)
from crux.dialogue.report import build_report, render, stopped_text
from crux.dialogue.session import LiveSession, run_session
from crux.dialogue.transcript import read_events
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL, EXAMPLES, to_a_conflict
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import load_model

UNKNOWN_VALUES = EXAMPLES / "squirrel_or_cat_unknown_values.yaml"
FAST = Elicitation(particles=3000)
CANONICAL_HUMAN = {("harm", "squirrel"): -10 / 550, ("harm", "cat"): -300 / 550, ("crash", "crash"): -250 / 550}
"""The canonical human's utilities over their range (harm: squirrel -10, cat -300; crash -250)."""


def session(path: Path, **kw):
    model = load_model(path)
    return run_session(path, model, Oracle(model, device="cpu"), **kw)


def written(tmp_path: Path, values, answers=None, name: str = "s.yaml") -> Path:
    data = yaml.safe_load(CANONICAL.read_text())
    data["parties"]["human"]["values"] = values
    if answers is not None:
        data["parties"]["human"]["responds"]["values"] = answers
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def canonical():
    return session(CANONICAL)[0]


@pytest.fixture(scope="module")
def asked():
    return session(UNKNOWN_VALUES, elicitation=FAST)


def test_the_example_asks_the_values_and_reaches_the_canonical_decision(canonical, asked):
    report, events = asked
    assert report["initial"]["choices"] == {"agent": "continue"}
    assert report["initial"]["diagnosis"] == {
        "kind": "unknown",
        "belief_share": None,
        "value_share": None,
        "cells": {"agent beliefs, agent values": "continue", "human beliefs, agent values": "brake"},
    }
    # every fact the canonical session exchanges is exchanged (each changes the human's predictions)
    assert sorted(t["fact"] for t in report["turns"]) == sorted(t["fact"] for t in canonical["turns"])
    elicitation = report["elicitation"]
    assert elicitation["unknown"] == ["harm", "crash"] and elicitation["stated"] == {}
    assert 1 <= len(elicitation["questions"]) <= FAST.max_questions
    assert all(q["answer"] in (q["first"], q["second"]) for q in elicitation["questions"])
    assert report["final"]["choices"] == canonical["final"]["choices"]
    assert report["final"]["diagnosis"]["kind"] == canonical["final"]["diagnosis"]["kind"] == "value"
    assert report["decision"]["action"] == canonical["decision"]["action"] == "swerve"
    [road] = report["final"]["unresolved_beliefs"]  # the same belief gap; its worth depends on the values
    [same] = canonical["final"]["unresolved_beliefs"]
    assert {k: v for k, v in road.items() if k != "value_of_information"} == {
        k: v for k, v in same.items() if k != "value_of_information"
    }


def test_the_asked_values_keep_the_canonical_human_signs_and_trade_off(asked):
    report, _ = asked
    utilities = report["elicitation"]["utilities"]
    for outcome, state in CANONICAL_HUMAN:
        low, high = utilities[outcome][state]["interval"]
        assert high < 0, (outcome, state)  # worse than its reference: the posterior holds the sign answered
    # the trade-off the decision turns on goes the person's way: the cat weighs more than the crash
    assert utilities["harm"]["cat"]["mean"] < utilities["crash"]["crash"]["mean"]
    assert utilities["harm"]["none"] == {"mean": 0.0, "interval": [0.0, 0.0]}  # each outcome's zero
    conflicts = report["final"]["value_conflicts"]
    assert {(c["outcome"], c["state"]) for c in conflicts} == set(CANONICAL_HUMAN)
    for c in conflicts:
        assert {"outcome", "state", "agent", "human", "human_interval"} <= set(c)
        low, high = c["human_interval"]
        assert low < c["human"] < high < 0
    cat = next(c for c in conflicts if c["state"] == "cat")
    assert cat["agent"] == pytest.approx(-50 / 450)  # the agent's stated values, as in the canonical session


def test_no_diagnosis_while_the_values_are_unknown(asked):
    _, events = asked
    elicited = next(i for i, e in enumerate(events) if isinstance(e, Elicited))
    before = [e for e in events[:elicited] if isinstance(e, Diagnosed)]
    assert before and all(e.kind == "unknown" and e.belief_share is None and "human" not in e.choices for e in before)
    after = [e for e in events[elicited:] if isinstance(e, Diagnosed)]
    assert [e.stage for e in after] == ["final"] and after[0].kind != "unknown"
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Eliciting") > max(i for i, k in enumerate(kinds) if k == "Responded")
    assert kinds.index("Decided") > kinds.index("Concluded") > kinds.index("Elicited")


def test_the_scripted_human_answers_by_its_values(asked):
    _, events = asked
    answers = {e.number: e.answer for e in events if isinstance(e, Answered)}
    canonical = {"harm": {"squirrel": -10, "cat": -300}, "crash": {"crash": -250}}
    for q in (e for e in events if isinstance(e, Asked)):
        worth = {
            option: sum(canonical.get(o, {}).get(s, 0) * p for o, d in q.predicted[option].items() for s, p in d.items())
            for option in (q.first, q.second)
        }
        better = max(worth, key=worth.get) if q.kind in ("actions", "lottery") else min(worth, key=worth.get)
        assert answers[q.number] == better, q.text
    worse = [e for e in events if isinstance(e, Asked) and e.kind == "outcomes"]
    assert all(answers[q.number] == "harm=cat" for q in worse if {q.first, q.second} == {"harm=cat", "crash=crash"})


def test_partly_stated_values_keep_the_stated_part(tmp_path, canonical):
    path = written(
        tmp_path, {"harm": "unknown", "crash": {"crash": -250}}, {"harm": {"squirrel": -10, "cat": -300}}
    )
    report, events = session(path, elicitation=FAST)
    [start] = [e for e in events if isinstance(e, Eliciting)]
    assert start.unknown == ["harm"] and start.stated == {"crash": {"crash": -250.0}}
    [done] = [e for e in events if isinstance(e, Elicited)]
    assert done.values["crash"] == {"crash": -250.0}
    assert -1000 < done.values["harm"]["cat"] < -100  # in the units of crash's -250, not over the range
    assert done.values["harm"]["cat"] < done.values["harm"]["squirrel"]
    for q in (e for e in events if isinstance(e, Asked) and e.kind == "outcomes"):
        assert "harm=" in q.first + q.second  # nothing asks about crash alone: it is stated
    assert report["decision"]["action"] == canonical["decision"]["action"]


def test_predict_only_asks_the_values_and_shows_them(tmp_path):
    data = yaml.safe_load(UNKNOWN_VALUES.read_text())
    del data["parties"]["agent"]["values"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    report, events = session(path, mode="predict-only", elicitation=FAST)
    assert report["initial"]["choices"] == {} and report["initial"]["diagnosis"]["cells"] == {}
    assert report["turns"], "facts that change the human's predictions are exchanged"
    assert report["elicitation"]["questions"]
    assert set(report["final"]["choices"]) == {"human"}
    assert report["final"]["value_conflicts"] == []
    assert report["elicitation"]["utilities"]["harm"]["cat"]["interval"][0] < report["elicitation"]["utilities"]["harm"]["cat"]["mean"]
    assert report["decision"]["action"] == report["final"]["choices"]["human"]


def test_replay_and_resume_mid_questions(tmp_path, asked):
    full = tmp_path / "full.jsonl"
    report, _ = session(UNKNOWN_VALUES, transcript=full, elicitation=FAST)
    assert report == asked[0]
    assert build_report(read_events(full)) == report
    lines = full.read_text().splitlines(keepends=True)
    kinds = [json.loads(x)["type"] for x in lines]
    first_question = kinds.index("question")
    cuts = [first_question, first_question + 1, kinds.index("elicited")]  # a question, an answer, the result
    for k in cuts:
        for torn in (False, True):
            cut = tmp_path / f"cut{k}{torn}.jsonl"
            cut.write_text("".join(lines[:k]) + (lines[k][: len(lines[k]) // 2] if torn else ""))
            resumed, _ = session(UNKNOWN_VALUES, resume=cut)  # the settings come from the transcript
            assert resumed == report, f"resumed after {k} events"
            assert [json.loads(x) for x in cut.read_text().splitlines()] == [json.loads(x) for x in lines]


def test_the_engine_refuses_what_does_not_fit_the_value_step():
    model = load_model(UNKNOWN_VALUES)
    engine = Engine(model, Oracle(model, device="cpu"), elicitation=FAST)
    engine.start()
    with pytest.raises(EngineError, match="no value question is on offer"):
        engine.handle(ValueAnswer(question=1, choice="brake"))
    while engine.pending is not None:
        engine.handle(Respond(fact=engine.pending.fact, accepted=True))
    asked = engine.question
    assert asked is not None and asked.number == 1
    with pytest.raises(EngineError, match="got an answer to question 2, expected one to question 1"):
        engine.handle(ValueAnswer(question=2, choice=asked.first))
    with pytest.raises(EngineError, match=f"answer '{asked.first}' or '{asked.second}' to question 1, not 'maybe'"):
        engine.handle(ValueAnswer(question=1, choice="maybe"))
    with pytest.raises(EngineError, match="answer the question on offer"):
        engine.handle(SetValues(party="human", values={"harm": {"cat": -1}}))
    with pytest.raises(EngineError, match="the exchange has concluded"):
        engine.handle(Share(fact="camera"))
    with pytest.raises(EngineError, match="only after the final diagnosis"):
        engine.handle(Decide(action="swerve"))
    events = engine.handle(ValueAnswer(question=1, choice=asked.first))
    assert isinstance(events[0], Answered) and events[0].answer == asked.first


def test_values_set_during_the_exchange_make_the_questions_unneeded(tmp_path):
    model = load_model(UNKNOWN_VALUES)
    live = LiveSession(UNKNOWN_VALUES, model, Oracle(model, device="cpu"), elicitation=FAST)
    events = live.send(SetValues(party="human", values={"harm": "unknown", "crash": {"crash": -250}}))
    assert live.engine.unknown == ["harm"] and events[1].kind == "unknown"
    live.send(SetValues(party="human", values={"harm": {"squirrel": -10, "cat": -300}, "crash": {"crash": -250}}))
    assert live.engine.unknown == [] and live.engine.diagnosis.kind != "unknown"
    with pytest.raises(EngineError, match="only the human's values may be unknown"):
        live.send(SetValues(party="agent", values={"harm": "unknown"}))
    while live.engine.pending is not None:
        live.send(Respond(fact=live.engine.pending.fact, accepted=True))
    assert live.engine.concluded and not any(isinstance(e, Eliciting) for e in live.events)


def test_a_headless_session_needs_the_scripted_answers(tmp_path):
    path = written(tmp_path, {"harm": "unknown", "crash": {"crash": -250}})
    with pytest.raises(CruxError) as info:
        session(path, transcript=tmp_path / "t.jsonl")
    assert str(info.value) == (
        f"{path}: parties.human.responds.values: the human's values of harm are unknown, so a scripted human "
        "needs the utilities it answers value questions with: add responds.values.harm: {state: utility} "
        "(one entry per unknown outcome), or run the session without --headless and answer them yourself"
    )
    assert not (tmp_path / "t.jsonl").exists()  # refused before anything is written


def test_the_readable_report_shows_questions_and_intervals(asked):
    text = render(asked[0])
    assert "the agent would choose continue, the human's values are not known yet: no diagnosis until they are asked" in text
    assert "Then the human was asked about their values of harm, crash:" in text
    assert "  1. " in text and "Utility / range, mean and 90% interval:" in text
    assert "value conflict on harm=cat: agent -0.111, human " in text and "(90% interval " in text


TWO_OUTCOMES = {
    "crux": 1,
    "name": "two-outcomes",
    "world": {
        "variables": {
            "weather": {"states": ["dry", "rain"], "prior": [0.5, 0.5]},
            "road": {"states": ["good", "bad"], "prior": [0.5, 0.5]},
            "go": {"states": ["walk", "drive"]},
            "late": {
                "states": ["no", "yes"],
                "parents": ["go", "road"],
                "table": {"walk, good": [0.5, 0.5], "walk, bad": [0.5, 0.5], "drive, good": [0.9, 0.1], "drive, bad": [0.2, 0.8]},
            },
            "wet_garden": {
                "states": ["no", "yes"],
                "parents": ["weather"],
                "table": {"dry": [0.9, 0.1], "rain": [0.1, 0.9]},
            },
        },
        "decision": "go",
        "outcomes": ["late", "wet_garden"],
    },
    "facts": {
        "forecast": {"text": "It rains.", "source": "radio", "observe": {"weather": "rain"}},
        "traffic": {"text": "The road is bad.", "source": "radio", "observe": {"road": "bad"}},
    },
    "parties": {
        "agent": {"beliefs": {"knows": ["forecast", "traffic"]}, "values": {"late": {"yes": -1}}},
        "human": {"values": "unknown", "responds": {"values": {"late": {"yes": -1}, "wet_garden": {"yes": -1}}}},
    },
}


def test_a_fact_that_moves_every_action_alike_is_not_offered(tmp_path):
    """The forecast changes the human's prediction of the garden, the same whatever they do: under
    no values can it change their choice, so it is not offered; the traffic report is."""
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(TWO_OUTCOMES, sort_keys=False))
    report, _ = session(path, elicitation=FAST)
    assert [t["fact"] for t in report["turns"]] == ["traffic"]
    assert report["turns"][0]["why"].startswith("it changes how the actions compare in your predictions")
    assert report["final"]["choices"]["human"] == "walk"


def _to_the_questions(live: LiveSession) -> None:
    human = ScriptedHuman(live.engine.scenario, live.engine.model.network)
    engine = live.engine
    while engine.question is None:
        offer = engine.pending
        live.send(Agent().respond(offer) if offer.receiver == "agent" else human.respond(offer))


def test_the_canonical_example_settles_before_the_cap():
    report, _ = session(UNKNOWN_VALUES)  # the session's own settings
    asked = report["elicitation"]
    assert asked["stopped"] == "settled" and asked["agreement"] >= 0.95
    assert len(asked["questions"]) < Elicitation().max_questions
    assert [q["kind"] for q in asked["questions"][:3]] == ["sign"] * 3  # the signs come first
    assert asked["decision"] == report["decision"]["action"] == "swerve"


def test_answers_that_cannot_all_hold_are_shown_and_one_is_withdrawn(tmp_path):
    """Answers at random (seeded) clash; the person withdraws one, the questions go on, and the record
    keeps both the clash and the withdrawal."""
    model = load_model(UNKNOWN_VALUES)
    made = []

    def make_live():
        made.append(tmp_path / f"t{len(made)}.jsonl")
        return LiveSession(UNKNOWN_VALUES, model, Oracle(model, device="cpu"), transcript=made[-1], elicitation=FAST)

    live, conflict = to_a_conflict(make_live)
    t = made[-1]
    human = ScriptedHuman(live.engine.scenario, model.network)
    assert live.engine.question is None and live.engine.conflict == conflict
    assert len(conflict.numbers) >= 2 and conflict.numbers[-1] == max(conflict.numbers)
    with pytest.raises(EngineError, match="withdraw the answer to one of the clashing questions"):
        live.send(Withdraw(question=1 if 1 not in conflict.numbers else 99))
    with pytest.raises(EngineError, match="no value question is on offer"):
        live.send(ValueAnswer(question=conflict.numbers[-1] + 1, choice="x"))
    events = live.send(Withdraw(question=conflict.numbers[0]))
    assert isinstance(events[0], Withdrawn) and live.engine.conflict is None
    assert live.engine.question is not None or any(isinstance(e, Elicited) for e in events)
    undone = live.send(Undo())  # the withdrawal is an act like any other: undo brings the clash back
    assert isinstance(undone[0], Undone) and live.engine.conflict == conflict
    live.send(Withdraw(question=conflict.numbers[0]))
    while live.engine.question is not None:
        live.send(human.answer(live.engine.question))
    while live.engine.conflict is not None:
        live.send(human.resolve(live.engine.conflict))
        while live.engine.question is not None:
            live.send(human.answer(live.engine.question))
    while live.engine.pending is not None:
        offer = live.engine.pending
        live.send(Agent().respond(offer) if offer.receiver == "agent" else human.respond(offer))
    live.send(human.decide(live.final()))
    live.close()
    report = live.report()
    asked = report["elicitation"]
    assert asked["conflicts"][0]["numbers"] == conflict.numbers
    gone = [q["number"] for q in asked["questions"] if q.get("withdrawn")]
    assert conflict.numbers[0] in gone and len(gone) == len(asked["conflicts"])  # one withdrawn per clash
    text = render(report)
    assert "Answers that cannot all hold: " in text and "(withdrawn)" in text
    assert build_report(read_events(t)) == report
    resumed = LiveSession(UNKNOWN_VALUES, model, Oracle(model, device="cpu"), resume=t)
    assert resumed.report() == report


def test_declining_ends_the_questions_and_says_so(tmp_path):
    model = load_model(UNKNOWN_VALUES)
    live = LiveSession(UNKNOWN_VALUES, model, Oracle(model, device="cpu"), elicitation=FAST)
    _to_the_questions(live)
    first = live.engine.question
    events = live.send(Decline())
    assert isinstance(events[0], Declined) and events[0].number == first.number
    [done] = [e for e in events if isinstance(e, Elicited)]
    assert done.stopped == "declined"
    while live.engine.pending is not None:
        live.send(Respond(fact=live.engine.pending.fact, accepted=True))
    other = next(a for a in live.engine.actions if a != done.decision)
    live.send(Decide(action=other))
    text = render(live.report())
    assert "Stopped: the human declined further questions; the answers so far point to " in text
    assert f"This differs from where the human's answers point ({done.decision}, " in text and "gave no reason" in text
    with pytest.raises(EngineError, match="no value question is on offer to decline"):
        live.engine.handle(Decline())


@pytest.mark.parametrize(
    ("stopped", "words"),
    [
        ("settled", "the decision is settled: 97% of what remains uncertain points to swerve"),
        ("limit", "the question limit was reached before the decision settled: the answers point to swerve, but only 97%"),
        ("exhausted", "no question of any kind could tell more about the decision; the answers point to swerve (97%"),
        ("declined", "the human declined further questions; the answers so far point to swerve (97%"),
    ],
)
def test_every_stop_says_why_and_how_sure(stopped, words):
    assert stopped_text({"stopped": stopped, "decision": "swerve", "agreement": 0.971}).startswith(words)


def test_signs_stated_in_the_file_are_never_asked_and_always_held(tmp_path):
    data = yaml.safe_load(UNKNOWN_VALUES.read_text())
    data["parties"]["human"]["value_signs"] = {"worse": ["harm=cat", "crash = crash"]}
    path = tmp_path / "signs.yaml"
    path.write_text(yaml.safe_dump(data))
    report, _ = session(path, elicitation=FAST)
    asked = report["elicitation"]
    signs = [q["question"] for q in asked["questions"] if q["kind"] == "sign"]
    assert signs == ["Is harm=squirrel better or worse than harm=none?"]
    assert asked["utilities"]["harm"]["cat"]["interval"][1] <= 0 and asked["utilities"]["crash"]["crash"]["interval"][1] <= 0


def test_a_reference_state_named_in_the_world_is_the_zero(tmp_path):
    data = yaml.safe_load(UNKNOWN_VALUES.read_text())
    data["world"]["reference"] = {"harm": "squirrel"}
    data["parties"]["human"]["responds"]["values"]["harm"] = {"none": 10, "squirrel": 0, "cat": -290}
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(data))
    report, _ = session(path, elicitation=FAST)
    asked = report["elicitation"]
    questions = [q["question"] for q in asked["questions"]]
    assert "Is harm=none better or worse than harm=squirrel?" in questions
    assert not any("better or worse than harm=none" in q for q in questions)
    utilities = asked["utilities"]["harm"]
    assert utilities["squirrel"] == {"mean": 0.0, "interval": [0.0, 0.0]}
    assert utilities["none"]["interval"][0] >= 0 and utilities["cat"]["interval"][1] <= 0
    assert report["decision"]["action"] == "swerve"
