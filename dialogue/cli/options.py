"""Option aliases shared by the commands (one place for names, defaults and help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelArg = Annotated[
    Path,
    typer.Argument(help="A scenario file (.yaml, .yml, .json).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Where to compute: auto (cuda when present), cpu or cuda.")
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=2, help="Draws of the Dirichlet rows behind each 90% credible interval.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of those draws (answers are reproducible).")]
