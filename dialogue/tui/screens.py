"""Modal screens: position, help, discount, share, observe, edit a value, a value question, decide, summary."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from dialogue.protocol import Asked
from dialogue.tui.render import lottery_table

HELP = """\
[b]Keys[/b]
  a      accept the fact on offer
  r      reject it
  d      discount it: accept it at the reliability you trust
  s      share a fact you hold with the agent
  o      state a new observation (variable, state, reliability, source)
  e      edit the selected value (Values tab)
  v      answer the value question (after the exchange, when your values are unknown)
  D      decide (after the final diagnosis)
  1-4    switch tabs: situation, dialogue, beliefs, values
  ?      this help
  q      quit (the transcript keeps everything; --resume continues)
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(HELP, id="help-text")
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class PositionScreen(ModalScreen[str]):
    """Ask the person which action they prefer, before any diagnosis is shown."""

    def __init__(self, actions: tuple[str, ...], description: str):
        super().__init__()
        self.actions = actions
        self.description = description

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.description, id="position-description")
            yield Label("[b]Before anything else: which action do you prefer?[/b]")
            with Horizontal(id="position-buttons"):
                for i, action in enumerate(self.actions, 1):
                    yield Button(f"{i} {action}", id=f"action-{i - 1}")

    def on_key(self, event) -> None:
        if event.key.isdigit() and 1 <= int(event.key) <= len(self.actions):
            self.dismiss(self.actions[int(event.key) - 1])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.actions[int(event.button.id.split("-")[1])])


class MismatchScreen(ModalScreen[str]):
    """The stated position is not what the person's own beliefs and values imply."""

    def __init__(self, stated: str, implied: str):
        super().__init__()
        self.stated, self.implied = stated, implied

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                f"You prefer [b]{self.stated}[/b], but the beliefs and values on record for you imply "
                f"[b]{self.implied}[/b]. Some belief or value of yours is missing or different here.\n"
                "Look at which?"
            )
            with Horizontal():
                yield Button("Beliefs", id="beliefs")
                yield Button("Values", id="values")
                yield Button("Go on", id="go-on", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class NumberScreen(ModalScreen[float | None]):
    """Ask for one number (a reliability or a utility)."""

    def __init__(self, prompt: str, value: float, low: float | None = None, high: float | None = None):
        super().__init__()
        self.prompt, self.value, self.low, self.high = prompt, value, low, high

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt)
            yield Input(value=f"{self.value:g}", id="number")
            yield Label("", id="number-error", classes="error")
            with Horizontal():
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        text = self.query_one("#number", Input).value.strip()
        try:
            number = float(text)
        except ValueError:
            self.query_one("#number-error", Label).update(f"{text!r} is not a number")
            return
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            self.query_one("#number-error", Label).update(f"give a number from {self.low:g} to {self.high:g}")
            return
        self.dismiss(number)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)


class ShareScreen(ModalScreen[str | None]):
    """Pick a fact you hold to share with the agent."""

    def __init__(self, facts: list[tuple[str, str]]):
        super().__init__()
        self.facts = facts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Share which fact with the agent? (escape: cancel)")
            yield OptionList(*[f"{fid}: {text}" for fid, text in self.facts], id="facts")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.facts[event.option_index][0])

    def key_escape(self) -> None:
        self.dismiss(None)


class ObserveScreen(ModalScreen[dict | None]):
    """State a new observation for the agent to weigh."""

    def __init__(self, states: dict[str, tuple[str, ...]]):
        super().__init__()
        self.states = states

    def compose(self) -> ComposeResult:
        first = next(iter(self.states))
        with Vertical(classes="dialog"):
            yield Label("A new observation (the agent weighs it by its reliability)")
            yield Select([(v, v) for v in self.states], value=first, id="variable", allow_blank=False)
            yield Select([(s, s) for s in self.states[first]], id="state", allow_blank=False)
            yield Input(value="0.9", placeholder="reliability in [0, 1]", id="reliability")
            yield Input(value="my own observation", placeholder="source", id="source")
            yield Label("", id="observe-error", classes="error")
            with Horizontal():
                yield Button("Share", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "variable" and event.value in self.states:
            self.query_one("#state", Select).set_options([(s, s) for s in self.states[event.value]])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "ok":
            self.dismiss(None)
            return
        text = self.query_one("#reliability", Input).value.strip()
        try:
            reliability = float(text)
        except ValueError:
            self.query_one("#observe-error", Label).update(f"reliability {text!r} is not a number")
            return
        if not 0.0 <= reliability <= 1.0:
            self.query_one("#observe-error", Label).update("reliability must be in [0, 1]")
            return
        self.dismiss(
            {
                "variable": str(self.query_one("#variable", Select).value),
                "state": str(self.query_one("#state", Select).value),
                "reliability": reliability,
                "source": self.query_one("#source", Input).value.strip() or "the human",
            }
        )


class QuestionScreen(ModalScreen[str | None]):
    """A value question: which of two options (press 1 or 2; escape answers later, with v)."""

    BINDINGS = [("escape", "dismiss_screen", "later")]

    def __init__(self, question: Asked):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        options = (q.first, q.second)
        with Vertical(classes="dialog", id="question"):
            yield Static(f"[b]Value question {q.number}[/b]: the facts are exchanged, your values are not known yet")
            yield Static(q.text, id="question-text")
            if q.kind == "actions":
                yield Static(lottery_table(options, q.predicted), id="question-options")
            yield Static(
                f"With what is known so far, your values point to {q.leaning} "
                f"({100 * q.agreement:.0f}% of what is still uncertain agrees).",
                id="question-leaning",
                classes="dim",
            )
            with Horizontal():
                for i, option in enumerate(options, 1):
                    yield Button(f"{i} {option}", id=f"option-{i}", variant="primary" if i == 1 else "default")

    def on_key(self, event) -> None:
        if event.key in ("1", "2"):
            self.dismiss((self.question.first, self.question.second)[int(event.key) - 1])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.question.first if event.button.id == "option-1" else self.question.second)

    def action_dismiss_screen(self) -> None:
        self.dismiss(None)


class DecideScreen(ModalScreen[tuple[str, str] | None]):
    """Pick an action and confirm, with reasons for the transcript."""

    def __init__(self, actions: tuple[str, ...], summary: str):
        super().__init__()
        self.actions, self.summary = actions, summary

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.summary)
            yield Label("Your decision:")
            yield Select([(a, a) for a in self.actions], id="action", prompt="choose an action")
            yield Input(placeholder="your reasons (recorded in the transcript)", id="reasons")
            yield Label("", id="decide-error", classes="error")
            with Horizontal():
                yield Button("Confirm", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "ok":
            self.dismiss(None)
            return
        action = self.query_one("#action", Select).value
        if action is Select.BLANK or action not in self.actions:
            self.query_one("#decide-error", Label).update("choose an action first")
            return
        self.dismiss((str(action), self.query_one("#reasons", Input).value.strip()))


class SummaryScreen(ModalScreen[None]):
    """The end of the session."""

    BINDINGS = [("q,escape,enter", "app.quit", "quit")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="summary"):
            yield Static(self.text, id="summary-text")
            yield Button("Quit (q)", id="quit", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.app.exit()
