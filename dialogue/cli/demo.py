"""``crux demo``: the canonical example as a headless session."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer

from crux.dialogue.cli.options import DeviceOpt, JsonOpt
from crux.dialogue.report import render
from crux.worldmodel.model import load_model

EXAMPLE = "squirrel_or_cat.yaml"


def example_path() -> Path:
    """The canonical example shipped with Crux."""
    return Path(str(resources.files("crux.worldmodel.data").joinpath(EXAMPLE)))


def demo(device: DeviceOpt = "auto", as_json: JsonOpt = False) -> None:
    """Run the canonical example (squirrel or cat) headless and print the session's report."""
    # torch: when the command runs, not for --help
    from crux.dialogue.session import run_session
    from crux.oracle.oracle import Oracle

    path = example_path()
    model = load_model(path)
    report, _ = run_session(path, model, Oracle(model, device=device))
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{model.scenario.name}: {' '.join(model.scenario.description.split())}\n")  # type: ignore[union-attr]
    typer.echo(render(report))
    typer.echo(f"\n(the scenario: {path}; run `crux session {path} --headless --json` for the full report)")
