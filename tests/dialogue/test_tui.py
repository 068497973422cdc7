"""The terminal UI driven by Pilot: the whole flow on the canonical example, the keyboard contract of
every window, live keys only, undo and edits as events, the palette, quitting, and snapshots."""

from __future__ import annotations

import io

import pytest
import yaml
from rich.console import Console
from textual.widgets import DataTable, RichLog, Static, TabbedContent
from textual.widgets._footer import FooterKey

from crux.dialogue.elicitation import Elicitation
from crux.dialogue.protocol import Answered, Asked, Decided, Elicited, Observed, Offered, Responded, Stated, Undone, ValuesChanged
from crux.dialogue.session import LiveSession
from crux.dialogue.tui.app import make_app
from crux.dialogue.tui.screens import (
    DecideScreen,
    FinalScreen,
    HelpScreen,
    MismatchScreen,
    NumberScreen,
    ObserveScreen,
    PositionScreen,
    QuestionScreen,
    QuitScreen,
    ShareScreen,
)
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL, EXAMPLES, to_a_conflict
from crux.values.elicit import preferred
from crux.worldmodel.model import load_model

UNKNOWN_VALUES = EXAMPLES / "squirrel_or_cat_unknown_values.yaml"
SIZES = [(80, 24), (120, 40)]


def live_session(path=CANONICAL, tmp_path=None, mode="full", questions: int = 12):
    model = load_model(path)
    transcript = tmp_path / "t.jsonl" if tmp_path is not None else None
    asking = Elicitation(particles=3000, max_questions=questions)
    return LiveSession(path, model, Oracle(model, device="cpu"), mode=mode, transcript=transcript, elicitation=asking)


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text (rich renderables rendered at 120 columns)."""
    found = app.screen.query(selector) or app.screen_stack[0].query(selector)  # the window on top, else the session
    content = found.only_one(Static).content
    if isinstance(content, str):
        return content
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


def log_text(app) -> str:
    return "\n".join(line.text for line in app.query_one("#log", RichLog).lines)


def footer_keys(app) -> dict[str, FooterKey]:
    """The keys the footer shows now, by key."""
    return {k.key: k for k in app.screen.query(FooterKey)}


def human_events(live, kind):
    return [e for e in live.events if isinstance(e, kind) and getattr(e, "by", "human") == "human"]


async def to_the_end_of_the_exchange(pilot, live) -> None:
    await pilot.press("2")  # swerve: what the human's own beliefs and values imply
    await pilot.pause()
    while live.engine.pending is not None:
        await pilot.press("a")
        await pilot.pause()
    assert live.engine.concluded


async def decide(pilot, number: str, confirm: bool = True) -> None:
    """D, then the action's number (and enter), each once the window before it is up."""
    await pilot.press("D")
    await pilot.pause()
    await pilot.press(number)
    await pilot.pause()
    if confirm:
        await pilot.press("enter")
        await pilot.pause()


# -- the flow -------------------------------------------------------------------------------


async def test_position_comes_first_and_a_mismatch_is_explained():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, PositionScreen)
        assert "appears once you have stated" in text_of(app, "#diagnosis")
        assert log_text(app) == ""  # the diagnosis stays hidden until the position is stated
        await pilot.press("1")  # brake, while beliefs and values on record imply swerve
        await pilot.pause()
        [stated] = [e for e in live.events if isinstance(e, Stated)]
        assert (stated.action, stated.implied, stated.matches) == ("brake", "swerve", False)
        assert isinstance(app.screen, MismatchScreen)
        await pilot.press("2")  # values
        await pilot.pause()
        assert app.query_one("#tabs", TabbedContent).active == "values"
        assert app.focused is app.query_one("#value-table")
        assert "Diagnosis: value" in text_of(app, "#diagnosis")  # after the agent took the camera fact
        assert "you prefer brake (the beliefs and values on record for you imply swerve)" in log_text(app)


async def test_a_whole_session_by_keyboard_with_a_discount_and_the_end_pinned(tmp_path):
    live = live_session(tmp_path=tmp_path)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert app.query_one("#tabs", TabbedContent).active == "dialogue"
        assert live.engine.graphs["agent"].holds("camera")  # the human's fact went to the agent, who took it
        assert live.engine.pending.fact == "radar" and "radar" in text_of(app, "#offer")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, NumberScreen) and app.focused is app.screen.query_one("#number")
        app.screen.query_one("#number").value = "0.6"
        await pilot.press("enter")
        await pilot.pause()
        [answer] = human_events(live, Responded)
        assert (answer.fact, answer.response, answer.reliability) == ("radar", "accepted", 0.6)
        assert live.engine.graphs["human"].state.likelihood["oncoming"].tolist() == pytest.approx([0.4, 0.6])
        assert "you accepted radar at reliability 0.6" in log_text(app)
        while live.engine.pending is not None:
            await pilot.press("a")
            await pilot.pause()
        assert "The exchange is over: " in log_text(app)
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
        await pilot.press("enter")  # nothing chosen yet: said in place
        await pilot.pause()
        assert "choose an action first" in str(app.screen.query_one("#decide-error").render())
        await pilot.press("3")
        await pilot.pause()
        assert "Your decision: continue (enter confirms)" in str(app.screen.query_one("#decide-choice").render())
        await pilot.press("tab")
        await pilot.press(*"mine")
        await pilot.press("enter")  # enter in the reasons field confirms
        await pilot.pause()
        [decided] = [e for e in live.events if isinstance(e, Decided)]
        assert (decided.action, decided.reasons) == ("continue", "mine")
        assert isinstance(app.screen, FinalScreen)
        pinned = text_of(app, "#final-pinned")
        assert "Decision (by the human): continue" in pinned and "Final diagnosis: " in pinned
        scroll = app.screen.query_one("#final-report")
        assert app.focused is scroll and scroll.max_scroll_y > 0  # the report is longer than the screen
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        assert app.screen.query_one("#final-pinned").region.y >= 0  # still pinned after scrolling
        report = (tmp_path / "t.report.txt").read_text()
        assert "Decision (by the human): continue. Reasons: mine" in report
        await pilot.press("q")
    assert (tmp_path / "t.jsonl").read_text().count("\n") == len(live.events)


async def test_the_footer_fits_80_columns_with_help_and_quit_in_every_state():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        for keys in ([], ["escape"], ["2"], ["d"], ["escape", "a"]):
            await pilot.press(*keys)
            await pilot.pause()
            if isinstance(app.screen, PositionScreen | NumberScreen):
                continue
            shown = footer_keys(app)
            assert {"question_mark", "q"} <= set(shown), keys
            assert all(0 <= k.region.right <= 80 and k.region.width > 0 for k in shown.values()), keys


async def test_only_live_keys_are_shown_and_work():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape")  # the position window, later
        await pilot.pause()
        assert set(footer_keys(app)) == {"p", "question_mark", "q", "ctrl+p"}
        await pilot.press("a")  # does nothing before the position
        await pilot.pause()
        assert not human_events(live, Responded)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PositionScreen)
        await pilot.press("2")
        await pilot.pause()
        assert {"a", "r", "d", "o", "e"} <= set(footer_keys(app)) and "D" not in footer_keys(app)
        assert "u" not in footer_keys(app)  # nothing of the person's to undo yet
        while live.engine.pending is not None:
            await pilot.press("a")
            await pilot.pause()
        shown = set(footer_keys(app))
        assert not shown & {"a", "r", "d", "s", "o", "e"} and {"D", "u"} <= shown
        await pilot.press("o")  # the exchange is over: no observation window that would throw input away
        await pilot.pause()
        assert not isinstance(app.screen, ObserveScreen)
        await decide(pilot, "2")
        await pilot.press("escape")  # back from the final screen to the session
        await pilot.pause()
        assert set(footer_keys(app)) == {"D", "question_mark", "q", "ctrl+p"}  # D now shows the summary again
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, FinalScreen)


async def test_focus_follows_the_tab_and_e_edits_the_highlighted_row():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert app.focused is app.query_one("#log")
        await pilot.press("3")
        await pilot.pause()
        assert app.focused is app.query_one("#beliefs-scroll")
        await pilot.press("1")
        await pilot.pause()
        assert app.focused is app.query_one("#situation-scroll")
        await pilot.press("e")  # not on the Values tab: it goes there and waits for a row
        await pilot.pause()
        assert not isinstance(app.screen, NumberScreen)
        table = app.query_one("#value-table", DataTable)
        assert app.query_one("#tabs", TabbedContent).active == "values" and app.focused is table
        await pilot.press("down", "down", "e")  # harm=cat
        await pilot.pause()
        assert isinstance(app.screen, NumberScreen) and "harm = cat" in str(app.screen.prompt)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("down", "enter")  # enter edits too: crash=safe
        await pilot.pause()
        assert isinstance(app.screen, NumberScreen) and "crash = safe" in str(app.screen.prompt)


async def test_an_edit_mid_exchange_is_an_event_the_engine_goes_on_and_undo_takes_it_back(tmp_path):
    live = live_session(tmp_path=tmp_path)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        offered = live.engine.pending
        await pilot.press("4", "down", "down", "e")
        await pilot.pause()
        app.screen.query_one("#number").value = "-290"
        await pilot.press("enter")
        await pilot.pause()
        [changed] = [e for e in live.events if isinstance(e, ValuesChanged)]
        assert changed.changed == [{"outcome": "harm", "state": "cat", "before": -300.0, "after": -290.0}]
        assert "you changed your values: harm=cat from -300 to -290" in log_text(app)
        again = live.engine.pending
        assert again is not None and again.turn == offered.turn  # the exchange goes on, no turn lost
        assert "u" in footer_keys(app)
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(live.events[-3], Undone) and live.engine.values["human"]["harm"]["cat"] == -300
        assert "you took back your value edit" in log_text(app)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("u")  # undo the rejection: the fact is offered again
        await pilot.pause()
        assert live.engine.pending.fact == offered.fact and not live.engine.graphs["human"].seen(offered.fact)
        assert "you took back your response to turn 2 (rejected radar)" in log_text(app)
    report = live.report()
    assert [h["type"] for h in report["history"]] == ["turn", "values", "undo", "turn", "undo"]
    assert report["history"][1]["undone"] and report["history"][3]["undone"]


async def test_observe_and_share_by_keyboard(tmp_path):
    data = yaml.safe_load(CANONICAL.read_text())
    data["parties"]["human"]["beliefs"]["knows"] = ["camera", "road_sensor"]
    data["parties"]["agent"]["beliefs"]["knows"] = ["radar", "fleet_logs"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    live = live_session(path)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ObserveScreen) and app.focused is app.screen.query_one("#seen")
        await pilot.press(*"road")
        await pilot.press("enter")  # no state: said in place, nothing sent
        await pilot.pause()
        assert "variable=state" in str(app.screen.query_one("#observe-error").render())
        app.screen.query_one("#seen").value = "road=damp"
        await pilot.press("enter")  # the engine's objection, in place, the input kept
        await pilot.pause()
        assert isinstance(app.screen, ObserveScreen)
        assert "unknown state of road 'damp'" in str(app.screen.query_one("#observe-error").render())
        assert app.screen.query_one("#seen").value == "road=damp"
        app.screen.query_one("#seen").value = "Road=Dry"
        await pilot.press("enter")
        await pilot.pause()
        [seen] = [e for e in live.events if isinstance(e, Observed)]
        assert (seen.variable, seen.state, seen.reliability) == ("road", "dry", 0.9)
        assert "you observed road=dry (my own observation, reliability 0.9)" in log_text(app)
        assert "s" in footer_keys(app)
        first = live.engine.shareable()[0]
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ShareScreen)
        await pilot.press("1")
        await pilot.pause()
        assert any(isinstance(e, Offered) and e.shared and e.fact == first for e in live.events)
        assert f"turn 2: you share {first}" in log_text(app)


# -- the keyboard contract in every window ------------------------------------------------------

WINDOWS = {
    "position": ([], PositionScreen),
    "mismatch": (["1"], MismatchScreen),
    "help": (["2", "question_mark"], HelpScreen),
    "discount": (["2", "d"], NumberScreen),
    "edit value": (["2", "4", "e"], NumberScreen),
    "observe": (["2", "o"], ObserveScreen),
    "quit": (["2", "q"], QuitScreen),
    "decide": (["2", "a", "a", "a", "D"], DecideScreen),
}


@pytest.mark.parametrize("name", list(WINDOWS))
@pytest.mark.parametrize("close", ["escape", "q"])
async def test_escape_and_q_close_every_window_and_send_nothing(name, close):
    keys, kind = WINDOWS[name]
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        assert isinstance(app.screen, kind)
        before = len(live.events)
        if isinstance(app.screen, NumberScreen | ObserveScreen):
            app.set_focus(None)  # q types into a text field; with none focused it closes the window
        if name == "quit" and close == "q":
            close = "2"  # in the quit window q leaves; 2 stays
        await pilot.press(close)
        await pilot.pause()
        assert not isinstance(app.screen, kind) and app.is_running
        assert len(live.events) == before


async def test_the_value_question_window_keeps_the_contract_too():
    live = live_session(UNKNOWN_VALUES, questions=3)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "a", "a", "a")
        await pilot.pause()
        assert isinstance(app.screen, QuestionScreen)
        await pilot.press("q")  # later
        await pilot.pause()
        assert not isinstance(app.screen, QuestionScreen) and "press v" in text_of(app, "#status")
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, QuestionScreen)


async def test_quit_before_the_decision_asks_and_says_how_to_resume(tmp_path):
    live = live_session(tmp_path=tmp_path)
    app = make_app(live, resume_command="crux session s.yaml --resume t.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        said = str(app.screen.saved)
        assert str(tmp_path / "t.jsonl") in said and "crux session s.yaml --resume t.jsonl" in said
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, QuitScreen)
        await pilot.press("q", "q")
        await pilot.pause()
    assert not app.is_running


async def test_the_palette_holds_the_session_commands():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_the_end_of_the_exchange(pilot, live)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"dec")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"undo")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(live.events[-3], Undone) and not live.engine.concluded


async def test_the_palette_offers_only_live_commands():
    from crux.dialogue.tui.commands import SessionCommands

    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        provider = SessionCommands(app.screen)
        names = [name for name, _, _ in provider._live()]
        assert "Accept the fact on offer" in names and "Decide" not in names and "Undo your last response" not in names
        assert {"Export the report beside the transcript", "Help: every key", "Values tab: your utilities and the agent's"} <= set(names)


# -- words -----------------------------------------------------------------------------------


async def test_situation_and_beliefs_name_every_state_in_full():
    live = live_session()
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "1")
        await pilot.pause()
        assert "squirrel 0." in text_of(app, "#situation-table")
        await pilot.press("3")
        await pilot.pause()
        assert "dry 0.14, wet 0.86" in text_of(app, "#differences")


async def test_predict_only_shows_no_agent_values_choice_or_agreement(tmp_path):
    data = yaml.safe_load(CANONICAL.read_text())
    del data["parties"]["agent"]["values"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    live = live_session(path, mode="predict-only")
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_the_end_of_the_exchange(pilot, live)
        situation = text_of(app, "#situation-table")
        assert "your EU" in situation and "agent EU" not in situation
        table = app.query_one("#value-table", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["outcome", "state", "your utility"]
        status = text_of(app, "#status")
        assert "beliefs +" not in status and "AGREE" not in status
        assert "YOUR CHOICE HOLDS" in status or "FACTS CHANGE YOUR CHOICE" in status
        assert "agent would choose" not in log_text(app)
        await decide(pilot, "2")
        assert "agree" not in text_of(app, "#final-pinned").lower().replace("disagree", "")


async def test_the_value_step_asks_in_a_modal_and_sends_the_answers(tmp_path):
    live = live_session(UNKNOWN_VALUES, tmp_path=tmp_path, questions=3)
    truth = dict(live.engine.scenario.parties.human.responds.values)
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "a", "a", "a")
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
        first = True
        while isinstance(app.screen, QuestionScreen):
            q = app.screen.question
            choice = preferred(q.kind, q.first, q.second, q.predicted, truth)
            await pilot.press("1" if choice == q.first else "2")
            await pilot.pause()
            if first:  # an answer can be taken back (u in the next question): the same question comes again
                first = False
                assert isinstance(app.screen, QuestionScreen) and "u undo" in app.screen.HINT
                await pilot.press("u")
                await pilot.pause()
                assert isinstance(app.screen, QuestionScreen) and app.screen.question.number == q.number
        asked = [e for e in live.events if isinstance(e, Asked)]
        answered = [e for e in live.events if isinstance(e, Answered)]
        assert [e.number for e in answered] == [1, 1, 2, 3] and [e.number for e in asked] == [1, 2, 1, 2, 3]
        assert any(isinstance(e, Elicited) for e in live.events) and live.engine.concluded
        assert "(90%: " in text_of(app, "#conflicts")
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, DecideScreen)
    live.close()  # as `crux session` does when the UI closes: the transcript is free to resume
    resumed = LiveSession(UNKNOWN_VALUES, load_model(UNKNOWN_VALUES), Oracle(live.engine.model, device="cpu"), resume=tmp_path / "t.jsonl")
    assert resumed.report() == live.report()
    resumed.close()


async def test_stating_one_unknown_value_during_the_exchange():
    live = live_session(UNKNOWN_VALUES)
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "4", "down", "down", "e")  # harm=cat
        await pilot.pause()
        assert app.screen.query_one("#number").value == "0"
        app.screen.query_one("#number").value = "-300"
        await pilot.press("enter")
        await pilot.pause()
        assert live.engine.values["human"] == {"harm": {"cat": -300.0}, "crash": "unknown"}
        assert live.engine.unknown == ["crash"]
        table = app.query_one("#value-table", DataTable)
        assert [str(table.get_row_at(i)[2]) for i in range(table.row_count)] == ["0", "0", "-300", "?", "?"]


async def test_a_scenario_with_continuous_outcomes_shows_their_means(tmp_path):
    path = CANONICAL.parent.parent / "tests" / "oracle" / "linear_gaussian.yaml"
    model = load_model(path)
    live = LiveSession(path, model, Oracle(model, device="cpu"))
    app = make_app(live)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")
        await pilot.pause()
        assert "mean" in text_of(app, "#situation-table") and "90%:" in text_of(app, "#situation-table")


# -- snapshots ---------------------------------------------------------------------------------

async def _to_the_exchange_end(pilot) -> None:
    await pilot.press("2")
    await pilot.pause()
    for _ in range(3):
        await pilot.press("a")
        await pilot.pause()


async def _at_decide(pilot) -> None:
    await _to_the_exchange_end(pilot)
    await decide(pilot, "2", confirm=False)


async def _at_final(pilot) -> None:
    await _to_the_exchange_end(pilot)
    await decide(pilot, "2")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("position", []),
        ("offer", ["2"]),
        ("mismatch", ["1"]),
        ("situation", ["2", "1"]),
        ("beliefs", ["2", "3"]),
        ("values", ["2", "4"]),
    ],
)
def test_snapshots(snap_compare, name, keys, size):
    assert snap_compare(make_app(live_session()), terminal_size=size, press=keys)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["decide", "final"])
def test_snapshots_of_the_end(snap_compare, name, size):
    run = {"decide": _at_decide, "final": _at_final}[name]
    assert snap_compare(make_app(live_session()), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_value_question_snapshot(snap_compare, size):
    assert snap_compare(make_app(live_session(UNKNOWN_VALUES)), terminal_size=size, run_before=_to_the_exchange_end)


async def test_answers_that_cannot_all_hold_open_a_window_and_a_number_withdraws_one():
    from crux.dialogue.protocol import State, Withdrawn
    from crux.dialogue.tui.screens import ConflictScreen

    def make_live():
        live = live_session(UNKNOWN_VALUES)
        live.send(State(action="swerve"))
        return live

    live, conflict = to_a_conflict(make_live)
    app = make_app(live)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConflictScreen)
        shown = text_of(app, "#conflict-answers")
        assert all(a["question"][:30] in shown.replace("\n", " ") for a in conflict.answers)
        await pilot.press("escape")  # later: v brings it back
        await pilot.pause()
        assert not isinstance(app.screen, ConflictScreen) and "press v" in text_of(app, "#status")
        await pilot.press("v")
        await pilot.pause()
        await pilot.press("1")
        await pilot.pause()
        [withdrawn] = [e for e in live.events if isinstance(e, Withdrawn)]
        assert withdrawn.number == conflict.numbers[0]
