"""``crux learn``: fit a model's rows to a table of observed cases and write the learned model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from crux.dialogue.cli.options import JsonOpt, ModelArg

if TYPE_CHECKING:
    from crux.worldmodel.learn import LearnReport


def learn(
    model: ModelArg,
    data: Annotated[
        Path,
        typer.Argument(
            help="A CSV of observed cases: a header of variable names (a scene's entity.attribute, NAME@t for "
            "steps), one row per case, an empty cell where a value is missing.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Where to write the learned model (default: NAME.learned.yaml next to MODEL)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write over files that exist: --out, the learned library copies, even MODEL itself.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Learn a model's table rows from data: each row seen in DATA.csv moves toward what was seen,
    and grows more certain (row_strength); a scene's entities of one type pool into the type's table."""
    # torch: when the command runs, not for --help
    from crux.worldmodel.learn import default_out, learn_file

    _, report = learn_file(model, data, out if out is not None else default_out(model), force=force)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        print_report(report)


def print_report(report: LearnReport) -> None:
    rows = f"{report.rows} row{'s' if report.rows != 1 else ''}"
    skipped = f"; {report.skipped} counted nothing (missing values)" if report.skipped else ""
    typer.echo(f"read {rows} of {report.data}{skipped}")
    if not report.learned:
        typer.echo("learned nothing: no row completes a variable and all its parents")
    width = max((len(label) for label in report.learned), default=0)
    for label, rows_learned in report.learned.items():
        missing = report.incomplete.get(label, 0)
        more = f" ({missing} more with a parent missing)" if missing else ""
        n = report.families.get(label, 0)
        typer.echo(f"  {label:<{width}}  {n} case{'' if n == 1 else 's'}{more}")
        for key, row in rows_learned.items():
            counts = ", ".join(f"{s}: {n}" for s, n in row.counts.items())
            p = ", ".join(f"{x:.3g}" for x in row.p)
            typer.echo(f"    {key or '(prior)'}: +{{{counts}}} -> [{p}], strength {row.strength:g}")
    for label, missing in report.incomplete.items():
        if label not in report.learned:
            typer.echo(f"  {label:<{width}}  0 cases ({missing} with a parent missing)")
    for ref, path in report.libraries.items():
        typer.echo(f"wrote the learned types of {ref} to {path}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {report.out}")
