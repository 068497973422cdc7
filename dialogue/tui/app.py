"""The terminal UI: a belief-reconciliation session with the person at the keyboard as the human.

A shell over :class:`dialogue.session.LiveSession` and :class:`dialogue.view.SessionView`:
widgets show views and send engine messages; no decision logic lives here.  Only the keys that do
something now are live (``check_action``, from :meth:`SessionView.live`); every window keeps the
keyboard contract of :mod:`dialogue.tui.screens`.  Build it with :func:`make_app`, so tests can
drive it with ``App.run_test()``.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Header, RichLog, Static, TabbedContent, TabPane

from crux.dialogue.parties import Agent
from crux.dialogue.protocol import (
    Asked,
    Concluded,
    Conflicted,
    Decide,
    Decided,
    Decline,
    Observe,
    Respond,
    SetValues,
    Share,
    State,
    Stated,
    Undo,
    ValueAnswer,
    Withdraw,
)
from crux.dialogue.report import render
from crux.dialogue.session import LiveSession
from crux.dialogue.tui.commands import SessionCommands
from crux.dialogue.tui.render import distribution, share_bar
from crux.dialogue.tui.screens import (
    DECLINE,
    ConflictScreen,
    DecideScreen,
    FinalScreen,
    HelpScreen,
    MismatchScreen,
    NumberScreen,
    ObserveScreen,
    PositionScreen,
    QuestionScreen,
    UNDO,
    QuitScreen,
    ShareScreen,
)
from crux.dialogue.view import SessionView
from crux.worldmodel.errors import CruxError

FOCUS = {
    "situation": "#situation-scroll",
    "dialogue": "#log",
    "beliefs": "#beliefs-scroll",
    "values": "#value-table",
}
"""The main widget of each tab: it takes the focus when its tab is shown."""

SESSION_ACTIONS = {"respond", "discount", "share", "observe", "edit_value", "undo", "answer_values", "decide", "summary", "position"}
"""Actions that do something only in some states of the session (:meth:`SessionView.available`); the
others (tabs, help, quit, export) always do."""


class CruxApp(App):
    """One session; the person is the human party."""

    CSS_PATH = "app.tcss"
    TITLE = "Crux"
    COMMANDS = App.COMMANDS | {SessionCommands}
    BINDINGS = [
        Binding("p", "position", "position"),
        Binding("a", "respond(True)", "accept"),
        Binding("r", "respond(False)", "reject"),
        Binding("d", "discount", "discount"),
        Binding("s", "share", "share"),
        Binding("o", "observe", "observe"),
        Binding("e", "edit_value", "edit"),
        Binding("u", "undo", "undo"),
        Binding("v", "answer_values", "answer"),
        Binding("D", "decide", "decide"),
        Binding("D", "summary", "summary"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("1", "tab('situation')", "situation", show=False),
        Binding("2", "tab('dialogue')", "dialogue", show=False),
        Binding("3", "tab('beliefs')", "beliefs", show=False),
        Binding("4", "tab('values')", "values", show=False),
    ]

    revision = reactive(0)
    """Bumped after every message to the engine; watchers redraw from the views."""

    def __init__(self, live: LiveSession, resume_command: str | None = None):
        super().__init__()
        self.live = live
        self.view = SessionView(live)
        self.agent = Agent()
        self.resume_command = resume_command
        """How to continue this session later (said when the person quits before deciding)."""

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        with TabbedContent(id="tabs"):
            with TabPane("1 Situation", id="situation"):
                with VerticalScroll(id="situation-scroll"):
                    yield Static(id="situation-table")
            with TabPane("2 Dialogue", id="dialogue"):
                yield Static(id="offer")
                yield RichLog(id="log", wrap=True, markup=True)
            with TabPane("3 Beliefs", id="beliefs"):
                with VerticalScroll(id="beliefs-scroll"):
                    yield Static(id="diagnosis")
                    yield Static(id="differences")
            with TabPane("4 Values", id="values"):
                with VerticalScroll(id="values-scroll"):
                    yield DataTable(id="value-table", cursor_type="row")
                    yield Static(id="conflicts")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        scenario = self.live.engine.scenario
        self.title = f"Crux — {scenario.name}"
        self.sub_title = "predict-only" if self.view.predict_only else "full session"
        self._logged = 0
        self._log_new()
        self.revision += 1
        if self.view.stated() is None:
            self.action_position(" ".join(scenario.description.split()))
        elif self.live.engine.decided:
            self.action_summary()
        else:
            self.action_tab("dialogue")
            self.action_answer_values()

    @property
    def main(self):
        """The session's screen (under any window that is open): where the tabs live."""
        return self.screen_stack[0]

    # -- which keys are live ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only what does something now: a key for anything else is hidden."""
        if action not in SESSION_ACTIONS or not self.is_mounted:
            return True
        return action in self.view.available()

    # -- redraw ------------------------------------------------------------------------

    def watch_revision(self) -> None:
        if not self.is_mounted:
            return
        self._draw_status()
        self._draw_situation()
        self._draw_offer()
        self._draw_beliefs()
        self._draw_values()
        self.refresh_bindings()

    def _draw_status(self) -> None:
        status = self.main.query_one("#status", Static)
        if self.view.stated() is None:
            status.update(f"State your position first: press p. · ? help · q quit")
            return
        d = self.view.diagnosis
        shares = "" if d.belief_share is None or self.view.predict_only else (
            f"  beliefs {d.belief_share:+.2f} · values {d.value_share:+.2f}"
        )
        status.update(Text.assemble((f" {self.view.badge()} ", "reverse bold"), shares, f"  · {self.view.stage()}"))

    def _draw_situation(self) -> None:
        narrow = self.size.width < 100
        table = Table(expand=True, show_lines=True, pad_edge=False)
        table.add_column("action", no_wrap=True)
        table.add_column("agent's predictions")
        table.add_column("your predictions")
        bar = 4 if narrow else 10
        for row in self.view.situation():
            name = Text(row.action, style="bold")
            if row.agent_utility is not None:
                name.append(f"\nagent EU {row.agent_utility:.3f}")
            if row.human_utility is not None:
                name.append(f"\nyour EU {row.human_utility:.3f}")
            agent = Text("\n").join(Text.assemble((o, "underline"), "\n", distribution(dist, bar)) for o, dist in row.agent.items())
            human = Text("\n").join(Text.assemble((o, "underline"), "\n", distribution(dist, bar)) for o, dist in row.human.items())
            table.add_row(name, agent, human)
        self.main.query_one("#situation-table", Static).update(table)

    def _draw_offer(self) -> None:
        engine = self.live.engine
        offer = engine.pending
        widget = self.main.query_one("#offer", Static)
        live = self.view.available()
        if engine.question is not None:
            widget.update(f"[b]Value question {engine.question.number}[/b]: {engine.question.text}\n[b]v[/b] answer")
            return
        if offer is None or offer.receiver != "human":
            widget.update(
                "No fact is on offer: the exchange is over. Press [b]D[/b] to decide."
                if engine.concluded and not engine.decided
                else "The session is over: press [b]D[/b] for the summary."
                if engine.decided
                else "State your position first: press [b]p[/b]."
                if self.view.stated() is None
                else ""
            )
            return
        reliability = f", reliability {offer.reliability:g}" if offer.reliability is not None else ""
        keys = [("a", "accept", "respond"), ("r", "reject", "respond"), ("d", "discount", "discount"), ("u", "undo", "undo")]
        shown = " · ".join(f"[b]{k}[/b] {word}" for k, word, action in keys if action in live)
        head = f"[b]Turn {offer.turn}: the agent offers[/b] {offer.fact} ({offer.source}{reliability})"
        widget.update(f"{head}\n“{offer.text}”\n[i]{offer.why}[/i]\n{shown}")

    def _draw_beliefs(self) -> None:
        d = self.view.diagnosis
        diagnosis = self.main.query_one("#diagnosis", Static)
        if self.view.stated() is None:
            diagnosis.update("The diagnosis appears once you have stated your position.")
        else:
            text = Text.assemble(("Diagnosis: ", "bold"), self.view.badge().lower(), "\n")
            if not self.view.predict_only:
                text.append_text(share_bar(d.belief_share, d.value_share, width=20 if self.size.width < 100 else 30))
                text.append("\n")
            text.append(self.view.sentence())
            note = self.view.share_note()
            if note:
                text.append("\n" + note, style="dim")
            diagnosis.update(text)
        rows = self.view.belief_rows()
        table = Table(expand=True, pad_edge=False, title="Where your beliefs differ", title_justify="left")
        for column in ("belief", "agent", "you", "agent's facts", "your facts"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        self.main.query_one("#differences", Static).update(table if rows else "Your beliefs and the agent's do not differ.")

    def _draw_values(self) -> None:
        table = self.main.query_one("#value-table", DataTable)
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
        edit = "↑↓ choose a row, e or enter edits it." if "edit_value" in self.view.available() else "Values are fixed now (u undoes back into the exchange)."
        head = "[b]Value conflicts[/b] (utility / range)\n" + "\n".join(lines) + "\n" if lines else ""
        self.main.query_one("#conflicts", Static).update(head + edit)

    # -- engine messages ---------------------------------------------------------------

    def send(self, message) -> str | None:
        """Give the engine a message (and let the agent answer what is offered to it); the engine's
        objection, if any, as words for the window that sent it."""
        try:
            events = self.live.send(message)
            while self.live.engine.pending is not None and self.live.engine.pending.receiver == "agent":
                events += self.live.send(self.agent.respond(self.live.engine.pending))
        except CruxError as err:
            return str(err)
        self._log_new()
        self.revision += 1
        if any(isinstance(e, Concluded) for e in events):
            self.notify("The exchange is over: the final diagnosis is in. Press D to decide.", timeout=8)
        if any(isinstance(e, Decided) for e in events):
            try:
                self.live.save_report()
            except CruxError as err:
                self.notify(str(err), severity="error", timeout=8)
        if any(isinstance(e, Asked | Conflicted) for e in events):
            self.call_after_refresh(self.action_answer_values)
        return None

    def _send_or_say(self, message) -> None:
        problem = self.send(message)
        if problem:
            self.notify(problem, severity="error", timeout=8)

    def _log_new(self) -> None:
        """Write the events not yet in the dialogue log (none before the position is stated: the
        diagnosis stays hidden until then)."""
        if self.view.stated() is None:
            return
        log = self.main.query_one("#log", RichLog)
        for event in self.live.events[self._logged :]:
            text = self.view.describe(event)
            if text is not None:
                log.write(Text(text))
        self._logged = len(self.live.events)

    def _stated(self, action: str | None) -> None:
        if action is None:
            return
        before = len(self.live.events)
        if self.send(State(action=action)) is not None:
            return
        stated = next(e for e in self.live.events[before:] if isinstance(e, Stated))
        self.action_tab("dialogue")
        if stated.matches is False and stated.implied is not None:
            self.push_screen(MismatchScreen(stated.action, stated.implied), self._after_mismatch)
        else:
            self.action_answer_values()

    def _after_mismatch(self, choice: str | None) -> None:
        self.action_tab(choice if choice in ("beliefs", "values") else "dialogue")

    # -- actions -----------------------------------------------------------------------

    def action_position(self, description: str = "") -> None:
        self.push_screen(PositionScreen(self.view.actions, description), self._stated)

    def action_respond(self, accepted: bool) -> None:
        offer = self.live.engine.pending
        if offer is not None:
            self._send_or_say(Respond(fact=offer.fact, accepted=accepted))

    def action_discount(self) -> None:
        offer = self.live.engine.pending
        if offer is None:
            return
        start = offer.reliability if offer.reliability is not None else 1.0
        prompt = f"How far do you trust {offer.fact}? Its source ({offer.source}) gives {start:g}. Your reliability, 0 to 1:"
        submit = lambda value: self.send(Respond(fact=offer.fact, accepted=True, reliability=value))  # noqa: E731
        self.push_screen(NumberScreen(prompt, start, 0.0, 1.0, submit=submit))

    def action_share(self) -> None:
        facts = [(f, self.live.engine.scenario.facts[f].text) for f in self.live.engine.shareable()]
        self.push_screen(ShareScreen(facts, submit=lambda fact: self.send(Share(fact=fact))))

    def action_observe(self) -> None:
        net = self.live.engine.model.network
        states = {v: net.states[v] for v in net.order if v != net.decision}
        self.push_screen(ObserveScreen(states, submit=lambda form: self.send(Observe(**form))))

    def action_edit_value(self) -> None:
        tabs = self.main.query_one("#tabs", TabbedContent)
        table = self.main.query_one("#value-table", DataTable)
        if tabs.active != "values" or not table.has_focus:
            self.action_tab("values")
            self.notify("Choose the value with ↑↓, then press e or enter to edit it.", timeout=5)
            return
        if not table.row_count:
            return
        outcome, state, mine, _ = self.view.human_values()[table.cursor_row]

        def submit(value: float) -> str | None:
            if value == mine:
                return None  # nothing changed: no event
            return self.send(SetValues(party="human", values=self.view.human_values_with(outcome, state, value)))

        self.push_screen(NumberScreen(f"Your utility for {outcome} = {state}:", 0.0 if mine is None else mine, submit=submit))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "value-table" and self.check_action("edit_value", ()):
            self.action_edit_value()

    def action_undo(self) -> None:
        self._send_or_say(Undo())

    def action_answer_values(self) -> None:
        """Show the value question (or the clashing answers) waiting for the person, if any and not
        shown already."""
        if self.view.stated() is None or isinstance(self.screen, QuestionScreen | ConflictScreen):
            return
        conflict = self.live.engine.conflict
        if conflict is not None:
            self.push_screen(
                ConflictScreen(conflict.answers),
                lambda number: number is not None and self._send_or_say(Withdraw(question=number)),
            )
            return
        question = self.view.question()
        if question is None:
            return

        def done(choice: str | None) -> None:
            if choice == UNDO:
                self._send_or_say(Undo())
            elif choice == DECLINE:
                self._send_or_say(Decline())
            elif choice is not None:
                self._send_or_say(ValueAnswer(question=question.number, choice=choice))

        self.push_screen(QuestionScreen(question, can_undo=self.live.engine.undoable is not None), done)

    def action_decide(self) -> None:
        window = DecideScreen(self.view.actions, self.view.verdict(), submit=lambda r: self.send(Decide(action=r[0], reasons=r[1])))
        self.push_screen(window, lambda decided: decided and self.action_summary())

    def action_summary(self) -> None:
        report = self.live.report()
        pinned = Text()
        decision = report.get("decision")
        if decision:
            pinned.append(f"Decision (by the {decision['by']}): {decision['action']}\n", style="bold")
        pinned.append(self.view.verdict())
        saved = self.live.report_path()
        if saved is not None:
            pinned.append(f"\nReport: {saved}", style="dim")
        self.push_screen(FinalScreen(pinned, render(report)))

    def action_export_report(self) -> None:
        try:
            path = self.live.save_report()
        except CruxError as err:
            self.notify(str(err), severity="error", timeout=8)
            return
        if path is None:
            self.notify("This session has no transcript, so there is nowhere beside it to write the report.", severity="warning")
        else:
            self.notify(f"Report written to {path}", timeout=8)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        self.main.query_one("#tabs", TabbedContent).active = tab
        self._focus_tab(tab)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id in FOCUS:
            self._focus_tab(event.pane.id)

    def _focus_tab(self, tab: str) -> None:
        """Focus the tab's main widget on the session's screen (also while a window is open over it:
        the screen gives the focus back to it when the window closes)."""
        self.main.set_focus(self.main.query_one(FOCUS[tab]))

    async def action_quit(self) -> None:
        if self.live.engine.decided:
            self.exit()
            return
        path = self.live.transcript_path
        if path is None:
            saved = "This session has no transcript: what was done is lost when you leave."
        else:
            again = f"\nTo go on later: {self.resume_command}" if self.resume_command else f"\nTo go on later: --resume {path}"
            saved = f"Everything so far is saved in {path}.{again}"
        self.push_screen(QuitScreen(saved), lambda leave: leave and self.exit())


def make_app(live: LiveSession, resume_command: str | None = None) -> CruxApp:
    """The app for one live session (tests pass a session they built)."""
    return CruxApp(live, resume_command)
