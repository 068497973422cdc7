"""``crux demo``: the canonical example, headless."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dialogue.cli.options import DeviceOpt, JsonOpt
from dialogue.positions import Position, positions
from oracle.oracle import Oracle
from worldmodel.model import Model, load_model

EXAMPLE = "squirrel_or_cat.yaml"


def example_path() -> Path:
    """The canonical example shipped with Crux."""
    return Path(str(resources.files("worldmodel.data").joinpath(EXAMPLE)))


def demo(device: DeviceOpt = "auto", as_json: JsonOpt = False) -> None:
    """Run the canonical example (squirrel or cat) and print what each party predicts and chooses."""
    model = load_model(example_path())
    result = positions(Oracle(model, device=device))
    if as_json:
        typer.echo(json.dumps(report(model, result)))
        return
    show(model, result, Console())


def report(model: Model, result: dict[str, Position]) -> dict:
    assert model.scenario is not None
    return {
        "scenario": model.scenario.name,
        "mode": "full",
        "initial": {
            "choices": {p: pos.choice for p, pos in result.items()},
            "expected_utility": {p: pos.expected_utility for p, pos in result.items()},
            "predictions": {
                p: {a: {o: d.model_dump(exclude_none=True) for o, d in ans.outcomes.items()} for a, ans in pos.predictions.items()}
                for p, pos in result.items()
            },
        },
    }


def show(model: Model, result: dict[str, Position], console: Console) -> None:
    assert model.scenario is not None
    scenario, net = model.scenario, model.network
    console.print(f"[bold]{scenario.name}[/bold]: {' '.join(scenario.description.split())}\n")
    for party, pos in result.items():
        table = Table(title=f"{party}'s beliefs", title_justify="left")
        table.add_column("action")
        for o in net.outcomes:
            for s in net.states[o]:
                table.add_column(f"{o}={s}", justify="right")
        table.add_column("expected utility (0–1)", justify="right")
        for action, answer in pos.predictions.items():
            cells = [
                f"{p:.3f} [dim]({lo:.2f}–{hi:.2f})[/dim]"
                for o in net.outcomes
                for p, (lo, hi) in zip(answer.outcomes[o].p, answer.outcomes[o].interval)
            ]
            eu = pos.expected_utility[action] if pos.expected_utility else None
            mark = " ← choice" if action == pos.choice else ""
            table.add_row(action, *cells, f"{eu:.4f}{mark}" if eu is not None else "—")
        console.print(table)
        console.print()
    agent, human = result["agent"].choice, result["human"].choice
    verdict = "agree" if agent == human else "disagree"
    console.print(f"The agent would {agent}; the human would {human}: they {verdict}.")
    console.print("[dim](probabilities: posterior mean and 90% credible interval from parameter uncertainty)[/dim]")
