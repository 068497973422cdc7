"""The windows of a session: position, mismatch, help, a number, share, observe, a value question,
decide, quit, and the final screen.

Every window keeps one keyboard contract (:class:`Window`): escape cancels (or answers later),
enter confirms, a choice between options is made by its number, and ``q`` closes the window
(where no text field takes the key).  A window that sends something to the engine takes a
``submit`` callable that returns an error message or None: on an error the window stays open with
the message in place and nothing the person typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, OptionList, Static

from crux.dialogue.protocol import Asked
from crux.dialogue.tui.render import lottery_table

R = TypeVar("R")

KEYS = """\
[b]Keys in the session[/b] (the footer shows the ones that work now)
  p      state your position: the action you prefer (first of all)
  a      accept the fact on offer
  r      reject it
  d      discount it: accept it at the reliability you trust
  s      share a fact you hold with the agent
  o      state a new observation (variable=state, reliability, source)
  e      edit the highlighted value (Values tab; enter does the same)
  u      undo your last response, share, observation, edit or answer
  v      answer the value question (1 or 2; 3 stops asking),
         or withdraw one of answers that cannot all hold
  D      decide, once the exchange is over (after: the summary)
  1-4    switch tabs: situation, dialogue, beliefs, values
  ctrl+p the command palette: any command by name ("dec": decide)
  ?      this help
  q      quit (before the decision it asks; --resume continues)

[b]Keys in every window[/b]
  1, 2   choose an option by its number
  enter  confirm (where a window has a text field too)
  escape cancel, or answer later
  q      close the window (in the quit window: leave)
  tab    move between the fields of a form
"""


class Dialog(VerticalScroll, can_focus=False):
    """A window's frame: it scrolls when the terminal is short, but never takes the focus from its fields."""


class Window(ModalScreen[R], Generic[R]):
    """A window with the session's keyboard contract; subclasses add options and fields."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("q", "cancel", "close", show=False)]
    HINT = "enter confirm · escape cancel"
    OPTIONS: tuple[str, ...] = ()
    """What the number keys choose, in order (a window with options sets them)."""

    def __init__(self, submit: Callable[[R], str | None] | None = None):
        super().__init__()
        self.submit = submit

    def hint(self) -> Static:
        return Static(self.HINT, classes="hint")

    def finish(self, result: R) -> None:
        """Send the result (when the window has somewhere to send it) and close; on an error stay
        open with the message in the window's error line."""
        if self.submit is not None:
            problem = self.submit(result)
            if problem:
                self.show_error(problem)
                return
        self.dismiss(result)

    def show_error(self, message: str) -> None:
        errors = self.query(".error")
        if errors:
            errors.first(Label).update(message)
        else:
            self.notify(message, severity="error", timeout=8)

    def on_key(self, event) -> None:
        """A number chooses an option (keys a text field takes never get here)."""
        options = self.options()
        if event.character and event.character.isdigit() and 1 <= int(event.character) <= len(options):
            event.stop()
            self.choose(int(event.character) - 1)

    def options(self) -> tuple[str, ...]:
        return self.OPTIONS

    def choose(self, index: int) -> None:
        """The option with this index was chosen by its number (default: it is the result)."""
        self.finish(self.options()[index])  # type: ignore[arg-type]

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(Window[None]):
    BINDINGS = [Binding("escape,q,question_mark", "cancel", "close")]
    HINT = "escape, q or ? close · arrows and page keys scroll"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(KEYS, id="help-text")
            yield self.hint()

    def on_mount(self) -> None:
        self.query_one("#help").focus()


class PositionScreen(Window[str]):
    """Ask the person which action they prefer, before any diagnosis is shown."""

    def __init__(self, actions: tuple[str, ...], description: str):
        super().__init__()
        self.OPTIONS = actions
        self.description = description
        self.HINT = f"1-{len(actions)} choose · escape later (p brings this back)"

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog"):
            if self.description:
                yield Static(self.description, id="position-description")
            yield Label("[b]Before anything else: which action do you prefer?[/b]")
            with Horizontal(id="position-buttons"):
                for i, action in enumerate(self.OPTIONS, 1):
                    yield Button(f"{i} {action}", id=f"option-{i}")
            yield self.hint()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.choose(int(event.button.id.split("-")[1]) - 1)


class MismatchScreen(Window[str]):
    """The stated position is not what the person's own beliefs and values imply."""

    OPTIONS = ("beliefs", "values", "go-on")
    HINT = "1 beliefs · 2 values · 3 or escape go on"

    def __init__(self, stated: str, implied: str):
        super().__init__()
        self.stated, self.implied = stated, implied

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog"):
            yield Static(
                f"You prefer [b]{self.stated}[/b], but the beliefs and values on record for you imply "
                f"[b]{self.implied}[/b]. Some belief or value of yours is missing or different here.\n"
                "Look at which?"
            )
            with Horizontal():
                yield Button("1 Beliefs", id="option-1")
                yield Button("2 Values", id="option-2")
                yield Button("3 Go on", id="option-3", variant="primary")
            yield self.hint()

    def on_mount(self) -> None:
        self.query_one("#option-3").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.choose(int(event.button.id.split("-")[1]) - 1)


class NumberScreen(Window[float]):
    """Ask for one number (a reliability or a utility)."""

    def __init__(
        self,
        prompt: str,
        value: float,
        low: float | None = None,
        high: float | None = None,
        submit: Callable[[float], str | None] | None = None,
    ):
        super().__init__(submit)
        self.prompt, self.value, self.low, self.high = prompt, value, low, high

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog"):
            yield Static(self.prompt)
            yield Input(value=f"{self.value:g}", id="number")
            yield Label("", id="number-error", classes="error")
            yield self.hint()

    def on_mount(self) -> None:
        self.query_one("#number").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        try:
            number = float(text)
        except ValueError:
            self.show_error(f"{text!r} is not a number")
            return
        if number != number or number in (float("inf"), float("-inf")):
            self.show_error("give a finite number")
            return
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            self.show_error(f"give a number from {self.low:g} to {self.high:g}")
            return
        self.finish(number)


class ShareScreen(Window[str]):
    """Pick a fact you hold to share with the agent."""

    def __init__(self, facts: list[tuple[str, str]], submit: Callable[[str], str | None] | None = None):
        super().__init__(submit)
        self.facts = facts
        self.OPTIONS = tuple(fid for fid, _ in facts)
        self.HINT = f"1-{len(facts)} share · enter the highlighted · escape cancel"

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog"):
            yield Label("Share which fact with the agent?")
            yield OptionList(*[f"{i} {fid}: {text}" for i, (fid, text) in enumerate(self.facts, 1)], id="facts")
            yield Label("", classes="error")
            yield self.hint()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.choose(event.option_index)


class ObserveScreen(Window[dict]):
    """State a new observation for the agent to weigh: ``variable=state``, its reliability, its source."""

    HINT = "enter share · tab next field · → completes a name · escape cancel"

    def __init__(self, states: dict[str, tuple[str, ...]], submit: Callable[[dict], str | None] | None = None):
        super().__init__(submit)
        self.states = states

    def compose(self) -> ComposeResult:
        pairs = [f"{v}={s}" for v, states in self.states.items() for s in states]
        with Dialog(classes="dialog"):
            yield Label("A new observation (the agent weighs it by its reliability)")
            yield Label("What did you see? (variable=state)", classes="field")
            yield Input(placeholder=pairs[0], id="seen", suggester=SuggestFromList(pairs, case_sensitive=False))
            yield Static(", ".join(self.states), id="observe-variables", classes="dim")
            yield Label("How reliable is it? (0 to 1)", classes="field")
            yield Input(value="0.9", id="reliability")
            yield Label("Who or what reports it?", classes="field")
            yield Input(value="my own observation", id="source")
            yield Label("", id="observe-error", classes="error")
            yield self.hint()

    def on_mount(self) -> None:
        self.query_one("#seen").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        seen = self.query_one("#seen", Input).value.strip()
        variable, sep, state = (part.strip() for part in seen.partition("="))
        if not sep or not variable or not state:
            self.show_error(f"write what you saw as variable=state, e.g. {next(iter(self.states))}={self.states[next(iter(self.states))][0]}")
            self.query_one("#seen").focus()
            return
        if variable not in self.states:  # names as the engine knows them, matched without case
            variable = next((v for v in self.states if v.lower() == variable.lower()), variable)
        if variable in self.states:
            state = next((s for s in self.states[variable] if s.lower() == state.lower()), state)
        text = self.query_one("#reliability", Input).value.strip()
        try:
            reliability = float(text)
        except ValueError:
            self.show_error(f"reliability {text!r} is not a number")
            return
        if not 0.0 <= reliability <= 1.0:
            self.show_error("reliability must be from 0 to 1")
            return
        source = self.query_one("#source", Input).value.strip() or "the human"
        self.finish({"variable": variable, "state": state, "reliability": reliability, "source": source})


UNDO, DECLINE = "\x00undo", "\x00decline"
"""What a question window returns when the person takes back their previous answer, or answers no more."""


class QuestionScreen(Window[str]):
    """A value question: which of two options (1 or 2; 3 answers no more questions; escape or q
    answers later, with v; u takes back the previous step when there is one)."""

    BINDINGS = [*Window.BINDINGS, Binding("u", "undo", "undo")]

    def __init__(self, question: Asked, can_undo: bool = False):
        super().__init__()
        self.question = question
        self.can_undo = can_undo
        self.OPTIONS = (question.first, question.second, DECLINE)
        self.HINT = "1 or 2 answer · 3 stop asking · escape later (v brings it back)" + (" · u undo" if can_undo else "")

    def action_undo(self) -> None:
        if self.can_undo:
            self.dismiss(UNDO)

    def compose(self) -> ComposeResult:
        q = self.question
        with Dialog(classes="dialog", id="question"):
            yield Static(f"[b]Value question {q.number}[/b]: the facts are exchanged, your values are not known yet")
            yield Static(q.text, id="question-text")
            if q.kind in ("actions", "lottery"):
                yield Static(lottery_table(self.OPTIONS[:2], q.predicted), id="question-options")
            yield Static(
                f"With what is known so far, your values point to {q.leaning} "
                f"({100 * q.agreement:.0f}% of what is still uncertain agrees).",
                id="question-leaning",
                classes="dim",
            )
            with Horizontal():
                for i, option in enumerate(self.OPTIONS[:2], 1):
                    yield Button(f"{i} {option}", id=f"option-{i}", variant="primary" if i == 1 else "default")
                yield Button("3 stop asking", id="option-3")
            yield self.hint()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.choose(int(event.button.id.split("-")[1]) - 1)


class ConflictScreen(Window[int]):
    """Answers that cannot all hold: the person withdraws one by its number (escape: later, with v)."""

    HINT = "a number withdraws that answer · escape later (v brings it back)"

    def __init__(self, answers: list[dict]):
        super().__init__()
        self.answers = answers
        self.OPTIONS = tuple(a["number"] for a in answers)

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog", id="conflict"):
            yield Static("[b]These answers cannot all hold[/b] (no values fit them all). Withdraw one:")
            lines = "\n".join(f"[b]{i}[/b]  {a['question']} [i]{a['answer']}[/i]" for i, a in enumerate(self.answers, 1))
            yield Static(lines, id="conflict-answers")
            with Horizontal():
                for i, a in enumerate(self.answers, 1):
                    yield Button(f"{i} withdraw answer {a['number']}", id=f"option-{i}")
            yield self.hint()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.choose(int(event.button.id.split("-")[1]) - 1)


class DecideScreen(Window[tuple[str, str]]):
    """The decision: the actions numbered (a number picks, enter confirms), reasons optional."""

    BINDINGS = [*Window.BINDINGS, Binding("enter", "confirm", "confirm", priority=True)]

    def __init__(self, actions: tuple[str, ...], summary: str, submit: Callable[[tuple[str, str]], str | None] | None = None):
        super().__init__(submit)
        self.OPTIONS = actions
        self.summary = summary
        self.HINT = f"1-{len(actions)} choose · enter confirm · tab reasons · escape cancel"

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog", id="decide"):
            yield Static(self.summary, id="decide-summary")
            yield Label("[b]Your decision[/b] (press its number):", id="decide-choice")
            yield OptionList(*[f"{i} {a}" for i, a in enumerate(self.OPTIONS, 1)], id="action")
            yield Input(placeholder="your reasons, optional (kept in the transcript)", id="reasons")
            yield Label("", id="decide-error", classes="error")
            yield self.hint()

    def on_mount(self) -> None:
        actions = self.query_one("#action", OptionList)
        actions.highlighted = None
        actions.focus()

    def choose(self, index: int) -> None:
        """A number picks the action; enter confirms it."""
        self.query_one("#action", OptionList).highlighted = index
        self.query_one("#decide-error", Label).update("")
        self.query_one("#decide-choice", Label).update(f"[b]Your decision: {self.OPTIONS[index]}[/b] (enter confirms)")

    def chosen(self) -> str | None:
        index = self.query_one("#action", OptionList).highlighted
        return None if index is None else self.OPTIONS[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.choose(event.option_index)  # a click picks; enter confirms

    def action_confirm(self) -> None:
        action = self.chosen()
        if action is None:
            self.show_error(f"choose an action first: press 1 to {len(self.OPTIONS)}")
            self.query_one("#action").focus()
            return
        self.finish((action, self.query_one("#reasons", Input).value.strip()))


class QuitScreen(Window[bool]):
    """Leave before the decision? Says where the session is kept and how to resume it."""

    BINDINGS = [Binding("escape", "cancel", "stay"), Binding("q,enter", "leave", "leave")]
    OPTIONS = ("leave", "stay")
    HINT = "1, enter or q leave · 2 or escape stay"

    def __init__(self, saved: str):
        super().__init__()
        self.saved = saved

    def compose(self) -> ComposeResult:
        with Dialog(classes="dialog", id="quit"):
            yield Static(f"[b]Leave before the decision?[/b]\n{self.saved}")
            with Horizontal():
                yield Button("1 Leave", id="option-1", variant="error")
                yield Button("2 Stay", id="option-2", variant="primary")
            yield self.hint()

    def choose(self, index: int) -> None:
        self.dismiss(index == 0)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.choose(int(event.button.id.split("-")[1]) - 1)

    def action_leave(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class FinalScreen(ModalScreen[None]):
    """The end: the decision and the final diagnosis pinned at the top, the whole report below,
    scrolled with the arrows and page keys."""

    BINDINGS = [
        Binding("escape", "dismiss", "back to the session"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, pinned: Text | str, report: str):
        super().__init__()
        self.pinned, self.report = pinned, report

    def compose(self) -> ComposeResult:
        yield Static(self.pinned, id="final-pinned")
        with VerticalScroll(id="final-report"):
            yield Static(self.report, id="final-text", markup=False)
        yield Static("↑↓ PgUp PgDn Home End scroll · escape back to the session · q quit", classes="hint", id="final-hint")

    def on_mount(self) -> None:
        self.query_one("#final-report").focus()

    def action_dismiss(self) -> None:
        self.dismiss(None)
