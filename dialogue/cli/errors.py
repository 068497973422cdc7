"""One place where errors become messages: no traceback reaches a user.

With ``--json`` an error is also one JSON object on stdout (``spec/CLI.md``):
``{"error": MESSAGE, "problems": [{"loc": [...], "msg": ...}]}``, one problem per problem of a
model file, else one for the whole message; the exit code is 1 as without it.  Usage errors
(exit code 2) are click's, printed as click prints them.
"""

from __future__ import annotations

import json
import os
import sys

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from crux.worldmodel.errors import CruxError, ModelError

JSON_ERRORS = "crux.json_errors"
"""The key in ``ctx.meta`` (shared by a command's contexts) set when the command was given --json."""


def json_errors(ctx: typer.Context, value: bool) -> bool:
    """The callback of every --json option: remember it, so that :class:`CruxGroup` answers an
    error in JSON too."""
    if value:
        ctx.meta[JSON_ERRORS] = True
    return value


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
            fail(err, as_json=bool(ctx.meta.get(JSON_ERRORS)))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader went away (crux ... | head): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as err:  # the last line of defence, not a way to hide a bad file
            if os.environ.get("CRUX_DEBUG"):
                raise
            message = f"internal error: {type(err).__name__}: {err}"
            typer.echo(
                f"{message}\nThis is a bug in Crux; run again with CRUX_DEBUG=1 for the traceback and report it.",
                err=True,
            )
            if ctx.meta.get(JSON_ERRORS):
                typer.echo(json.dumps({"error": message, "problems": [{"loc": [], "msg": message}]}))
            raise typer.Exit(1) from None


def fail(err: CruxError, as_json: bool = False) -> None:
    """Print a user error to stderr (and, ``as_json``, its :func:`error_json` to stdout); exit 1."""
    message = str(err) if isinstance(err, ModelError) else f"error: {err}"
    typer.echo(message, err=True)
    if as_json:
        typer.echo(json.dumps(error_json(err)))
    raise typer.Exit(1)


def error_json(err: CruxError) -> dict:
    """``{"error": MESSAGE, "problems": [{"loc": [...], "msg": ...}]}``: a model file's problems one
    by one (with ``file``), any other error as one problem at no location."""
    if isinstance(err, ModelError):
        problems = [{"loc": list(p.path), "msg": p.message} for p in err.problems]
        return {"error": str(err), "file": err.file, "problems": problems}
    return {"error": str(err), "problems": [{"loc": [], "msg": str(err)}]}
