"""``crux ask``: what happens if ..."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from pydantic import ValidationError

from crux.dialogue.cli.options import (
    AnyModelArg, AsOpt, DeviceOpt, Float32Opt, JsonOpt, MaxMemoryOpt, MethodOpt, ParticlesOpt, SamplesOpt, SeedOpt, make_oracle,
)
from crux.dialogue.cli.render import print_answer
from crux.oracle.query import Query, QueryError, Resolved, parse_assignment, parse_question
from crux.worldmodel.errors import CruxError
from crux.worldmodel.jsontext import loads as strict_json
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
            "'-' reads stdin); prints one JSON answer per line, in order.",
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
        queries = read_batch(batch, oracle)
        for answer in oracle.ask_many(queries):
            typer.echo(finite_json(answer.to_json()))
        return
    query_do: dict[str, str] = {}
    query_given: dict[str, str] = {}
    if question:
        query_do, query_given = parse_question(question)
    query_do.update(parse_assignment(d, "--do") for d in do)
    query_given.update(parse_assignment(g, "--given") for g in given)
    if as_ is not None and as_ not in loaded.parties:
        raise QueryError(f"--as {as_!r}: this model answers as {', '.join(loaded.parties)}")
    query = Query(do=query_do, given=query_given, outcomes=outcome, as_=as_)
    answer = oracle.ask(query)
    if as_json:
        typer.echo(finite_json(answer.to_json()))
    else:
        print_answer(answer)


def finite_json(data: dict) -> str:
    """JSON of an answer; numbers too large to be finite are an error, not invalid JSON."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError:
        raise CruxError("the answer is not a finite number (are the values given far too large?)") from None


def _strict_json(text: str):
    """A JSON value, refusing what Python's json lets through (:mod:`worldmodel.jsontext`)."""
    try:
        return strict_json(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise ValueError("nested too deeply: one query object a line") from None


def read_batch(path: Path, oracle: Oracle) -> list[Resolved]:
    """Queries from a JSON-lines file, each checked once against the oracle's model; every bad
    line is reported (``FILE: line N: ...``) before any runs."""
    name = "<stdin>" if str(path) == "-" else str(path)
    lines = (sys.stdin.read() if str(path) == "-" else read_text(path, "a file of queries")).splitlines()
    queries: list[Resolved] = []
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            queries.append(oracle.resolve(Query.model_validate(_strict_json(line))))
        except ValueError as err:  # not JSON, a key twice, a number that is not finite or too long
            if not isinstance(err, ValidationError):
                problems.append(f"{name}: line {n}: {err}")
                continue
            for e in err.errors(include_url=False):
                where = ".".join(str(p) for p in e["loc"])
                problems.append(f"{name}: line {n}: {where + ': ' if where else ''}{e['msg']}")
        except QueryError as err:
            problems.append(f"{name}: line {n}: {err}")
    if problems:
        raise CruxError("\n".join(problems))
    if not queries:
        raise CruxError(f"{name}: no queries (one JSON object per line)")
    return queries
