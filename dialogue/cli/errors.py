"""One place where errors become messages: no traceback reaches a user."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from crux.worldmodel.errors import CruxError, ModelError


class CruxGroup(TyperGroup):
    """Runs a command; a :class:`CruxError` is printed to stderr and exits 1.

    Anything else that escapes is a bug in Crux: it is reported in one line too
    (set ``CRUX_DEBUG=1`` to see the traceback).
    """

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (TyperException, Exit, Abort):
            raise
        except CruxError as err:
            fail(err)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader went away (crux ... | head): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as err:  # the last line of defence, not a way to hide a bad file
            if os.environ.get("CRUX_DEBUG"):
                raise
            typer.echo(
                f"internal error: {type(err).__name__}: {err}\n"
                "This is a bug in Crux; run again with CRUX_DEBUG=1 for the traceback and report it.",
                err=True,
            )
            raise typer.Exit(1) from None


def fail(err: CruxError) -> None:
    """Print a user error to stderr and exit 1."""
    message = str(err) if isinstance(err, ModelError) else f"error: {err}"
    typer.echo(message, err=True)
    raise typer.Exit(1)
