"""``crux validate`` and ``crux schema``: checking model files."""

from __future__ import annotations

import json

import typer

from crux.dialogue.cli.errors import error_json
from crux.dialogue.cli.options import AnyModelArg, JsonOpt
from crux.worldmodel.errors import CruxError, ModelError, render_path
from crux.worldmodel.bif import check_bif, is_bif
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import check_model_format
from crux.worldmodel.spec import json_schema


def validate(model: AnyModelArg, as_json: JsonOpt = False) -> None:
    """Check a model file: print 'ok: N variables, M facts', or every problem, one per line."""
    try:
        check_model_format(model)
        if is_bif(model):  # read and checked as `crux ask` reads it, without building its tables
            variables, facts = len(check_bif(model)), 0
        else:
            scenario = load_scenario(model)
            variables, facts = len(scenario.world.variables), len(scenario.facts)
    except CruxError as err:
        if not as_json:
            raise
        # the error object of every --json command (loc, msg), with validate's own keys beside it
        found = error_json(err)
        file = err.file if isinstance(err, ModelError) else str(model)
        problems = [{**p, "file": file, "path": render_path(p["loc"]), "message": p["msg"]} for p in found["problems"]]
        typer.echo(json.dumps({"ok": False, "error": found["error"], "file": file, "problems": problems}))
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"ok": True, "file": str(model), "variables": variables, "facts": facts, "problems": []}))
    else:
        typer.echo(f"ok: {variables} variables, {facts} facts")


def schema() -> None:
    """Print the JSON Schema of the scenario format."""
    typer.echo(json.dumps(json_schema(), indent=2))
