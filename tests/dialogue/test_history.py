"""Edits are events, never rewrites: value edits, discounts, observations and undos mid-exchange.

The engine re-diagnoses after each act of the human and applies the stop rule afresh; the report
shows every turn as it was at that turn, and an undo is a new event (the transcript stays
append-only) from which replay and resume give the same report.
"""

from __future__ import annotations

import pytest

from crux.dialogue.elicitation import Elicitation
from crux.dialogue.engine import EngineError
from crux.dialogue.parties import Agent, ScriptedHuman
from crux.dialogue.protocol import (
    Asked,
    Concluded,
    Diagnosed,
    Offered,
    Respond,
    Responded,
    SetValues,
    Undo,
    Undone,
    ValueAnswer,
    ValuesChanged,
)
from crux.dialogue.report import build_report, render
from crux.dialogue.session import LiveSession
from crux.dialogue.transcript import read_events
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL, EXAMPLES
from crux.worldmodel.model import load_model

UNKNOWN_VALUES = EXAMPLES / "squirrel_or_cat_unknown_values.yaml"


def live(tmp_path, path=CANONICAL, **kw) -> LiveSession:
    model = load_model(path)
    return LiveSession(path, model, Oracle(model, device="cpu"), transcript=tmp_path / "t.jsonl", **kw)


def agent_turns(session: LiveSession) -> None:
    """Let the agent answer whatever is on offer to it."""
    while session.engine.pending is not None and session.engine.pending.receiver == "agent":
        session.send(Agent().respond(session.engine.pending))


def finish(session: LiveSession) -> dict:
    """Play the scripted human to the decision; the report."""
    human = ScriptedHuman(session.engine.scenario, session.engine.model.network)
    engine = session.engine
    while engine.pending is not None or engine.question is not None:
        if engine.question is not None:
            session.send(human.answer(engine.question))
        elif engine.pending.receiver == "agent":
            agent_turns(session)
        else:
            session.send(human.respond(engine.pending))
    session.send(human.decide(session.final()))
    session.close()
    return session.report()


def same_on_replay_and_resume(session: LiveSession, tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    assert build_report(read_events(path)) == session.report()
    model = load_model(CANONICAL)
    resumed = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), resume=path)
    assert resumed.report() == session.report()
    resumed.close()


def test_a_value_edit_mid_exchange_is_an_event_and_turn_one_stays_as_it_was(tmp_path):
    s = live(tmp_path)
    agent_turns(s)  # turn 1: the human's camera fact goes to the agent
    turn_one = [e for e in s.events if isinstance(e, Diagnosed) and e.stage == "turn"][-1].choices
    offer = s.engine.pending
    assert (offer.turn, offer.fact, offer.receiver) == (2, "radar", "human")
    events = s.send(SetValues(party="human", values={"harm": {"squirrel": -10, "cat": -290}, "crash": {"crash": -250}}))
    changed = events[0]
    assert isinstance(changed, ValuesChanged)
    assert changed.changed == [{"outcome": "harm", "state": "cat", "before": -300.0, "after": -290.0}]
    assert isinstance(events[1], Diagnosed) and events[1].stage == "turn"
    # The stop rule afresh: some fact still changes a choice, so the exchange goes on; the offer
    # withdrawn unanswered gives its turn number to the next one.
    assert isinstance(events[-1], Offered) and events[-1].turn == 2
    report = finish(s)
    assert report["turns"][0]["choices"] == turn_one
    [values] = [h for h in report["history"] if h["type"] == "values"]
    assert values["choices"] == events[1].choices
    assert "the human changed their values: harm=cat from -300 to -290" in render(report)
    numbers = [t["turn"] for t in report["turns"]]
    assert numbers == list(range(1, len(numbers) + 1))  # no gaps, no repeats
    same_on_replay_and_resume(s, tmp_path)


def test_an_edit_after_which_no_fact_matters_ends_the_exchange_saying_why_and_undo_reopens_it(tmp_path):
    s = live(tmp_path)
    agent_turns(s)
    turn_one = s.report()["turns"][0]["choices"]
    events = s.send(SetValues(party="human", values={"harm": {"squirrel": -10, "cat": -50}, "crash": {"crash": -400}}))
    assert [type(e) for e in events] == [ValuesChanged, Diagnosed, Diagnosed, Concluded]
    assert events[0].changed == [
        {"outcome": "harm", "state": "cat", "before": -300.0, "after": -50.0},
        {"outcome": "crash", "state": "crash", "before": -250.0, "after": -400.0},
    ]
    assert events[-1].why.startswith("no unshared fact (fleet_logs, radar, road_sensor), alone or pooled")
    assert s.report()["turns"][0]["choices"] == turn_one
    assert "The exchange ended: no unshared fact" in render(s.report())
    events = s.send(Undo())
    assert isinstance(events[0], Undone) and events[0].undid == "values"
    assert isinstance(events[-1], Offered) and (events[-1].fact, events[-1].turn) == ("radar", 2)
    assert s.engine.values["human"]["harm"]["cat"] == -300 and not s.engine.concluded
    report = finish(s)
    [edit] = [h for h in report["history"] if h["type"] == "values"]
    assert edit["undone"] and report["turns"][0]["choices"] == turn_one
    same_on_replay_and_resume(s, tmp_path)


def test_undo_takes_back_a_response_as_a_new_event(tmp_path):
    s = live(tmp_path)
    agent_turns(s)
    before = s.engine.diagnosis
    s.send(Respond(fact="radar", accepted=False))
    assert s.engine.graphs["human"].seen("radar")
    assert s.engine.undoable == "your response to turn 2 (rejected radar)"
    events = s.send(Undo())
    assert isinstance(events[0], Undone) and events[0].undid == "response"
    assert isinstance(events[1], Diagnosed) and events[1].choices == before.choices
    assert isinstance(events[-1], Offered) and events[-1].fact == "radar" and events[-1].turn == 3
    assert not s.engine.graphs["human"].seen("radar")
    report = finish(s)
    first, again = [t for t in report["turns"] if t["fact"] == "radar"]
    assert first["undone"] and first["response"] == "rejected" and first["turn"] == 2
    assert "undone" not in again and again["response"] == "accepted" and again["turn"] == 3
    assert any(h["type"] == "undo" for h in report["history"])
    assert "(later undone)" in render(report) and "took back their response to turn 2" in render(report)
    same_on_replay_and_resume(s, tmp_path)


def test_undo_after_the_conclusion_reopens_the_exchange(tmp_path):
    s = live(tmp_path)
    human = ScriptedHuman(s.engine.scenario, s.engine.model.network)
    while s.engine.pending is not None:
        agent_turns(s)
        if s.engine.pending is not None:
            s.send(human.respond(s.engine.pending))
    assert s.engine.concluded and s.report()["final"] is not None
    last = [e for e in s.events if isinstance(e, Responded) and e.by == "human"][-1]
    events = s.send(Undo())
    assert not s.engine.concluded and s.report()["final"] is None
    assert isinstance(events[-1], Offered) and events[-1].fact == last.fact and events[-1].turn == last.turn + 1
    report = finish(s)
    assert report["final"] is not None and report["decision"] is not None
    same_on_replay_and_resume(s, tmp_path)


def test_undo_is_refused_with_nothing_to_undo_and_after_the_decision(tmp_path):
    s = live(tmp_path)
    with pytest.raises(EngineError, match="nothing of yours to undo"):
        s.send(Undo())
    agent_turns(s)  # the agent's responses are not the human's to undo
    with pytest.raises(EngineError, match="nothing of yours to undo"):
        s.send(Undo())
    finish(s)
    with pytest.raises(EngineError, match="decision has been taken"):
        s.engine.handle(Undo())


def test_undo_of_a_value_answer_asks_the_question_again(tmp_path):
    s = live(tmp_path, UNKNOWN_VALUES, elicitation=Elicitation(particles=2000, max_questions=3))
    human = ScriptedHuman(s.engine.scenario, s.engine.model.network)
    while s.engine.question is None:
        agent_turns(s)
        s.send(human.respond(s.engine.pending))
    first = s.engine.question
    other = first.second if human.answer(first).choice == first.first else first.first
    s.send(ValueAnswer(question=first.number, choice=other))
    events = s.send(Undo())
    assert isinstance(events[0], Undone) and events[0].undid == "answer"
    again = events[-1]
    assert isinstance(again, Asked) and (again.number, again.text) == (first.number, first.text)
    report = finish(s)
    [q1] = [q for q in report["elicitation"]["questions"] if q["number"] == 1]
    assert q1["answer"] == human.answer(first).choice  # the answer that stands, not the one taken back
    model = load_model(UNKNOWN_VALUES)
    resumed = LiveSession(UNKNOWN_VALUES, model, Oracle(model, device="cpu"), resume=tmp_path / "t.jsonl")
    assert resumed.report() == report


def test_a_discount_is_reported_with_the_reliability_the_person_gave(tmp_path):
    s = live(tmp_path)
    agent_turns(s)
    s.send(Respond(fact="radar", accepted=True, reliability=0.6))
    report = finish(s)
    [radar] = [t for t in report["turns"] if t["fact"] == "radar"]
    assert (radar["reliability"], radar["stated_reliability"]) == (0.6, 0.95)
    assert "radar to the human (" in render(report) and "accepted at reliability 0.6 (its source gives 0.95)" in render(report)


def test_the_trade_off_sentence_only_where_the_choices_differ(tmp_path):
    s = live(tmp_path)
    agent_turns(s)
    s.send(SetValues(party="human", values={"harm": {"squirrel": -10, "cat": -50}, "crash": {"crash": -400}}))
    report = finish(s)
    assert report["final"]["choices"]["agent"] == report["final"]["choices"]["human"]
    assert report["final"]["tradeoff"] is None and "In words" not in render(report)
    assert "They agree." in render(report)


def test_the_report_names_states_and_never_shows_python_reprs(tmp_path):
    text = render(finish(live(tmp_path)))
    assert "agent dry 0.14 / wet 0.86, human dry 0.50 / wet 0.50" in text
    assert "{" not in text and "[" not in text  # no dict or list reprs
    assert "belief share is below 0" in text
