"""``crux ask``: what happens if ..."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from crux.dialogue.cli.options import (
    AnyModelArg, AsOpt, DeviceOpt, Float32Opt, JsonOpt, MaxMemoryOpt, MethodOpt, ParticlesOpt, SamplesOpt, SeedOpt, make_oracle,
    party,
)
from crux.oracle.query import Query, assignments, parse_assignment, parse_question
from crux.worldmodel.errors import CruxError
from crux.worldmodel.files import read_text
from crux.worldmodel.model import check_model_format, load_model

if TYPE_CHECKING:
    from crux.oracle.oracle import Oracle


def ask(
    model: AnyModelArg,
    question: Annotated[
        Optional[str],
        typer.Argument(
            help="'what happens if A=a [and B=b] [given C=c [and D=d]]' (case-insensitive, '?' allowed).",
            show_default=False,
        ),
    ] = None,
    do: Annotated[list[str], typer.Option("--do", help="Intervene: VAR=STATE (repeatable).")] = [],
    given: Annotated[list[str], typer.Option("--given", help="Observe: VAR=STATE (repeatable).")] = [],
    outcome: Annotated[
        list[str], typer.Option("--outcome", help="Report this variable (repeatable; default: the model's outcomes).")
    ] = [],
    as_: AsOpt = None,
    batch: Annotated[
        Optional[Path],
        typer.Option(
            "--batch",
            help="Many queries, one JSON object per line ({\"do\": {}, \"given\": {}, \"outcomes\": [], \"as\": \"agent\"}; "
            "'-' reads stdin); prints one JSON answer per line, in order. A line that cannot be read or answered "
            "gets {\"line\": N, \"error\": {\"message\": ..., \"problems\": [...]}} instead; the others are answered, "
            "stderr says how many failed and the exit code is 1.",
        ),
    ] = None,
    samples: SamplesOpt = 1000,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    method: MethodOpt = "auto",
    particles: ParticlesOpt = 100_000,
    max_memory_gib: MaxMemoryOpt = 2.0,
    steps: Annotated[
        Optional[int],
        typer.Option("--steps", min=0, help="Unroll a scene's dynamics this many steps; outcomes are reported per step (NAME@t)."),
    ] = None,
    float32: Float32Opt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ask the oracle what happens if you do something, given what you see (--as: the agent's
    beliefs by default, a BIF network's own)."""
    check_model_format(model)
    loaded = load_model(model, steps=steps)
    oracle = make_oracle(
        loaded, device=device, samples=samples, seed=seed, method=method, particles=particles,
        max_memory_gib=max_memory_gib, float32=float32,
    )
    if batch is not None:
        if question or do or given or outcome or as_:
            raise typer.BadParameter("--batch takes its queries from the file: drop QUESTION, --do, --given, --outcome and --as")
        answer_batch(batch, oracle)
        return
    asked_do, asked_given = parse_question(question) if question else ({}, {})
    query_do = assignments([*asked_do.items(), *(parse_assignment(d, "--do") for d in do)], "do")
    query_given = assignments([*asked_given.items(), *(parse_assignment(g, "--given") for g in given)], "given")
    as_ = party(loaded, as_, loaded.default_party)
    query = Query(do=query_do, given=query_given, outcomes=outcome, as_=as_)
    answer = oracle.ask(query)
    if as_json:
        typer.echo(finite_json(answer.to_json()))
    else:
        from crux.dialogue.cli.render import print_answer  # rich's tables only for people

        print_answer(answer)


def finite_json(data: dict) -> str:
    """JSON of an answer; numbers too large to be finite are an error, not invalid JSON."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError:
        raise CruxError("the answer is not a finite number (are the values given far too large?)") from None


def answer_batch(path: Path, oracle: Oracle) -> None:
    """Answer a JSON-lines file of queries (:func:`oracle.lines.answer_lines`): one output line per
    query, in order, errors on their own lines; exit 1 if any failed."""
    from crux.oracle.lines import answer_lines

    name = "<stdin>" if str(path) == "-" else str(path)
    text = sys.stdin.read() if str(path) == "-" else read_text(path, "a file of queries")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise CruxError(f"{name}: no queries (one JSON object per line)")
    out, failed = answer_lines(oracle, lines)
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
    if failed:
        typer.echo(f"{name}: {failed:,} of {len(out):,} queries could not be answered (see their lines)", err=True)
        raise typer.Exit(1)
