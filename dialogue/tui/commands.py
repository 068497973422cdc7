"""The session's commands in the command palette (ctrl+p): each by name, only while it does something."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Accept the fact on offer", "respond(True)", "a"),
    ("Reject the fact on offer", "respond(False)", "r"),
    ("Discount the fact on offer (accept it at the reliability you trust)", "discount", "d"),
    ("Share a fact you hold with the agent", "share", "s"),
    ("Observe: state a new observation", "observe", "o"),
    ("Edit a value (your utility of an outcome)", "edit_value", "e"),
    ("Undo your last response", "undo", "u"),
    ("Answer the value question", "answer_values", "v"),
    ("Decide", "decide", "D"),
    ("Show the final summary", "summary", "D"),
    ("State your position", "position", "p"),
    ("Situation tab: each action's outcomes", "tab('situation')", "1"),
    ("Dialogue tab: the offer and the log", "tab('dialogue')", "2"),
    ("Beliefs tab: the diagnosis and where beliefs differ", "tab('beliefs')", "3"),
    ("Values tab: your utilities and the agent's", "tab('values')", "4"),
    ("Export the report beside the transcript", "export_report", ""),
    ("Help: every key", "help", "?"),
    ("Quit", "quit", "q"),
)
"""(name, the app's action, its key)."""


class SessionCommands(Provider):
    """The commands of :data:`COMMANDS` that the app allows now (its ``check_action``)."""

    def _live(self):
        app = self.app
        for name, action, key in COMMANDS:
            if app.check_action(action.partition("(")[0], ()) is False:
                continue
            help_text = f"key: {key}" if key else None
            yield name, partial(app.run_action, action), help_text

    async def discover(self) -> Hits:
        for name, run, help_text in self._live():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self._live():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
