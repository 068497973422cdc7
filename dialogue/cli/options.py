"""Option aliases shared by the commands (one place for names, defaults and help)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from crux.dialogue.cli.errors import json_errors

if TYPE_CHECKING:
    from crux.oracle.oracle import Oracle
    from crux.worldmodel.model import Model

ModelArg = Annotated[
    Path,
    typer.Argument(help="A scenario file (.yaml, .yml, .json).", show_default=False),
]
AnyModelArg = Annotated[
    Path,
    typer.Argument(help="A scenario file (.yaml, .yml, .json) or a Bayesian network (.bif, .bif.gz).", show_default=False),
]
"""For the commands that serve a BIF model too (ask, validate; spec/CLI.md, Models)."""
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", callback=json_errors, help="Print one JSON document on stdout, nothing else (an error too, exit code 1)."
    ),
]
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

AsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--as", show_default=False,
        help="Whose beliefs: agent, human or world (a BIF network: its own; default: the command's, named in its help).",
    ),
]
"""Every command's --as: one name, one help; each command says which party it takes by default."""


def party(model: Model, chosen: str | None, default: str, *, parties: tuple[str, ...] | None = None) -> str:
    """The party --as names (``default`` when not given), checked against the model's parties (or
    ``parties``, for a command that takes fewer): one error for every command."""
    from crux.worldmodel.errors import CruxError

    name = default if chosen is None else chosen
    valid = parties if parties is not None else tuple(model.parties)
    if name not in valid:
        listed = valid[0] if len(valid) == 1 else f"{', '.join(valid[:-1])} or {valid[-1]}"
        raise CruxError(f"--as {name!r}: use {listed}")
    return name


def oracle_settings(
    *, device: str = "auto", samples: int = 1000, seed: int = 0, method: str = "auto", particles: int = 100_000,
    max_memory_gib: float = 2.0, float32: bool = False,
) -> dict:
    """The Oracle's keyword arguments from the shared options (the server passes them on too)."""
    import torch

    return {
        "device": device, "samples": samples, "seed": seed, "method": method, "particles": particles,
        "max_bytes": int(max_memory_gib * 2**30), "dtype": torch.float32 if float32 else torch.float64,
    }


def make_oracle(model: Model, **options) -> Oracle:
    """An Oracle on ``model`` from the shared options (:func:`oracle_settings`' names)."""
    from crux.oracle.oracle import Oracle

    return Oracle(model, **oracle_settings(**options))
