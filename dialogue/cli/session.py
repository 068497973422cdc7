"""``crux session``, ``crux replay`` and ``crux beliefs``: sessions and belief graphs."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from crux.dialogue.cli.options import (
    AnyModelArg, AsOpt, DeviceOpt, JsonOpt, MaxMemoryOpt, MethodOpt, ModelArg, ParticlesOpt, make_oracle, party,
)
from crux.dialogue.report import build_report, render
from crux.dialogue.transcript import read_events
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import load_model


def session(
    model: ModelArg,
    headless: Annotated[bool, typer.Option("--headless", help="No UI: the human is scripted from the scenario.")] = False,
    predict_only: Annotated[
        bool, typer.Option("--predict-only", help="The agent holds no values: it only predicts; the human decides.")
    ] = False,
    transcript: Annotated[
        Optional[Path],
        typer.Option(
            "--transcript",
            help="Append every event to this file (JSON lines) as it happens. Without it, a session in the "
            "terminal UI is still written, to crux-sessions/SCENARIO-TIME.jsonl in the working directory.",
        ),
    ] = None,
    resume: Annotated[
        Optional[Path], typer.Option("--resume", help="Continue an interrupted session from its transcript.")
    ] = None,
    device: DeviceOpt = "auto",
    method: MethodOpt = "auto",
    max_memory_gib: MaxMemoryOpt = 2.0,
    particles: ParticlesOpt = 100_000,
    as_json: JsonOpt = False,
) -> None:
    """Run a belief-reconciliation session between the agent and the human.

    Interactive by default (a terminal UI in which you are the human); --headless scripts the human.
    """
    # torch: when the command runs, not for --help
    from crux.dialogue.session import LiveSession, run_session

    if transcript is not None and resume is not None:
        raise typer.BadParameter("--resume appends to the transcript it reads: drop --transcript")
    loaded = load_model(model)
    oracle = make_oracle(loaded, device=device, method=method, max_memory_gib=max_memory_gib, particles=particles)
    notes: dict[str, None] = {}
    mode = "predict-only" if predict_only else None  # None: full, or as the resumed transcript was
    if headless:
        oracle.on_sampling = lambda text: _note_once(notes, text, live=True)
        report, _ = run_session(model, loaded, oracle, mode=mode, transcript=transcript, resume=resume)
        typer.echo(json.dumps(report) if as_json else render(report))
        return
    from crux.dialogue.tui.app import make_app  # textual only when a person is at the keyboard

    oracle.on_sampling = lambda text: _note_once(notes, text, live=False)  # said after the UI closes

    if transcript is None and resume is None:
        transcript = default_transcript(model)
    live = LiveSession(model, loaded, oracle, mode=mode, transcript=transcript, resume=resume)
    saved = transcript or resume
    again = f"crux session {shlex.quote(str(model))} --resume {shlex.quote(str(saved))}"
    try:
        make_app(live, resume_command=again).run()
    finally:
        live.close()
        for text in notes:
            typer.echo(f"note: {text}", err=True)
    report = live.report()
    if as_json:
        typer.echo(json.dumps(report))
    elif report["complete"]:
        typer.echo(render(report))
        typer.echo(f"\nTranscript: {saved}; report: {live.report_path()}")
    else:
        typer.echo(f"Session left before the decision; it is saved in {saved}. To go on: {again}")


def _note_once(notes: dict[str, None], text: str, live: bool) -> None:
    """Keep the oracle's first note (one says what the others would); on stderr at once when ``live``."""
    if not notes:
        notes[text] = None
        if live:
            typer.echo(f"note: {text}", err=True)


def default_transcript(model: Path) -> Path:
    """Where a terminal session is written when no --transcript is given: crux-sessions/STEM-TIME.jsonl."""
    folder = Path("crux-sessions")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as err:
        raise CruxError(f"{folder}: cannot keep the session there: {err}; pass --transcript PATH") from None
    name = f"{Path(model).name.split('.')[0]}-{datetime.now():%Y%m%d-%H%M%S}"
    path, n = folder / f"{name}.jsonl", 1
    while path.exists():  # two sessions started within a second
        n += 1
        path = folder / f"{name}-{n}.jsonl"
    return path


def replay(
    transcript: Annotated[Path, typer.Argument(help="A transcript written by crux session --transcript.")],
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a session's report from its transcript alone."""
    from crux.dialogue.session import check_complete

    events = read_events(transcript)
    check_complete(transcript, events)
    report = build_report(events)
    typer.echo(json.dumps(report) if as_json else render(report))


class Format(str, Enum):
    json = "json"
    dot = "dot"
    graphml = "graphml"


def beliefs(
    model: AnyModelArg,
    as_: AsOpt = None,
    fmt: Annotated[Format, typer.Option("--format", help="json, dot (Graphviz) or graphml.")] = Format.json,
    device: DeviceOpt = "auto",
) -> None:
    """Export a party's belief graph: variables with marginals, facts with source and reliability
    (--as: agent, the default, or human)."""
    from crux.beliefs.export import belief_graph, to_dot, to_graphml, to_json
    from crux.beliefs.graph import BeliefGraph

    loaded = load_model(model)
    if loaded.scenario is None:
        raise CruxError(
            f"{model}: a Bayesian network has no parties and no facts, so no belief graph to export; "
            f"its marginals are what `crux ask {model}` answers, and `crux validate {model}` checks it"
        )
    as_ = party(loaded, as_, "agent", parties=("agent", "human"))
    graph = belief_graph(BeliefGraph.initial(loaded.scenario, loaded.network, as_), make_oracle(loaded, device=device))
    if fmt is Format.json:
        typer.echo(json.dumps(to_json(graph), indent=2))
    elif fmt is Format.dot:
        typer.echo(to_dot(graph), nl=False)
    else:
        typer.echo(to_graphml(graph), nl=False)
