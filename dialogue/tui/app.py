"""The terminal UI: a belief-reconciliation session with the person at the keyboard as the human.

A shell over :class:`dialogue.session.LiveSession` and :class:`dialogue.view.SessionView`:
widgets show views and send engine messages; no decision logic lives here.
Build it with :func:`make_app`, so tests can drive it with ``App.run_test()``.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Header, RichLog, Static, TabbedContent, TabPane

from dialogue.parties import Agent
from dialogue.protocol import (
    Answer,
    Answered,
    Asked,
    Concluded,
    Decide,
    Decided,
    Elicited,
    Observe,
    Offered,
    Respond,
    Responded,
    SetValues,
    Share,
    State,
    Stated,
)
from dialogue.report import render
from dialogue.session import LiveSession
from dialogue.tui.render import distribution, share_bar
from dialogue.tui.screens import (
    DecideScreen,
    HelpScreen,
    MismatchScreen,
    NumberScreen,
    ObserveScreen,
    PositionScreen,
    QuestionScreen,
    ShareScreen,
    SummaryScreen,
)
from dialogue.view import SessionView
from worldmodel.errors import CruxError


class CruxApp(App):
    """One session; the person is the human party."""

    CSS_PATH = "app.tcss"
    TITLE = "Crux"
    BINDINGS = [
        Binding("a", "respond(True)", "accept"),
        Binding("r", "respond(False)", "reject"),
        Binding("d", "discount", "discount"),
        Binding("s", "share", "share"),
        Binding("o", "observe", "observe"),
        Binding("e", "edit_value", "edit value"),
        Binding("v", "answer_values", "value question", show=False),
        Binding("D", "decide", "decide"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("1", "tab('situation')", "situation", show=False),
        Binding("2", "tab('dialogue')", "dialogue", show=False),
        Binding("3", "tab('beliefs')", "beliefs", show=False),
        Binding("4", "tab('values')", "values", show=False),
    ]

    revision = reactive(0)
    """Bumped after every message to the engine; watchers redraw from the views."""

    def __init__(self, live: LiveSession):
        super().__init__()
        self.live = live
        self.view = SessionView(live)
        self.agent = Agent()

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        with TabbedContent(id="tabs"):
            with TabPane("1 Situation", id="situation"):
                with VerticalScroll():
                    yield Static(id="situation-table")
            with TabPane("2 Dialogue", id="dialogue"):
                yield Static(id="offer")
                yield RichLog(id="log", wrap=True, markup=True)
            with TabPane("3 Beliefs", id="beliefs"):
                with VerticalScroll():
                    yield Static(id="diagnosis")
                    yield DataTable(id="differences", cursor_type="row")
            with TabPane("4 Values", id="values"):
                with VerticalScroll():
                    yield DataTable(id="value-table", cursor_type="row")
                    yield Static(id="conflicts")
        yield Footer()

    def on_mount(self) -> None:
        scenario = self.live.engine.scenario
        self.title = f"Crux — {scenario.name}"
        self.sub_title = "predict-only" if self.view.predict_only else "full session"
        log = self.query_one("#log", RichLog)
        for event in self.live.events:
            self._log(event, log)
        self.revision += 1
        if self.view.stated() is None:
            self.push_screen(PositionScreen(self.view.actions, " ".join(scenario.description.split())), self._stated)
        elif self.live.engine.decided:
            self._summary()
        else:
            self.action_answer_values()

    # -- redraw ------------------------------------------------------------------------

    def watch_revision(self) -> None:
        if not self.is_mounted:
            return
        self._draw_status()
        self._draw_situation()
        self._draw_offer()
        self._draw_beliefs()
        self._draw_values()

    def _draw_status(self) -> None:
        engine = self.live.engine
        status = self.query_one("#status", Static)
        if self.view.stated() is None:
            status.update("State your position first.")
            return
        stage = "decide now: press D" if engine.concluded and not engine.decided else (
            "decided" if engine.decided else f"turn {engine.turn}: exchanging facts"
        )
        if engine.question is not None:
            stage = f"value question {engine.question.number}: press v to answer"
        d = self.view.diagnosis
        shares = "" if d.belief_share is None or self.view.predict_only else (
            f"  beliefs {d.belief_share:+.2f} · values {d.value_share:+.2f}"
        )
        status.update(Text.assemble((f" {d.kind.upper()} ", "reverse bold"), shares, f"  · {stage}"))

    def _draw_situation(self) -> None:
        table = Table(expand=True, show_lines=True, pad_edge=False)
        table.add_column("action", no_wrap=True)
        table.add_column("agent's predictions")
        table.add_column("your predictions")
        for row in self.view.situation():
            name = Text(row.action, style="bold")
            if row.agent_utility is not None:
                name.append(f"\nagent EU {row.agent_utility:.3f}")
            if row.human_utility is not None:
                name.append(f"\nyour EU {row.human_utility:.3f}")
            agent = Text("\n").join(Text.assemble((o, "underline"), "\n", distribution(dist)) for o, dist in row.agent.items())
            human = Text("\n").join(Text.assemble((o, "underline"), "\n", distribution(dist)) for o, dist in row.human.items())
            table.add_row(name, agent, human)
        self.query_one("#situation-table", Static).update(table)

    def _draw_offer(self) -> None:
        engine = self.live.engine
        offer = engine.pending
        widget = self.query_one("#offer", Static)
        if engine.question is not None:
            widget.update(f"[b]Value question {engine.question.number}[/b]: {engine.question.text}\n[b]v[/b] answer")
            return
        if offer is None:
            widget.update(
                "No fact is on offer: the exchange has concluded. Press D to decide."
                if engine.concluded and not engine.decided
                else "The session is over." if engine.decided else ""
            )
            return
        reliability = f", reliability {offer.reliability:g}" if offer.reliability is not None else ""
        keys = "[b]a[/b] accept · [b]r[/b] reject · [b]d[/b] discount · [b]s[/b] share · [b]o[/b] observe"
        head = f"[b]The agent offers[/b] {offer.fact} ({offer.source}{reliability})"
        widget.update(f"{head}\n“{offer.text}”\n[i]{offer.why}[/i]\n{keys}")

    def _draw_beliefs(self) -> None:
        d = self.view.diagnosis
        diagnosis = self.query_one("#diagnosis", Static)
        if self.view.stated() is None:
            diagnosis.update("The diagnosis appears once you have stated your position.")
        else:
            text = Text.assemble(("Diagnosis: ", "bold"), d.kind, "\n")
            if not self.view.predict_only:
                text.append_text(share_bar(d.belief_share, d.value_share))
                text.append("\n")
            text.append(self.view.sentence())
            diagnosis.update(text)
        table = self.query_one("#differences", DataTable)
        table.clear(columns=True)
        table.add_columns("belief", "agent", "you", "agent's facts", "your facts")
        for diff, behind_agent, behind_human in self.view.differences():
            name = diff.variable if diff.row is None else f"{diff.variable} | {', '.join(diff.row.values())}"
            table.add_row(
                name,
                " ".join(f"{x:.2f}" for x in diff.a),
                " ".join(f"{x:.2f}" for x in diff.b),
                ", ".join(behind_agent) or "—",
                ", ".join(behind_human) or "—",
            )

    def _draw_values(self) -> None:
        table = self.query_one("#value-table", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        columns = ["outcome", "state", "your utility"] + ([] if self.view.predict_only else ["agent's"])
        table.add_columns(*columns)
        for outcome, state, mine, theirs in self.view.human_values():
            cells = [outcome, state, "?" if mine is None else f"{mine:g}"] + ([] if self.view.predict_only else [f"{theirs:g}"])
            table.add_row(*cells, key=f"{outcome}\x1f{state}")
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        conflicts, words = self.view.conflicts()
        lines = [
            f"{c.outcome}={c.state}: agent {c.agent:+.3f}, you {c.human:+.3f}"
            + (f" (90%: {c.human_interval[0]:+.3f} to {c.human_interval[1]:+.3f})" if c.human_interval else "")
            for c in conflicts[:4]
        ]
        if words:
            lines.append(f"In words: {words}.")
        self.query_one("#conflicts", Static).update(
            "[b]Value conflicts[/b] (utility / range)\n" + "\n".join(lines) if lines else "Press e to edit the selected value."
        )

    # -- engine messages ---------------------------------------------------------------

    def _send(self, message) -> bool:
        try:
            events = self.live.send(message)
            while self.live.engine.pending is not None and self.live.engine.pending.receiver == "agent":
                events += self.live.send(self.agent.respond(self.live.engine.pending))
        except CruxError as err:
            self.notify(str(err), severity="error", timeout=8)
            return False
        log = self.query_one("#log", RichLog)
        for event in events:
            self._log(event, log)
        self.revision += 1
        if any(isinstance(e, Concluded) for e in events):
            self.notify("The exchange has concluded: the final diagnosis is in. Press D to decide.", timeout=8)
        if any(isinstance(e, Decided) for e in events):
            self._summary()
        if any(isinstance(e, Asked) for e in events):
            self.action_answer_values()
        return True

    def _log(self, event, log: RichLog) -> None:
        if isinstance(event, Offered):
            log.write(f"turn {event.turn}: the {event.sender} offers [b]{event.fact}[/b] — {event.why}")
        elif isinstance(event, Responded):
            log.write(f"   the {event.by} {event.response} {event.fact}")
        elif isinstance(event, Concluded):
            log.write("[b]final diagnosis[/b] — " + self.view.sentence() if self.live.engine.diagnosis else "final")
        elif isinstance(event, Decided):
            log.write(f"[b]decision[/b]: {event.action}")
        elif isinstance(event, Asked):
            log.write(f"value question {event.number}: {event.text}")
        elif isinstance(event, Answered):
            log.write(f"   you answered {event.answer}")
        elif isinstance(event, Elicited):
            log.write(f"[b]your values[/b], from {event.questions} answers, point to {event.decision}")

    def _stated(self, action: str | None) -> None:
        if action is None:
            return
        before = len(self.live.events)
        if not self._send(State(action=action)):
            return
        stated = next(e for e in self.live.events[before:] if isinstance(e, Stated))
        if stated.matches is False and stated.implied is not None:
            self.push_screen(MismatchScreen(stated.action, stated.implied), self._after_mismatch)
        else:
            self.action_tab("dialogue")
            self.action_answer_values()

    def _after_mismatch(self, choice: str | None) -> None:
        self.action_tab(choice if choice in ("beliefs", "values") else "dialogue")

    def _summary(self) -> None:
        self.push_screen(SummaryScreen(render(self.live.report())))

    # -- actions -----------------------------------------------------------------------

    def _needs_position(self) -> bool:
        if self.view.stated() is None:
            self.push_screen(PositionScreen(self.view.actions, ""), self._stated)
            return True
        return False

    def action_respond(self, accepted: bool) -> None:
        offer = self.live.engine.pending
        if self._needs_position():
            return
        if offer is None:
            self.notify("Nothing is on offer.", severity="warning")
            return
        self._send(Respond(fact=offer.fact, accepted=accepted))

    def action_discount(self) -> None:
        offer = self.live.engine.pending
        if self._needs_position():
            return
        if offer is None or offer.receiver != "human":
            self.notify("No fact is on offer to you.", severity="warning")
            return
        start = offer.reliability if offer.reliability is not None else 1.0

        def done(value: float | None) -> None:
            if value is not None:
                self._send(Respond(fact=offer.fact, accepted=True, reliability=value))

        self.push_screen(NumberScreen(f"How far do you trust {offer.fact}? (reliability, 0 to 1)", start, 0.0, 1.0), done)

    def action_share(self) -> None:
        if self._needs_position():
            return
        facts = [(f, self.live.engine.scenario.facts[f].text) for f in self.live.engine.shareable()]
        if not facts:
            self.notify("You hold no fact the agent lacks. Press o to state a new observation.", severity="warning")
            return
        self.push_screen(ShareScreen(facts), lambda fact: fact and self._send(Share(fact=fact)))

    def action_observe(self) -> None:
        if self._needs_position():
            return
        net = self.live.engine.model.network
        states = {v: net.states[v] for v in net.order if v != net.decision}
        self.push_screen(ObserveScreen(states), lambda form: form and self._send(Observe(**form)))

    def action_edit_value(self) -> None:
        if self.view.predict_only is False and self.live.engine.concluded:
            self.notify("The exchange has concluded; values are fixed now.", severity="warning")
            return
        self.action_tab("values")
        table = self.query_one("#value-table", DataTable)
        if not table.row_count:
            return
        outcome, state, mine, _ = self.view.human_values()[table.cursor_row]

        def done(value: float | None) -> None:
            if value is not None:
                self._send(SetValues(party="human", values=self.view.human_values_with(outcome, state, value)))

        self.push_screen(NumberScreen(f"Your utility for {outcome} = {state}:", 0.0 if mine is None else mine), done)

    def action_answer_values(self) -> None:
        """Show the value question waiting for an answer (if any, and not shown already)."""
        question = self.view.question()
        if question is None or self.view.stated() is None or isinstance(self.screen, QuestionScreen):
            return

        def done(choice: str | None) -> None:
            if choice is not None:
                self._send(Answer(question=question.number, choice=choice))

        self.push_screen(QuestionScreen(question), done)

    def action_decide(self) -> None:
        engine = self.live.engine
        if engine.decided:
            self._summary()
            return
        if not engine.concluded:
            self.notify("The decision opens after the final diagnosis: answer the facts on offer first.", severity="warning")
            return
        summary = f"Final diagnosis: {self.view.diagnosis.kind}. {self.view.sentence()}"

        def done(result: tuple[str, str] | None) -> None:
            if result is not None:
                self._send(Decide(action=result[0], reasons=result[1]))

        self.push_screen(DecideScreen(self.view.actions, summary), done)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab


def make_app(live: LiveSession) -> CruxApp:
    """The app for one live session (tests pass a session they built)."""
    return CruxApp(live)
