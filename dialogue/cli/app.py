"""The ``crux`` command: a table of contents of its commands."""

from __future__ import annotations

import typer

from crux.dialogue.cli import ask, demo, init, learn, model, serve, session, values, watch
from crux.dialogue.cli.errors import CruxGroup

app = typer.Typer(
    cls=CruxGroup,
    name="crux",
    help="Crux: find out whether a disagreement is about what is true or about what matters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("ask")(ask.ask)
app.command("validate")(model.validate)
app.command("schema")(model.schema)
app.command("session")(session.session)
app.command("replay")(session.replay)
app.command("beliefs")(session.beliefs)
app.command("demo")(demo.demo)
app.command("init")(init.init)
app.add_typer(values.app, name="values")
app.command("learn")(learn.learn)
app.command("watch")(watch.watch)
app.command("serve")(serve.serve)


def main() -> None:
    app()
