"""``crux validate`` and ``crux schema``: checking model files."""

from __future__ import annotations

import json

import typer

from crux.dialogue.cli.options import AnyModelArg, JsonOpt
from crux.worldmodel.errors import CruxError, ModelError, render_path
from crux.worldmodel.bif import is_bif
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import check_model_format, load_model
from crux.worldmodel.spec import json_schema


def validate(model: AnyModelArg, as_json: JsonOpt = False) -> None:
    """Check a model file: print 'ok: N variables, M facts', or every problem, one per line."""
    try:
        check_model_format(model)
        if is_bif(model):
            network = load_model(model).network
            variables, facts = len(network.order), 0
        else:
            scenario = load_scenario(model)
            variables, facts = len(scenario.world.variables), len(scenario.facts)
    except ModelError as err:
        if as_json:
            problems = [{"file": err.file, "path": render_path(p.path), "message": p.message} for p in err.problems]
            typer.echo(json.dumps({"ok": False, "file": err.file, "problems": problems}))
            raise typer.Exit(1) from None
        raise
    except CruxError as err:
        if as_json:
            problem = {"file": str(model), "path": "", "message": str(err)}
            typer.echo(json.dumps({"ok": False, "file": str(model), "problems": [problem]}))
            raise typer.Exit(1) from None
        raise
    if as_json:
        typer.echo(json.dumps({"ok": True, "file": str(model), "variables": variables, "facts": facts, "problems": []}))
    else:
        typer.echo(f"ok: {variables} variables, {facts} facts")


def schema() -> None:
    """Print the JSON Schema of the scenario format."""
    typer.echo(json.dumps(json_schema(), indent=2))
