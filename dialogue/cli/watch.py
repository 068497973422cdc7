"""``crux watch``: follow a stream of observations of a scene, keep a posterior over what each
observed entity is, flag what its type does not explain and re-type it when the evidence turns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from crux.dialogue.cli.errors import json_errors
from crux.dialogue.cli.options import AsOpt, DeviceOpt, ModelArg
from crux.beliefs.thresholds import ADOPT, BAYES_FACTOR, settings_problem
from crux.oracle.query import assignments, parse_assignment
from crux.worldmodel.errors import CruxError


def watch(
    model: ModelArg,
    observations: Annotated[
        Path,
        typer.Argument(
            help='Observations, one JSON object a line: {"t": 0, "entity": "e", "attribute": "a", "value": "s"}.',
            show_default=False,
        ),
    ],
    do: Annotated[
        list[str], typer.Option("--do", help="Hold a variable fixed while watching, e.g. the decision: VAR=STATE (repeatable).")
    ] = [],
    as_: AsOpt = None,
    adopt: Annotated[
        float, typer.Option("--adopt", help="The posterior a type needs for an entity to be re-typed to it (above 0.5, at most 1).")
    ] = ADOPT,
    bayes_factor: Annotated[
        float,
        typer.Option("--bayes-factor", help="Flag an observation that takes the evidence against the entity's type to this Bayes factor (above 1)."),
    ] = BAYES_FACTOR,
    learn_new: Annotated[
        Optional[Path],
        typer.Option("--learn-new", help="Write the new kinds entities were re-typed to as a library file (types: ...) for `use`."),
    ] = None,
    save: Annotated[
        Optional[Path], typer.Option("--save", help="Write the scene with its entities as re-typed, to run as a session.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write --learn-new and --save over files that exist.")] = False,
    device: DeviceOpt = "auto",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", callback=json_errors,
            help="Print one JSON object per observation, one a line, then one {\"summary\": ...} object.",
        ),
    ] = False,
) -> None:
    """Keep a posterior over the type of each observed entity (the library's types, its type in the
    scene and a new kind), updated by every observation's predictive probability; re-type an
    entity when a type's posterior reaches --adopt. Flag an observation at or beyond the model's
    own 1% tail of surprise, or that takes the evidence against the entity's type past
    --bayes-factor. Predicts as the agent unless --as says otherwise."""
    # settings and paths first, and without torch: a mistake costs nothing
    problem = settings_problem(adopt, bayes_factor)
    if problem is not None:
        raise CruxError(problem)
    fixed = assignments((parse_assignment(item, "--do") for item in do), "do")
    from crux.beliefs.revision import watch as follow

    report = follow(
        model, observations, party=as_, do=fixed, device=device, adopt=adopt, bayes_factor=bayes_factor,
        learn_new=learn_new, save=save, force=force,
    )
    if as_json:
        for record in report.records:
            typer.echo(json.dumps(record))
        typer.echo(json.dumps({"summary": report.summary}))
    else:
        typer.echo(render(report.records, report.summary))
    for note in report.summary["notes"]:
        typer.echo(f"note: {note}", err=True)


def factor(log_bf: float | None) -> str:
    """A Bayes factor from its log: ``x45.2``, ``x3.1e+05``; ``x inf`` when a type is ruled out."""
    if log_bf is None or log_bf > 690:
        return "x inf" if log_bf is None else "x>1e300"
    return f"x{math.exp(log_bf):.3g}"


def render(records: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> str:
    """A table, one row per observation (with the leading type of the entity's posterior after
    it), the re-typings under the rows where they happen, and the summary."""

    def number(x: float | None, digits: int) -> str:
        return "inf" if x is None else f"{x:.{digits}f}"

    def flags(r: dict[str, Any]) -> str:
        why = []
        if "surprise" in r["flags"]:
            why.append("surprise")
        if "evidence" in r["flags"]:
            why.append(f"evidence {factor(r['evidence']['log_bf'])} for {r['evidence']['for']}")
        return "FLAG " + ", ".join(why) if why else ""

    def leader(r: dict[str, Any]) -> str:
        name, p = next(iter(r["posterior"].items()), ("-", 0.0))
        return f"{name} {p:.3f}"

    head = ("t", "entity", "attribute", "value", "type", "p", "surprise", "threshold", "posterior", "")
    rows = [
        (
            str(r["t"]), r["entity"], r["attribute"], r["value"], r["type"], f"{r['p']:.4f}",
            number(r["surprise"], 3), "-" if r["threshold"] is None else f"{r['threshold']:.3f}", leader(r), flags(r),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    right = {0, 5, 6, 7}

    def line(row: tuple[str, ...]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    out = [line(head)]
    for r, row in zip(records, rows):
        out.append(line(row))
        for event in r.get("retyped", ()):
            out += _retyped(event)
    if summary is not None:
        out += _summary(records, summary)
    return "\n".join(out)


def _retyped(event: dict[str, Any]) -> list[str]:
    """The lines under the observation after which an entity was re-typed."""
    to = f"{event['to']}, a new kind (no library type fits)" if event["new"] else event["to"]
    shown = ", ".join(f"{name} {p:.3f}" for name, p in event["posterior"].items())
    seen = f"{event['seen']} observation{'s' if event['seen'] != 1 else ''} of it"
    why = f"{event['from']} is ruled out" if event["why"] == "ruled out" else f"posterior {event['posterior'][event['to']]:.3f}"
    lines = [f"    re-typed {event['entity']} {event['from']} -> {to} after {seen} ({why})", f"      posterior: {shown}"]
    if event["moved_by"]:
        moved = ", ".join(
            f"{m['attribute']}={m['value']} at t={m['t']} ({factor(m['log_bf'])})"
            if m["entity"] == event["entity"] else f"{m['entity']}.{m['attribute']}={m['value']} at t={m['t']} ({factor(m['log_bf'])})"
            for m in event["moved_by"]
        )
        lines.append(f"      moved most by: {moved}")
    return lines


def _summary(records: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The last lines: candidates left out, flags and re-typings, files written (notes go to stderr)."""
    out = []
    for entity, found in summary["entities"].items():
        by_reason: dict[str, list[str]] = {}
        for name, why in found["skipped"].items():
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            out.append(f"{entity} is not compared with {', '.join(names)}: {why}")
    retyped = [
        f"{e['entity']} {e['from']} -> {e['to']}{' (new)' if e['new'] else ''} at t={e['t']} (posterior {e['posterior']:.3f})"
        for e in summary["retyped"]
    ]
    flagged = f"{summary['flagged']} of {len(records)} observations flagged"
    out.append(flagged + (f"; re-typed: {', '.join(retyped)}." if retyped else "; no entity re-typed."))
    for entry in summary["new_types"]:
        if entry["file"] is not None:
            out.append(f"wrote the new type {entry['name']} (learned from {entry['entity']}) to {entry['file']}")
    if summary.get("saved"):
        out.append(f"saved the scene as re-typed to {summary['saved']}")
    return out
