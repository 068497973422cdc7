"""``crux values``: what a party's choices say about its values."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crux.dialogue.cli.options import AsOpt, DeviceOpt, JsonOpt, ModelArg, make_oracle, party
from crux.dialogue.report import stopped_text
from crux.worldmodel.errors import CruxError, render_path
from crux.worldmodel.files import read_data
from crux.worldmodel.model import load_model

if TYPE_CHECKING:
    from crux.values.infer import Choice

app = typer.Typer(help="Infer a party's values from its choices.", no_args_is_help=True)


class ChoiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    given: dict[str, str] = Field(default_factory=dict, description="What the party saw: {variable: state}.")
    chose: str = Field(description="The action it chose.")


class ChoicesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choices: list[ChoiceSpec] = Field(min_length=1, description="Observed decisions.")


def read_choices(path: Path) -> list[Choice]:
    """A choices file (YAML or JSON): ``choices: [{given: {VAR: state}, chose: ACTION}, ...]``."""
    # pyro and torch: when a command runs, not for --help
    from crux.values.infer import Choice

    data = read_data(path)
    try:
        spec = ChoicesFile.model_validate(data)
    except ValidationError as err:
        lines = [f"{path}: {render_path(e['loc'])}: {e['msg']}" for e in err.errors(include_url=False)]
        raise CruxError("\n".join(lines)) from None
    return [Choice(given=c.given, chose=c.chose) for c in spec.choices]


@app.command("infer")
def infer(
    model: ModelArg,
    choices: Annotated[Path, typer.Option("--choices", help="YAML/JSON: choices: [{given: {VAR: state}, chose: ACTION}].")],
    as_: AsOpt = None,
    unknown_priors: Annotated[
        Optional[str],
        typer.Option("--unknown-priors", help="Comma-separated root variables whose priors are inferred too (beliefs unknown)."),
    ] = None,
    draws: Annotated[int, typer.Option("--draws", min=50, help="Posterior draws (NUTS).")] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar (there is none unless stderr is a terminal).")] = False,
) -> None:
    """Posterior means and 90% intervals of the party's normalised utilities and rationality beta
    (--as: whose beliefs the choices were made under; the human's by default)."""
    from crux.values.infer import (
        identifiability,
        infer_values,
        infer_values_and_beliefs,
    )

    loaded = load_model(model)
    if loaded.scenario is None or loaded.network.decision is None:
        raise CruxError(f"{model}: values are inferred on a scenario with a decision")
    as_ = party(loaded, as_, "human")
    observed = read_choices(choices)
    oracle = make_oracle(loaded, device=device)
    beliefs = loaded.beliefs(as_)  # type: ignore[arg-type]
    names = [v.strip() for v in (unknown_priors or "").split(",") if v.strip()]
    progress = not quiet and sys.stderr.isatty()
    sampling = {"draws": draws, "warmup": draws // 2 + 100, "seed": seed, "progress": progress}
    joint = None
    if names:  # first, so that a name that is no root variable fails before any sampling
        if progress:
            typer.echo(f"Sampling the values with the priors of {', '.join(names)} unknown:", err=True)
        joint = infer_values_and_beliefs(oracle, beliefs, observed, names, **sampling)
    if progress:
        typer.echo("Sampling the values with the beliefs as stated:", err=True)
    pinned = infer_values(oracle, beliefs, observed, **sampling)
    report: dict = {"party": as_, "choices": len(observed), "posterior": pinned.summary()}
    if joint is not None:
        report["with_unknown_beliefs"] = joint.summary()
        report["identifiability"] = identifiability(pinned, joint)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{len(observed)} choices by the {as_}; normalised utilities (utility / range), posterior mean and 90% interval:")
    for outcome, states in report["posterior"]["utilities"].items():
        for state, s in states.items():
            typer.echo(f"  {outcome}={state:<12} {s['mean']:+.3f}  [{s['interval'][0]:+.3f}, {s['interval'][1]:+.3f}]")
    b = report["posterior"]["beta"]
    typer.echo(f"  beta (rationality)    {b['mean']:.1f}  [{b['interval'][0]:.1f}, {b['interval'][1]:.1f}]")
    if "identifiability" in report:
        typer.echo("With the beliefs unknown too, the 90% intervals are wider by:")
        for name, n in report["identifiability"]["narrowing"].items():
            typer.echo(f"  {name:<20} pinning the beliefs narrows it by {100 * n:.0f}%")
        if report["identifiability"]["unidentified"]:
            typer.echo("Still unidentified: " + ", ".join(report["identifiability"]["unidentified"]))


@app.command("elicit")
def elicit(
    model: ModelArg,
    as_: AsOpt = None,
    max_questions: Annotated[int, typer.Option("--max-questions", min=1, help="Ask at most this many questions.")] = 20,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Ask the questions that pin your values down, until the decision no longer depends on them.

    First whether each state is better or worse than its outcome's reference state, then lotteries
    (a state for sure, or a chance of another), which of two states is worse, and choices between
    actions in concrete situations; answer 1 or 2 (s stops asking, q quits). Answers that cannot all
    hold are shown, and you withdraw one."""
    # torch and scipy: when the command runs
    from crux.values.elicit import SETTLED, Elicitor

    loaded = load_model(model)
    if loaded.scenario is None or loaded.network.decision is None:
        raise CruxError(f"{model}: values are elicited on a scenario with a decision")
    as_ = party(loaded, as_, "human")
    elicitor = Elicitor(make_oracle(loaded, device=device), loaded.beliefs(as_), seed=seed)  # type: ignore[arg-type]
    asked: list[dict] = []
    while True:
        best, stopped = elicitor.next_question(len(asked), max_questions)  # the library's stop rule
        if best is None:
            break
        question = best[0]
        reply = typer.prompt(f"{question.text()}\n  1) {question.first}\n  2) {question.second}\n", err=as_json).strip().lower()
        if reply in ("q", "quit", "s", "stop"):
            stopped = "declined"
            break
        if reply not in ("1", "2", question.first.lower(), question.second.lower()):
            typer.echo("answer 1 or 2 (s stops asking)", err=True)
            continue
        choice = question.first if reply in ("1", question.first.lower()) else question.second
        elicitor.answer(question, choice)
        asked.append({"question": question.text(), "answer": choice})
        clash = elicitor.conflicts()
        if clash:
            indices = [*clash, len(elicitor.asked) - 1]
            listing = "\n".join(f"  {k}) {elicitor.asked[i][0].text()} {elicitor.asked[i][1]}" for k, i in enumerate(indices, 1))
            while True:
                pick = typer.prompt(f"These answers cannot all hold; withdraw which?\n{listing}\n", err=as_json).strip()
                if pick.isdigit() and 1 <= int(pick) <= len(indices):
                    break
                typer.echo(f"answer 1 to {len(indices)}", err=True)
            gone = indices[int(pick) - 1]
            text = elicitor.asked[gone][0].text()
            elicitor.withdraw(gone)
            next(a for a in asked if a["question"] == text and "withdrawn" not in a)["withdrawn"] = True
    action, agreement = elicitor.decision()
    result = {
        "questions": asked,
        "decision": action,
        "stopped": stopped,
        "settled": agreement >= SETTLED,
        "agreement": agreement,
        "utilities": elicitor.summary(),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"After {len(asked)} answers: {stopped_text(result, who='you')}.")
    for outcome, states in result["utilities"].items():
        for name, s in states.items():
            typer.echo(f"  {outcome}={name:<12} {s['mean']:+.3f}  [{s['interval'][0]:+.3f}, {s['interval'][1]:+.3f}]")
