"""The terminal UI driven by Pilot: the whole flow on the canonical example, and snapshots."""

from __future__ import annotations

import io

import pytest
import yaml
from rich.console import Console
from textual.widgets import DataTable, Static, TabbedContent

from dialogue.elicitation import Elicitation
from dialogue.protocol import Answered, Asked, Decided, Elicited, Responded, Stated, ValuesChanged
from dialogue.session import LiveSession
from dialogue.tui.app import make_app
from dialogue.tui.screens import DecideScreen, MismatchScreen, PositionScreen, QuestionScreen, SummaryScreen
from oracle.oracle import Oracle
from tests.conftest import CANONICAL, EXAMPLES
from values.elicit import preferred
from worldmodel.model import load_model


def live_session(path=CANONICAL, tmp_path=None, mode="full", questions: int = 12):
    model = load_model(path)
    transcript = tmp_path / "t.jsonl" if tmp_path is not None else None
    asking = Elicitation(particles=3000, max_questions=questions)
    return LiveSession(path, model, Oracle(model, device="cpu"), mode=mode, transcript=transcript, elicitation=asking)


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text (rich renderables rendered at 120 columns)."""
    content = app.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


async def test_position_comes_first_and_a_mismatch_is_explained():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, PositionScreen)
        assert "appears once you have stated" in text_of(app, "#diagnosis")
        await pilot.press("1")  # brake, while beliefs and values on record imply swerve
        await pilot.pause()
        [stated] = [e for e in live.events if isinstance(e, Stated)]
        assert (stated.action, stated.implied, stated.matches) == ("brake", "swerve", False)
        assert isinstance(app.screen, MismatchScreen)
        await pilot.click("#values")
        await pilot.pause()
        assert app.query_one("#tabs", TabbedContent).active == "values"
        assert "Diagnosis: value" in text_of(app, "#diagnosis")  # after the agent took the camera fact


async def test_accept_reject_edit_a_value_and_the_decision_gate(tmp_path):
    live = live_session(tmp_path=tmp_path)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")  # swerve: what the human's beliefs and values imply
        await pilot.pause()
        assert app.query_one("#tabs", TabbedContent).active == "dialogue"
        assert live.engine.graphs["agent"].holds("camera")  # the human's fact went to the agent, who took it
        assert live.engine.pending.fact == "radar" and "radar" in text_of(app, "#offer")
        await pilot.press("D")  # not yet: the decision opens after the final diagnosis
        await pilot.pause()
        assert not isinstance(app.screen, DecideScreen) and not live.engine.decided
        # edit a value first (values are fixed once the exchange concludes): harm=cat is the third row
        await pilot.press("4")
        table = app.query_one("#value-table", DataTable)
        table.move_cursor(row=2)
        await pilot.press("e")
        await pilot.pause()
        field = app.screen.query_one("#number")
        field.value = "-290"
        await pilot.press("enter")
        await pilot.pause()
        [changed] = [e for e in live.events if isinstance(e, ValuesChanged)]
        assert changed.values["harm"]["cat"] == -290.0
        assert live.engine.values["human"]["harm"]["cat"] == -290.0
        assert live.engine.pending is not None and live.engine.pending.receiver == "human"
        offered = live.engine.pending.fact
        await pilot.press("r")
        await pilot.pause()
        rejected = [e for e in live.events if isinstance(e, Responded) and e.by == "human"]
        assert [(e.fact, e.response) for e in rejected] == [(offered, "rejected")]
        while live.engine.pending is not None:
            await pilot.press("a")
            await pilot.pause()
        assert live.engine.concluded
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
        app.screen.query_one("#action").value = "brake"
        app.screen.query_one("#reasons").value = "test reasons"
        await pilot.click("#ok")
        await pilot.pause()
        [decided] = [e for e in live.events if isinstance(e, Decided)]
        assert (decided.action, decided.reasons) == ("brake", "test reasons")
        assert isinstance(app.screen, SummaryScreen)
        await pilot.press("q")
    assert (tmp_path / "t.jsonl").read_text().count("\n") == len(live.events)


async def test_discount_records_the_trusted_reliability():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        app.screen.query_one("#number").value = "0.6"
        await pilot.press("enter")
        await pilot.pause()
        [answer] = [e for e in live.events if isinstance(e, Responded) and e.by == "human"]
        assert (answer.fact, answer.response, answer.reliability) == ("radar", "accepted", 0.6)
        assert live.engine.graphs["human"].state.likelihood["oncoming"].tolist() == pytest.approx([0.4, 0.6])


async def test_bad_numbers_are_refused_in_place():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "d")
        await pilot.pause()
        app.screen.query_one("#number").value = "1.7"
        await pilot.press("enter")
        await pilot.pause()
        assert "from 0 to 1" in str(app.screen.query_one("#number-error").render())
        assert not any(isinstance(e, Responded) and e.by == "human" for e in live.events)


async def test_predict_only_shows_no_agent_values_or_choice(tmp_path):
    data = yaml.safe_load(CANONICAL.read_text())
    del data["parties"]["agent"]["values"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    live = live_session(path, mode="predict-only")
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        situation = text_of(app, "#situation-table")
        assert "your EU" in situation and "agent EU" not in situation
        table = app.query_one("#value-table", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["outcome", "state", "your utility"]
        assert "beliefs +" not in text_of(app, "#status")
        await pilot.press("e")
        await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pytest.mark.parametrize(
    ("name", "keys"),
    [("position", []), ("dialogue", ["2"]), ("situation", ["2", "1"]), ("beliefs", ["2", "3"]), ("values", ["2", "4"])],
)
def test_snapshots(snap_compare, name, keys, size):
    assert snap_compare(make_app(live_session()), terminal_size=size, press=keys)


UNKNOWN_VALUES = EXAMPLES / "squirrel_or_cat_unknown_values.yaml"
TO_THE_FIRST_QUESTION = ["2", "a", "a", "a"]
"""State a position, then accept the three facts offered to the human: the value questions begin."""


async def test_the_value_step_asks_in_a_modal_and_sends_the_answers(tmp_path):
    live = live_session(UNKNOWN_VALUES, tmp_path=tmp_path, questions=3)
    truth = dict(live.engine.scenario.parties.human.responds.values)
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*TO_THE_FIRST_QUESTION)
        await pilot.pause()
        [stated] = [e for e in live.events if isinstance(e, Stated)]
        assert stated.implied is None and stated.matches is None  # no mismatch screen: the values are unknown
        assert isinstance(app.screen, QuestionScreen)
        assert "Your values are not known yet" in text_of(app, "#diagnosis")
        table = app.query_one("#value-table", DataTable)
        assert [str(table.get_row_at(i)[2]) for i in range(table.row_count)] == ["?"] * 5
        await pilot.press("escape")  # later: the status says how to come back
        await pilot.pause()
        assert not isinstance(app.screen, QuestionScreen) and "press v" in text_of(app, "#status")
        await pilot.press("v")
        await pilot.pause()
        while isinstance(app.screen, QuestionScreen):
            q = app.screen.question
            choice = preferred(q.kind, q.first, q.second, q.predicted, truth)
            await pilot.press("1" if choice == q.first else "2")
            await pilot.pause()
        asked = [e for e in live.events if isinstance(e, Asked)]
        answered = [e for e in live.events if isinstance(e, Answered)]
        assert [e.number for e in answered] == [e.number for e in asked] == [1, 2, 3]
        assert any(isinstance(e, Elicited) for e in live.events) and live.engine.concluded
        assert "(90%: " in text_of(app, "#conflicts")
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
    resumed = LiveSession(UNKNOWN_VALUES, load_model(UNKNOWN_VALUES), Oracle(live.engine.model, device="cpu"), resume=tmp_path / "t.jsonl")
    assert resumed.report() == live.report()


async def test_stating_one_unknown_value_during_the_exchange():
    live = live_session(UNKNOWN_VALUES)
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "4")
        app.query_one("#value-table", DataTable).move_cursor(row=2)  # harm=cat
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one("#number").value == "0"
        app.screen.query_one("#number").value = "-300"
        await pilot.press("enter")
        await pilot.pause()
        assert live.engine.values["human"] == {"harm": {"cat": -300.0}, "crash": "unknown"}
        assert live.engine.unknown == ["crash"]
        table = app.query_one("#value-table", DataTable)
        assert [str(table.get_row_at(i)[2]) for i in range(table.row_count)] == ["0", "0", "-300", "?", "?"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_value_question_snapshot(snap_compare, size):
    assert snap_compare(make_app(live_session(UNKNOWN_VALUES)), terminal_size=size, press=TO_THE_FIRST_QUESTION)


async def test_a_scenario_with_continuous_outcomes_shows_their_means(tmp_path):
    path = CANONICAL.parent.parent / "tests" / "oracle" / "linear_gaussian.yaml"
    model = load_model(path)
    live = LiveSession(path, model, Oracle(model, device="cpu"))
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")
        await pilot.pause()
        assert "mean" in text_of(app, "#situation-table") and "90%:" in text_of(app, "#situation-table")
