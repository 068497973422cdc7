"""``crux watch``: follow a stream of observations of a scene and flag what its types do not explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crux.dialogue.cli.errors import json_errors
from crux.dialogue.cli.options import AsOpt, DeviceOpt, ModelArg
from crux.oracle.query import assignments, parse_assignment


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
    device: DeviceOpt = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", callback=json_errors, help="Print one JSON object per observation, one a line.")
    ] = False,
) -> None:
    """Report each observation's surprise (-log of its predictive probability) and flag those above
    the model's own 99th percentile; on a flag, score the library's types for the entity and adopt
    the best."""
    # torch: when the command runs, not for --help
    from crux.beliefs.revision import watch as follow

    fixed = assignments((parse_assignment(item, "--do") for item in do), "do")
    records = follow(model, observations, party=as_, do=fixed, device=device)
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    typer.echo(render(records))


def render(records: list[dict[str, Any]]) -> str:
    """A table, one row per observation, with the candidates and adoptions under the flags."""

    def number(x: float | None, digits: int) -> str:
        return "inf" if x is None else f"{x:.{digits}f}"

    head = ("t", "entity", "attribute", "value", "type", "p", "surprise", "threshold", "")
    rows = [
        (
            str(r["t"]), r["entity"], r["attribute"], r["value"], r["type"], f"{r['p']:.4f}",
            number(r["surprise"], 3), "-" if r["threshold"] is None else f"{r['threshold']:.3f}",
            "FLAG" if r["flagged"] else "",
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
        if "candidates" in r:
            shown = ", ".join(f"{name} {p:.3f}" for name, p in r["candidates"].items())
            out.append(f"    candidates for {r['entity']} (posterior): {shown}")
            for name, why in r.get("skipped", {}).items():
                out.append(f"    {name} does not fit the scene: {why}")
            if "adopted" in r:
                out.append(f"    adopted {r['adopted']}: {r['entity']} is re-typed from {r['type']}")
    flagged = sum(r["flagged"] for r in records)
    adopted = [f"{r['entity']} {r['type']} -> {r['adopted']} at t={r['t']}" for r in records if "adopted" in r]
    summary = f"{flagged} of {len(records)} observations flagged"
    out.append(summary + (f"; re-typed: {', '.join(adopted)}." if adopted else "."))
    return "\n".join(out)
