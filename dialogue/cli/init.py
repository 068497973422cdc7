"""``crux init``: write a commented starter scenario to edit into your own."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Annotated

import typer
from crux.dialogue.cli.options import JsonOpt
from crux.worldmodel.errors import CruxError
from crux.worldmodel.files import write_atomically

DEFAULT_NAME = "scenario"
SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""A plain file name: no folders (they go in --out), nothing a shell or a YAML reader trips on."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

STARTER = """\
# A starter Crux scenario, written by `crux init`.  Every field is commented with what it
# means and, for the optional ones, its default.  Edit it into your own decision, then:
#   crux validate {file}              check it (every problem, one per line)
#   crux session {file} --headless    run the session; the human is scripted from this file
#   crux session {file}               the same in the terminal UI, with you as the human
#   crux ask {file} "what happens if start=today"    ask the oracle
# The format is described in Crux's repository, docs/scenario.md; `crux schema` prints its
# JSON Schema, every field described.
#
# The story: a hiking group must decide whether to start the summit climb today or wait
# for tomorrow.  The agent has seen a storm forecast and a rescue log; the group's leader
# (the human) expects clear weather and thinks a storm on the mountain is no great danger.
# They disagree at first about what is true (a belief disagreement); once the agent has
# shared both facts, they agree.  Try `accept_min_reliability: 0.9` below: the leader
# then rejects the forecast, and the disagreement stays one about beliefs.

# format version: always 1 (required)
crux: 1
# a short identifier, shown in reports (required)
name: {name}
# what the scenario is about, for people (optional; default "")
description: >
  A hiking group decides whether to start the summit climb today or wait for
  tomorrow. The agent and the group's leader disagree about the weather, and
  about how dangerous a storm on the mountain is.

# -- the world: the causal model whose structure both parties share -------------------------
world:
  variables:
    # A root variable: `states` (two or more, unique names) and a `prior`, one probability
    # per state, summing to 1.  Quote state names YAML would read otherwise: "yes", "no",
    # "on", "off", "true", "false", numbers and dates.
    weather:
      states: [clear, storm]
      prior: [0.7, 0.3]
      strength: 10        # Dirichlet concentration of the prior and of each table row
                          # (default 10): a row p is the mean of Dirichlet(strength * p);
                          # higher means surer, and counts facts move it less.

    # The decision: a root variable with no prior; its states are the actions (a tie
    # between two actions goes to the one listed first).
    start:
      states: [today, tomorrow]

    # A child: `parents` (default [], a root), then a `table` with one row per combination
    # of parent states.
    # A row's key lists the parents' states in `parents` order, joined by ", "; each row
    # gives P(state | parents) and sums to 1.  Every combination needs a row.
    caught_out:
      states: [safe, caught]
      parents: [weather, start]
      table:
        clear, today:    [0.97, 0.03]
        clear, tomorrow: [0.97, 0.03]
        storm, today:    [0.50, 0.50]
        storm, tomorrow: [0.95, 0.05]
      # strength: 10      # (default 10) as for weather; row_strength: {{"storm, today": 50}}
                          # would make that one row surer than the others

    summit:
      states: [reached, missed]
      parents: [weather, start]
      table:
        clear, today:    [0.90, 0.10]
        clear, tomorrow: [0.60, 0.40]
        storm, today:    [0.40, 0.60]
        storm, tomorrow: [0.60, 0.40]

  decision: start                 # the variable whose states are the actions (required)
  outcomes: [caught_out, summit]  # what the parties' values score, and what `crux ask`
                                  # reports by default (required)
  # reference: {{summit: reached}}  # each outcome's reference state, of utility 0
                                  # (default: its first state)

# -- facts: the evidence that can be exchanged, by id ---------------------------------------
facts:
  forecast:
    text: The mountain forecast gives a storm this afternoon.   # a sentence a person reads (required)
    source: weather service     # who or what reports it (required; `responds` can reject by it)
    reliability: 0.8            # observe facts: the chance the report is right (default 1.0);
                                # soft evidence: likelihood 0.8 for storm, 0.2 for clear
    observe: {{weather: storm}}   # evidence about the case at hand: {{variable: state}}
  rescue_log:
    text: The rescue log records 20 groups caught out in 40 climbs started on a storm day.
    source: mountain rescue
    counts:                     # evidence about how the world works: counts added to one
      variable: caught_out      # row of this variable's table (its Dirichlet) ...
      given: {{weather: storm, start: today}}   # ... the row these parent states select
      counts: {{caught: 20, safe: 20}}          # observed counts per state (unlisted: 0)

# -- parties: the agent and the human, each with beliefs and values -------------------------
parties:
  agent:
    beliefs:
      knows: [forecast, rescue_log]   # facts this party holds at the start (default [])
      # priors: {{}}                    # the world's numbers, unless overridden (default {{}})
    values:                     # utilities {{outcome: {{state: utility}}}}: unlisted states
      caught_out: {{caught: -100}}  # are 0, and utilities add up over outcomes; each party's
      summit: {{missed: -20}}       # are rescaled to [0, 1] before they are compared
                                  # (`--predict-only` sessions never read the agent's)

  human:
    beliefs:
      priors:                   # this party's own numbers, overriding the world's:
        weather: [0.9, 0.1]     # a root variable's prior as a list,
        caught_out:             # or some rows of a table as {{"row key": [...]}}
          storm, today: [0.8, 0.2]
      knows: []                 # holds no fact at the start
    values:                     # `values: unknown` would have the session ask the human
      caught_out: {{caught: -60}}   # for them after the exchange (then responds.values gives
      summit: {{missed: -30}}       # the answers of a scripted human)
    responds:                   # how the scripted human of `--headless` answers offers
      accept_min_reliability: 0.7   # reject observe facts below this reliability (default 0.0)
      rejects_sources: []           # reject every fact from these sources (default [])
      rejects: []                   # reject these fact ids (default [])
"""


def starter(name: str, file: str) -> str:
    """The starter scenario's text: ``name`` as its name, ``file`` in the commands it shows."""
    return STARTER.format(name=json.dumps(name, ensure_ascii=False), file=shlex.quote(file))


def target(name: str | None, out: Path | None) -> tuple[str, Path]:
    """The scenario's name and the file to write, from NAME and --out."""
    file = None
    if name is not None:
        if not _NAME.match(name):
            shown = json.dumps(name, ensure_ascii=False)
            why = "a folder goes in --out" if ("/" in name or os.sep in name) else "use letters, digits, '-', '_' and '.'"
            raise typer.BadParameter(f"{shown} is not a plain name ({why}); or give the file with --out PATH", param_hint="'NAME'")
        if name.lower().endswith(SUFFIXES):  # NAME.yaml or NAME.yml: that file, named NAME
            file, name = name, name[: name.rfind(".")]
    if out is not None:
        if _CONTROL.search(str(out)):
            raise typer.BadParameter(f"{json.dumps(str(out))}: a file name without control characters", param_hint="'--out'")
        if out.suffix.lower() not in SUFFIXES:
            raise typer.BadParameter(f"{out}: a scenario written by crux init ends in .yaml or .yml", param_hint="'--out'")
        return (name or out.stem or DEFAULT_NAME), out
    name = name or DEFAULT_NAME
    return name, Path(file or f"{name}.yaml")


def write_new(path: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed into place: a crash
    leaves no half-written scenario.  Without ``force`` an existing file is never replaced, even
    one that appears while this writes (the temporary file is linked in, which fails if it does)."""
    if path.is_dir():
        raise CruxError(f"{path}: is a folder; give the scenario file's name")
    if not path.parent.is_dir():
        raise CruxError(f"{path}: the folder {path.parent} does not exist; create it first")
    if path.exists() and not force:
        raise CruxError(_EXISTS.format(path=path))
    write_atomically(path, text, replace=force, exists=_EXISTS.format(path=path))


_EXISTS = "{path}: exists; crux init writes over no file: give another NAME or --out, or --force to replace it"


def init(
    name: Annotated[
        str | None,
        typer.Argument(
            help=f"The scenario's name; the file is NAME.yaml in the working directory (default: {DEFAULT_NAME}).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the scenario to this file (.yaml or .yml) instead of NAME.yaml."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a commented starter scenario, NAME.yaml, that validates and runs: edit it into your own."""
    scenario_name, path = target(name, out)
    write_new(path, starter(scenario_name, str(path)), force)
    if as_json:
        typer.echo(json.dumps({"written": str(path)}))
        return
    file = shlex.quote(str(path))
    typer.echo(f"wrote {path}: a starter scenario (climb today or tomorrow?), every field commented.")
    typer.echo("Next:")
    typer.echo(f"  crux validate {file}              check it")
    typer.echo(f"  crux session {file} --headless    run a session, the human scripted from the file")
    typer.echo(f"  crux session {file}               the same in the terminal UI, with you as the human")
    typer.echo(f'  crux ask {file} "what happens if start=today"   ask the oracle')
