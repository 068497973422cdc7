"""Option aliases shared by the commands (one place for names, defaults and help)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

ModelArg = Annotated[
    Path,
    typer.Argument(help="A scenario file (.yaml, .yml, .json).", show_default=False),
]
AnyModelArg = Annotated[
    Path,
    typer.Argument(help="A scenario file (.yaml, .yml, .json) or a Bayesian network (.bif, .bif.gz).", show_default=False),
]
"""For the commands that serve a BIF model too (ask, validate; spec/CLI.md, Models)."""
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Where to compute: auto (cuda when present), cpu or cuda.")
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=2, help="Draws of the Dirichlet rows behind each 90% credible interval.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of those draws (answers are reproducible).")]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method", help="auto (exact when it fits in memory, else sampled), exact (refuse what does not fit) or sampled."
    ),
]
ParticlesOpt = Annotated[int, typer.Option("--particles", min=100, help="Monte Carlo particles of a sampled answer.")]
def _memory(value: float) -> float:
    if not math.isfinite(value) or value <= 0 or value > MAX_MEMORY_GIB:
        raise typer.BadParameter(f"give a number of GiB above 0 and at most {MAX_MEMORY_GIB:,} (got {value:g})")
    return value


MAX_MEMORY_GIB = 1 << 20
"""The largest --max-memory taken (GiB): any real machine's memory, and still a finite number."""
MaxMemoryOpt = Annotated[
    float,
    typer.Option(
        "--max-memory", callback=_memory,
        help="GiB allowed for an exact contraction's largest intermediate and for the draws behind intervals.",
    ),
]
Float32Opt = Annotated[
    bool, typer.Option("--float32", help="Compute in float32 (faster on a GPU; float64 is the default, for exactness).")
]
