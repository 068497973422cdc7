"""How fast is ``crux ask --batch`` as a whole process, side by side with a pyAgrum script?

Run::

    python -m bench.cli [--queries 100000] [--repeats 3] [--seed 0] [--skip-120]
                        [--pyagrum-evidence change|set] [--out FILE]

Everything runs as a user runs it: a whole process per file of queries (interpreter start,
imports, reading the model and the queries, answering, writing the answers), wall time, the
median of ``--repeats`` runs; on an alarm file Crux and pyAgrum take turns, run by run, so that
a busy spell of a shared machine falls on both (the header shows the load average).  Needs ``pyagrum`` for the comparison (without it, Crux's side
runs alone and the ratios are not measured) and, for float64 reference tables, ``pgmpy``.

**Query files** (JSON lines, ``{"do": {...}, "given": {...}, "outcomes": [...]}``, in a
temporary folder), ``--queries`` lines each, states drawn at random (seeded):

``one structure``  alarm (``tests/data/alarm.bif.gz``): do HYPOVOLEMIA, given HR and SAO2,
                   outcome BP; every line the same variables, the states differ.
``mixed``          alarm: each line a random do variable, a random evidence variable and a
                   random outcome, all three distinct.
``120 variables``  a generated scenario (:func:`bench.scenarios.generated`, 120 variables, 40
                   facts), 1,000 lines of mixed structure as the agent or the human (``"as"``,
                   at random), answered with 90% intervals (the default ``--samples``): each
                   line sets the decision (the scenario refuses an answer that depends on it
                   unset) and a random variable, sees a random variable and asks a random
                   outcome, all distinct.  Skipped with ``--skip-120``.

**Crux.**  ``crux ask MODEL --batch FILE > out`` (the ``crux`` beside this interpreter), every
option at its default.  A line whose evidence is impossible gets an error line and the exit
code is 1: a run counts when its output has one line per query and every line that is not an
error is an answer (exit code 0 with no error line, or 1 with some).

**pyAgrum.**  A plain script (written to the temporary folder, run by this interpreter) reads
the same lines and answers them as a careful pyAgrum user would: the network read with
``gum.loadBN`` from the decompressed BIF, its tables refilled with float64 numbers (pyAgrum's
parser reads numbers as float32, ~1e-8 off; the numbers come from pgmpy's reader, an
independent parse, or from Crux's reader where pgmpy is missing); per set of do variables a
mutilated network (their parent arcs erased, their tables uniform) and one
``gum.LazyPropagation`` on it, built on first use and kept; ``setTargets`` only when the
line's outcomes differ from the engine's last (so once for the one-structure file, nearly every
line of the mixed one); per line the do states as hard evidence (exactly do() on the mutilated
network, where they have no parents) and the seen states, ``makeInference()``,
``posterior(T).toarray()``.  The evidence goes in with ``chgEvidence`` per variable where the
line sees the same variables as the engine's last line (every line but the first of the
one-structure file: the engine keeps its join tree, about 3x faster than ``setEvidence`` there),
else with ``setEvidence`` (which erases the previous evidence, and makes the engine rebuild);
``--pyagrum-evidence set`` uses ``setEvidence`` on every line.  It writes one JSON line
per answer (the posterior of each outcome, a list of lists) or ``{"error": ...}`` where
pyAgrum raises ``IncompatibleEvidence``.  The JSON reader and writer are orjson's where
installed, as Crux's are.

**Agreement.**  Line by line: where both answered, the largest ``|crux p - pyAgrum p|`` over
every state (at most 1e-9 is agreement); lines where one answered and the other refused are
listed (they do not fail the run; a difference over 1e-9, or an answer that is not one number
per state, does).  Crux refuses every line whose evidence has probability 0; pyAgrum answers
many of them: its targeted engine drops what d-separation hides from the target, evidence
included (see ``python -m bench.oracle``'s probe), and it answers some that d-separation does
not hide either (here: do VENTALV=ZERO given PVSAT=HIGH, outcome CATECHOL, a child of SAO2, a
child of PVSAT).  Alarm has one table with zeros (PVSAT given FIO2 and VENTALV), so the random
files hold few such lines.

**In process.**  On the one-structure file: :meth:`Oracle.ask_columns` (the same queries as
columns of state indices; cold: a fresh oracle, warm: the best of three more calls), and
:func:`crux.oracle.lines.answer_lines` on both alarm files (a fresh oracle each, the median of
``--repeats``), so the share of the whole process outside the engine shows; ``start-up`` is
``crux ask MODEL "what happens if HYPOVOLEMIA=TRUE" --json`` as a whole process (one question,
every outcome).  The in-process output is compared with the process's, line for line.

Targets (issue): pyAgrum / Crux at least 5x on the one-structure file and 2x on the mixed one;
the 120-variable scenario's 1,000 queries in at most 30 s (killed after 300 s: "did not finish").
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.machine import describe
from bench.oracle import commit, fmt, table, version
from bench.scenarios import generated
from bench.sessions import crux_command, write_scenario

ROOT = Path(__file__).resolve().parent.parent
ALARM = ROOT / "tests" / "data" / "alarm.bif.gz"
ONE_DO, ONE_GIVEN, ONE_OUTCOME = "HYPOVOLEMIA", ("HR", "SAO2"), "BP"
QUESTION = f"what happens if {ONE_DO}=TRUE"
TOLERANCE = 1e-9
TARGET_ONE = 5.0
"""pyAgrum's whole process / Crux's, at least, on the one-structure file."""
TARGET_MIXED = 2.0
"""The same on the mixed file."""
TARGET_120 = 30.0
"""Seconds of the 120-variable scenario's 1,000 queries, at most."""
TIMEOUT_120 = 300.0
TIMEOUT = 1800.0
"""Seconds any other process may take."""
SCENARIO_SIZE = (120, 40)
SCENARIO_QUERIES = 1000
SHOWN = 10
"""Disagreeing lines listed per case."""

PYAGRUM_SCRIPT = r'''"""Answer JSON-lines queries with pyAgrum, as a careful user would (written by bench/cli.py).

python pyagrum_answers.py NETWORK.bif TABLES.json QUERIES.jsonl OUT.jsonl
"""
import json
import sys

import numpy as np
import pyagrum as gum

try:
    import orjson

    loads = orjson.loads

    def dumps(x):
        return orjson.dumps(x).decode()
except ImportError:
    loads, dumps = json.loads, json.dumps


def network(bif, tables_path):
    """The BIF network with its tables refilled in float64 (pyAgrum's parser reads float32)."""
    bn = gum.loadBN(bif)
    with open(tables_path, encoding="utf-8") as f:
        tables = json.load(f)
    for var, spec in tables.items():
        labels = list(bn.variable(var).labels())
        if labels != spec["states"]:
            sys.exit(f"pyAgrum reads the states of {var} as {labels}, the tables say {spec['states']}")
        cpt = bn.cpt(var)
        order = [*spec["parents"], var]
        values = np.asarray(spec["values"], dtype=np.float64).reshape([len(tables[v]["states"]) for v in order])
        axes = list(reversed(cpt.names))  # fillWith's order: the last name varies slowest
        cpt.fillWith(np.transpose(values, [order.index(a) for a in axes]).ravel().tolist())
    return bn


def main(bif, tables_path, queries_path, out_path):
    bn = network(bif, tables_path)
    engines = {}  # do variables -> [mutilated network, engine, its targets, its evidence's variables]
    out = []
    with open(queries_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            q = loads(line)
            do, given, outcomes = q.get("do", {}), q.get("given", {}), q["outcomes"]
            key = tuple(do)
            entry = engines.get(key)
            if entry is None:
                cut = gum.BayesNet(bn)
                for x in key:
                    node = cut.idFromName(x)
                    for parent in list(cut.parents(node)):
                        cut.eraseArc(parent, node)
                    cut.cpt(x).fillWith(1.0).normalize()
                entry = engines[key] = [cut, gum.LazyPropagation(cut), None, None]
            engine = entry[1]
            if entry[2] != outcomes:
                engine.setTargets(set(outcomes))
                entry[2] = outcomes
            evidence = {**do, **given}
            try:
                if CHANGE and entry[3] == tuple(evidence):  # the same variables: change their states, keep the join tree
                    for name, state in evidence.items():
                        engine.chgEvidence(name, state)
                else:
                    engine.setEvidence(evidence)  # erases the previous evidence first
                    entry[3] = tuple(evidence)
                engine.makeInference()
                out.append(dumps([engine.posterior(t).toarray().tolist() for t in outcomes]))
            except gum.IncompatibleEvidence as err:
                out.append(dumps({"error": str(err)}))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    CHANGE = sys.argv[5:6] != ["set"]
    main(*sys.argv[1:5])
'''


def source_digest() -> dict[str, str]:
    """A hash of every Python file Crux runs (its packages), to tell whether they changed while
    the bench ran (someone editing the tree: the figures then mix versions)."""
    out = {}
    for folder in ("crux", "oracle", "worldmodel", "beliefs", "values", "dialogue"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            try:
                out[path.relative_to(ROOT).as_posix()] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                out[path.relative_to(ROOT).as_posix()] = "unreadable"
    return out


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def load_average() -> str:
    """The machine's 1-minute load average (other work on a shared machine skews every figure)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "-"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# -- queries ----------------------------------------------------------------------------------------


def one_structure_queries(states: dict[str, list[str]], n: int, seed: int) -> list[dict]:
    """``n`` alarm queries of one structure: do HYPOVOLEMIA, given HR and SAO2, outcome BP."""
    rng = random.Random(f"one:{seed}")
    return [
        {"do": {ONE_DO: rng.choice(states[ONE_DO])}, "given": {e: rng.choice(states[e]) for e in ONE_GIVEN}, "outcomes": [ONE_OUTCOME]}
        for _ in range(n)
    ]


def mixed_queries(states: dict[str, list[str]], n: int, seed: int) -> list[dict]:
    """``n`` queries, each a random do variable, evidence variable and outcome (distinct)."""
    rng = random.Random(f"mixed:{seed}")
    names = list(states)
    out = []
    for _ in range(n):
        x, e, t = rng.sample(names, 3)
        out.append({"do": {x: rng.choice(states[x])}, "given": {e: rng.choice(states[e])}, "outcomes": [t]})
    return out


def scenario_queries(scenario: dict, n: int, seed: int) -> list[dict]:
    """``n`` queries of mixed structure on a generated scenario, as the agent or the human: the
    decision and a random variable set, a random variable seen, a random outcome (distinct)."""
    rng = random.Random(f"scenario:{seed}")
    variables = scenario["world"]["variables"]
    decision = scenario["world"]["decision"]
    names = [v for v in variables if v != decision]
    out = []
    for _ in range(n):
        x, e, t = rng.sample(names, 3)
        out.append({
            "do": {decision: rng.choice(variables[decision]["states"]), x: rng.choice(variables[x]["states"])},
            "given": {e: rng.choice(variables[e]["states"])},
            "outcomes": [t],
            "as": rng.choice(("agent", "human")),
        })
    return out


def write_lines(queries: Sequence[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    return path


# -- processes --------------------------------------------------------------------------------------


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def timed_process(command: list[str], out_path: Path, timeout: float) -> dict:
    """Run ``command`` with its stdout to ``out_path``: wall seconds (None if killed), exit code,
    stderr's last line."""
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"seconds": None, "rc": None, "stderr": f"did not finish in {timeout:g} s"}
    return {"seconds": time.perf_counter() - t0, "rc": done.returncode, "stderr": _tail(done.stderr.decode("utf-8", "replace"))}


def read_crux_output(path: Path) -> list[dict]:
    """Each line of ``crux ask --batch``'s output: ``{"p": {T: [...]}}`` or ``{"error": message}``."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        if "error" in data and "line" in data:
            rows.append({"error": data["error"].get("message", ""), "line": data["line"]})
        elif isinstance(data.get("outcomes"), dict) and all("p" in o for o in data["outcomes"].values()):
            rows.append({"p": {t: o["p"] for t, o in data["outcomes"].items()}, "device": data.get("device")})
        else:
            rows.append({"odd": line[:200]})
    return rows


def read_pyagrum_output(path: Path, queries: Sequence[dict]) -> list[dict]:
    """The pyAgrum script's lines, in the same shape as :func:`read_crux_output`'s."""
    rows = []
    for line, q in zip((x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()), queries):
        data = json.loads(line)
        if isinstance(data, dict):
            rows.append({"error": data.get("error", "")})
        else:
            rows.append({"p": dict(zip(q["outcomes"], data))})
    return rows


def check_run(rows: list[dict], rc: int | None, n: int, *, errors_exit: int = 1) -> str:
    """Why a run's output does not count ("" when it does): one line per query, answers and
    errors only, exit 0 without errors or ``errors_exit`` with some."""
    if rc is None:
        return "did not finish"
    errors = sum("error" in r for r in rows)
    odd = sum("odd" in r for r in rows)
    if len(rows) != n:
        return f"{len(rows):,} output lines for {n:,} queries (exit {rc})"
    if odd:
        return f"{odd:,} lines are neither an answer nor an error (exit {rc})"
    if rc != (errors_exit if errors else 0):
        return f"exit {rc} with {errors:,} error lines"
    return ""


def crux_once(model: Path, queries: Path, out: Path, n: int, timeout: float) -> dict:
    """``crux ask MODEL --batch QUERIES > out`` once: ``{"seconds", "status", "rows"}`` (status
    "" when the run counts, :func:`check_run`)."""
    run = timed_process([*crux_command(), "ask", str(model), "--batch", str(queries)], out, timeout)
    rows = read_crux_output(out) if run["rc"] is not None else []
    problem = check_run(rows, run["rc"], n)
    if problem:
        return {"seconds": None, "status": problem if run["rc"] is None else f"{problem} ({run['stderr']})", "rows": []}
    return {"seconds": run["seconds"], "status": "", "rows": rows}


def pyagrum_once(script: Path, bif: Path, tables: Path, queries_path: Path, queries: Sequence[dict], out: Path,
                 timeout: float, evidence: str = "change") -> dict:
    """The pyAgrum script once, as :func:`crux_once`.  ``evidence``: ``change`` (``chgEvidence``
    where a line sees the same variables as the engine's last) or ``set`` (``setEvidence`` on
    every line)."""
    out.unlink(missing_ok=True)
    command = [sys.executable, str(script), str(bif), str(tables), str(queries_path), str(out), evidence]
    run = timed_process(command, out.with_suffix(".stdout"), timeout)
    if run["rc"] != 0 or not out.is_file():
        return {"seconds": None, "rows": [],
                "status": "did not finish" if run["rc"] is None else f"failed (exit {run['rc']}): {run['stderr']}"}
    rows = read_pyagrum_output(out, queries)
    if len(rows) != len(queries):
        return {"seconds": None, "rows": [], "status": f"{len(rows):,} output lines for {len(queries):,} queries"}
    return {"seconds": run["seconds"], "status": "", "rows": rows}


def summary(runs: Sequence[dict]) -> dict:
    """Runs of one process (each counted until the first that failed): the median seconds, every
    run's seconds, the last good run's answers counted, the failure if any."""
    good = [r for r in runs if not r["status"]]
    rows = good[-1]["rows"] if good else []
    times = [r["seconds"] for r in good]
    return {
        "seconds": statistics.median(times) if times else None,
        "times": times,
        "status": next((r["status"] for r in runs if r["status"]), ""),
        "rows": rows,
        "answered": sum("p" in r for r in rows),
        "errors": sum("error" in r for r in rows),
        "devices": sorted({r["device"] for r in rows if r.get("device")}),
    }


def repeated(once, repeats: int, label: str) -> dict:
    """``once()`` up to ``repeats`` times (stopping at a failure), summarised."""
    runs = []
    for k in range(repeats):
        runs.append(once())
        if runs[-1]["status"]:
            break
        log(f"    {label} run {k + 1}/{repeats}: {runs[-1]['seconds']:.2f} s")
    return summary(runs)


def crux_batch(model: Path, queries: Path, out: Path, n: int, repeats: int, timeout: float) -> dict:
    """``crux ask MODEL --batch QUERIES`` as a whole process, ``repeats`` times (fewer if a run
    fails or does not finish): the median seconds and the last run's output, counted."""
    return repeated(lambda: crux_once(model, queries, out, n, timeout), repeats, "crux")


def pyagrum_batch(script: Path, bif: Path, tables: Path, queries_path: Path, queries: Sequence[dict], out: Path,
                  repeats: int, timeout: float, evidence: str = "change") -> dict:
    """The pyAgrum script as a whole process, ``repeats`` times: the median seconds, its answers."""
    return repeated(lambda: pyagrum_once(script, bif, tables, queries_path, queries, out, timeout, evidence), repeats, "pyAgrum")


# -- pyAgrum's inputs -------------------------------------------------------------------------------


def float64_tables(path: Path, network) -> tuple[dict, str]:
    """Every variable's states, parents and table (axes: parents, then the variable; rows
    normalised) in float64: from pgmpy's reader where installed (an independent parse), else
    from Crux's.  Returns the tables and where they came from."""
    import numpy as np

    out: dict = {}
    if have("pgmpy"):
        import logging

        from pgmpy.readwrite import BIFReader

        logging.getLogger("pgmpy").setLevel(logging.ERROR)
        pg = BIFReader(string=gzip.decompress(path.read_bytes()).decode("utf-8")).get_model()
        for var in network.order:
            cpd = pg.get_cpds(var)
            cpd.normalize()
            order = [*network.parents[var], var]
            values = np.transpose(cpd.values, [cpd.variables.index(v) for v in order])
            for j, v in enumerate(order):  # every axis in the BIF's (Crux's) order of states
                names = list(cpd.state_names[v])
                if names != list(network.states[v]):
                    values = np.take(values, [names.index(s) for s in network.states[v]], axis=j)
            out[var] = {"states": list(network.states[var]), "parents": list(network.parents[var]), "values": values.ravel().tolist()}
        return out, f"pgmpy {version('pgmpy')}'s reader"
    from crux.worldmodel.bif import read_bif

    net, beliefs, _ = read_bif(str(path))
    for var in net.order:
        out[var] = {"states": list(net.states[var]), "parents": list(net.parents[var]), "values": beliefs.mean(var).numpy().ravel().tolist()}
    return out, "Crux's reader (pgmpy is not installed: not an independent parse)"


# -- agreement --------------------------------------------------------------------------------------


def agreement(queries: Sequence[dict], crux_rows: Sequence[dict], pyagrum_rows: Sequence[dict]) -> dict:
    """Line by line: the largest |difference| where both answered, and the lines where one
    answered and the other refused (``(line number, who refused, its message)``)."""
    worst, both = 0.0, 0
    split: list[tuple[int, str, str]] = []
    shapes: list[tuple[int, str]] = []  # answers that are not one number per state of each outcome
    for n, (q, c, a) in enumerate(zip(queries, crux_rows, pyagrum_rows), 1):
        if "p" in c and "p" in a:
            both += 1
            for t in q["outcomes"]:
                ours, theirs = c["p"].get(t), a["p"].get(t)
                if not (_numbers(ours) and _numbers(theirs) and len(ours) == len(theirs)):
                    shapes.append((n, f"{t}: crux {json.dumps(ours)[:60]}, pyAgrum {json.dumps(theirs)[:60]}"))
                    continue
                worst = max(worst, max(abs(x - y) for x, y in zip(ours, theirs)))
        elif "p" in c or "p" in a:
            who = "pyAgrum" if "p" in c else "crux"
            split.append((n, who, (a if who == "pyAgrum" else c).get("error", "")))
    return {"both": both, "max_diff": worst if both > len({n for n, _ in shapes}) else None, "split": split, "shapes": shapes,
            "agree": worst <= TOLERANCE and not split and not shapes, "compared": min(len(crux_rows), len(pyagrum_rows))}


def _numbers(p) -> bool:
    return isinstance(p, list) and bool(p) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)


def query_text(q: dict) -> str:
    do = ", ".join(f"{k}={v}" for k, v in q.get("do", {}).items())
    given = ", ".join(f"{k}={v}" for k, v in q.get("given", {}).items())
    return f"do {do}" + (f" given {given}" if given else "") + f" -> {', '.join(q['outcomes'])}"


# -- in process -------------------------------------------------------------------------------------


def in_process(model_path: Path, files: dict[str, Path], queries: Sequence[dict], repeats: int, crux_out: dict[str, Path]) -> dict:
    """Oracle.ask_columns on the one-structure queries (cold and warm) and answer_lines on each
    file (a fresh oracle per run, the median); whether answer_lines' output is the process's."""
    import numpy as np

    from crux.dialogue.cli.options import make_oracle
    from crux.oracle.lines import answer_lines
    from crux.worldmodel.model import load_model

    model = load_model(model_path)
    net = model.network
    index = {v: {s: i for i, s in enumerate(net.states[v])} for v in (ONE_DO, *ONE_GIVEN)}
    do = {ONE_DO: np.array([index[ONE_DO][q["do"][ONE_DO]] for q in queries])}
    given = {e: np.array([index[e][q["given"][e]] for q in queries]) for e in ONE_GIVEN}
    res: dict = {}
    oracle = make_oracle(model)
    res["device"] = oracle.device.type
    t0 = time.perf_counter()
    oracle.ask_columns([ONE_OUTCOME], do=do, given=given)
    res["columns_cold_s"] = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        oracle.ask_columns([ONE_OUTCOME], do=do, given=given)
        warm.append(time.perf_counter() - t0)
    res["columns_warm_s"] = min(warm)
    for kind, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        times, out = [], None
        for _ in range(repeats):
            oracle = make_oracle(model)  # cold, as a process's
            t0 = time.perf_counter()
            out, _failed = answer_lines(oracle, lines)
            times.append(time.perf_counter() - t0)
        res[f"{kind}_lines_s"] = statistics.median(times)
        theirs = crux_out.get(kind)
        if theirs is not None and theirs.is_file() and out is not None:
            res[f"{kind}_same_output"] = same_output(theirs.read_text(encoding="utf-8").splitlines(), out)
        log(f"    in process, answer_lines {kind}: {res[f'{kind}_lines_s']:.2f} s")
    return res


def same_output(process: list[str], here: list[str]) -> str:
    """``yes`` where the lines are the same text, else how many differ and by how much."""
    if process == here:
        return "yes"
    if len(process) != len(here):
        return f"NO: {len(process):,} lines, in process {len(here):,}"
    differ = [(a, b) for a, b in zip(process, here) if a != b]
    worst = 0.0
    for a, b in differ:
        try:
            pa, pb = json.loads(a).get("outcomes", {}), json.loads(b).get("outcomes", {})
            worst = max([worst, *(abs(x - y) for t in pa for x, y in zip(pa[t]["p"], pb[t]["p"]))])
        except (ValueError, KeyError, TypeError, AttributeError):
            worst = float("inf")
    return f"NO: {len(differ):,} lines differ, max |d| {worst:.1e}"


def startup(model: Path, folder: Path, repeats: int) -> dict:
    """``crux ask MODEL QUESTION --json`` as a whole process: the median seconds."""
    command = [*crux_command(), "ask", str(model), QUESTION, "--json"]
    times = []
    for _ in range(repeats):
        run = timed_process(command, folder / "startup.json", TIMEOUT)
        if run["rc"] != 0:
            return {"seconds": None, "status": f"failed (exit {run['rc']}): {run['stderr']}"}
        times.append(run["seconds"])
    return {"seconds": statistics.median(times), "status": ""}


# -- printing ---------------------------------------------------------------------------------------


def _s(x: float | None, spec: str = ".2f") -> str:
    return fmt(x, spec)


def speedup(case: dict) -> float | None:
    """pyAgrum's whole process / Crux's (None where either is missing)."""
    crux, pya = case["crux"]["seconds"], (case.get("pyagrum") or {}).get("seconds")
    return pya / crux if crux and pya else None


def _verdict(value: float | None, bound: float, higher: bool) -> str:
    if value is None:
        return "not measured"
    return "met" if (value >= bound if higher else value <= bound) else "NOT met"


def render(cases: list[dict], proc: dict | None, start: dict | None, meta: dict, host: dict) -> str:
    lines = [
        (
            f"Crux CLI bench: crux ask --batch against a pyAgrum script, whole processes; {meta['queries']:,} alarm queries "
            f"per file, seed {meta['seed']}, median of {meta['repeats']}; {meta['seconds']:.0f} s in all"
        ),
        f"command: {meta['command']}",
        (
            f"machine: device {host['device']}; cores: {host['cpu_count']} (usable {host['affinity']}); torch threads: "
            f"{host['torch_threads']}; torch {host['torch']}; python {host['python']}; pyAgrum {meta['pyagrum']}"
        ),
        f"crux commit: {meta['commit']}; load average (1 min) {meta['load']}",
        f"pyAgrum's tables: float64 from {meta['tables_source']}; evidence per line: {meta['pyagrum_evidence']}",
        "",
        "Whole processes (seconds, median; x = pyAgrum / crux)",
    ]
    rows = []
    for c in cases:
        crux, pya = c["crux"], c.get("pyagrum")
        x = speedup(c)
        if c["target"][0] == "ratio":
            bound = c["target"][1]
            target, verdict = f">= {bound:g}x", _verdict(x, bound, True)
        else:
            bound = c["target"][1]
            target, verdict = f"<= {bound:g} s", _verdict(crux["seconds"], bound, False)
        crux_s = _s(crux["seconds"]) if crux["seconds"] is not None else ("did not finish" if crux["status"] == "did not finish" else "failed")
        pya_s = "-" if pya is None else (_s(pya["seconds"]) if pya["seconds"] is not None else "failed")
        rows.append([
            c["name"], fmt(c["n"], ",d"), crux_s, pya_s, fmt(x, ".2f"), target, verdict,
            f"{crux['answered']:,}/{crux['errors']:,}",
            "-" if pya is None else f"{pya['answered']:,}/{pya['errors']:,}",
            "-" if not crux["times"] else f"{min(crux['times']):.2f}-{max(crux['times']):.2f}",
            "-" if pya is None or not pya["times"] else f"{min(pya['times']):.2f}-{max(pya['times']):.2f}",
        ])
    lines.append(table(["case", "queries", "crux s", "pyAgrum s", "x", "target", "", "crux ans/err", "pyA ans/err",
                        "crux range", "pyA range"], rows))
    for c in cases:
        for who in ("crux", "pyagrum"):
            r = c.get(who)
            if r is not None and r["status"]:
                lines.append(f"  {c['name']}: {'Crux' if who == 'crux' else 'pyAgrum'} {r['status']}")
    devices = sorted({d for c in cases for d in c["crux"].get("devices", [])})
    if devices:
        lines.append(f"(crux answered on {', '.join(devices)}; every option at its default)")

    compared = [c for c in cases if c.get("agreement")]
    if compared:
        lines += ["", f"Agreement, line by line (max |crux p - pyAgrum p| where both answered; at most {TOLERANCE:g} agrees)"]
        rows = []
        for c in compared:
            a = c["agreement"]
            crux_only = sum(1 for _, who, _ in a["split"] if who == "crux")
            verdict = "agree" if a["agree"] else ("DIFFER" if (a["max_diff"] or 0) > TOLERANCE or a["shapes"] else "split")
            rows.append([c["name"], fmt(a["both"], ",d"), fmt(a["max_diff"], ".1e"), fmt(len(a["shapes"]), ",d"),
                         fmt(crux_only, ",d"), fmt(len(a["split"]) - crux_only, ",d"), verdict])
        lines.append(table(["case", "both answered", "max |d|", "bad shape", "only crux refused", "only pyAgrum refused", ""], rows))
        for c in compared:
            shapes = c["agreement"]["shapes"]
            if shapes:
                lines.append(f"  {c['name']}: {len(shapes):,} answer(s) not one number per state"
                             + (f" (first {SHOWN})" if len(shapes) > SHOWN else "") + ":")
                for n, what in shapes[:SHOWN]:
                    lines.append(f"    line {n}: {query_text(c['queries'][n - 1])}: {what}")
            split = c["agreement"]["split"]
            if split:
                lines.append(f"  {c['name']}: {len(split):,} line(s) where one answered and the other refused"
                             + (f" (first {SHOWN})" if len(split) > SHOWN else "") + ":")
                for n, who, message in split[:SHOWN]:
                    lines.append(f"    line {n}: {query_text(c['queries'][n - 1])}: {who} refused ({' '.join(message.split())[:160]})")

    if proc is not None:
        lines += ["", "In process (the same alarm queries, one process; seconds)"]
        one = cases[0]
        n = one["n"]
        lines.append(
            f"  Oracle.ask_columns, one structure: {_s(proc['columns_cold_s'], '.3f')} s cold ({fmt(n / proc['columns_cold_s'])} q/s), "
            f"{_s(proc['columns_warm_s'], '.3f')} s warm ({fmt(n / proc['columns_warm_s'])} q/s)"
        )
        lines.append(f"  start-up: crux ask alarm \"{QUESTION}\" --json as a whole process: {_s(start and start['seconds'])} s"
                     + (f" ({start['status']})" if start and start["status"] else ""))
        rows = []
        for c in cases:
            if c["kind"] not in ("one", "mixed"):
                continue
            whole, inside = c["crux"]["seconds"], proc.get(f"{c['kind']}_lines_s")
            outside = None if whole is None or inside is None else whole - inside
            rows.append([c["name"], _s(whole, ".3f"), _s(inside, ".3f"), _s(outside, ".3f"), fmt(outside and 100 * outside / whole, ".0f"),
                         proc.get(f"{c['kind']}_same_output", "-")])
        lines.append(table(["case", "whole process", "answer_lines", "outside answer_lines", "outside %",
                            "same output"], rows))

    lines += ["", "Targets (issue)"]
    for c in cases:
        crux, pya = c["crux"], c.get("pyagrum")
        if c["target"][0] == "ratio":
            x = speedup(c)
            figure = "not measured" if x is None else f"{x:.2f}x"
            lines.append(f"  {c['name']:<24} pyAgrum / crux >= {c['target'][1]:g}x: {figure:<14} {_verdict(x, c['target'][1], True)}")
        else:
            figure = "did not finish" if crux["status"] == "did not finish" else ("failed" if crux["seconds"] is None else f"{crux['seconds']:.2f} s")
            lines.append(f"  {c['name']:<24} crux <= {c['target'][1]:g} s: {figure:<23} {_verdict(crux['seconds'], c['target'][1], False)}")
    for note in meta.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------------


def run_alarm_case(kind: str, name: str, queries: list[dict], folder: Path, args, pyagrum: dict | None, target: tuple) -> dict:
    path = write_lines(queries, folder / f"{kind}.jsonl")
    log(f"{name}: {len(queries):,} queries")
    case: dict = {"kind": kind, "name": name, "n": len(queries), "queries": queries, "target": target, "file": path}
    case["crux_out"] = out = folder / f"{kind}.crux.jsonl"
    crux_runs: list[dict] = []
    pyagrum_runs: list[dict] = []
    for k in range(args.repeats):  # taking turns, so that a busy spell of the machine falls on both
        if not any(r["status"] for r in crux_runs):
            crux_runs.append(crux_once(ALARM, path, out, len(queries), TIMEOUT))
            log(f"    crux run {k + 1}/{args.repeats}: " + (crux_runs[-1]["status"] or f"{crux_runs[-1]['seconds']:.2f} s"))
        if pyagrum is not None and not any(r["status"] for r in pyagrum_runs):
            pyagrum_runs.append(pyagrum_once(pyagrum["script"], pyagrum["bif"], pyagrum["tables"], path, queries,
                                             folder / f"{kind}.pyagrum.jsonl", TIMEOUT, args.pyagrum_evidence))
            log(f"    pyAgrum run {k + 1}/{args.repeats}: " + (pyagrum_runs[-1]["status"] or f"{pyagrum_runs[-1]['seconds']:.2f} s"))
    case["crux"] = summary(crux_runs)
    if pyagrum is not None:
        case["pyagrum"] = summary(pyagrum_runs)
        if case["crux"]["rows"] and case["pyagrum"]["rows"]:
            case["agreement"] = agreement(queries, case["crux"]["rows"], case["pyagrum"]["rows"])
    return case


def run_scenario_case(folder: Path, args) -> dict:
    v, f = SCENARIO_SIZE
    scenario = generated(args.seed, v, f)
    model = write_scenario(scenario, folder)
    queries = scenario_queries(scenario, SCENARIO_QUERIES, args.seed)
    path = write_lines(queries, folder / "scenario.jsonl")
    name = f"{v} vars x {f} facts"
    log(f"{name}: {len(queries):,} queries with intervals")
    case = {"kind": "scenario", "name": name, "n": len(queries), "queries": queries, "target": ("seconds", TARGET_120)}
    case["crux"] = crux_batch(model, path, folder / "scenario.crux.jsonl", len(queries), args.repeats, TIMEOUT_120)
    return case


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000, help="alarm queries per file (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every process; the median is shown (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the queries and of the generated scenario (default 0)")
    parser.add_argument("--skip-120", action="store_true", help="skip the 120-variable scenario")
    parser.add_argument("--pyagrum-evidence", choices=("change", "set"), default="change",
                        help="pyAgrum's evidence per line: change (chgEvidence where the line sees the same variables as the "
                        "engine's last, else setEvidence; the default) or set (setEvidence on every line)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rendered tables to this file")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.repeats < 1:
        parser.error("--queries and --repeats must be at least 1")
    if not ALARM.is_file():
        parser.error(f"{ALARM} is missing")

    from crux.worldmodel.model import load_model

    notes: list[str] = []
    start_time = time.perf_counter()
    sources = source_digest()
    load_before = load_average()
    network = load_model(ALARM).network
    states = {v: list(network.states[v]) for v in network.order}
    with_pyagrum = have("pyagrum")
    if not with_pyagrum:
        notes.append("pyAgrum is not installed (pip install pyagrum): Crux ran alone, nothing compared, no ratio measured")
        log(f"note: {notes[-1]}")
    cases: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="crux-bench-cli-") as scratch:
        folder = Path(scratch)
        pyagrum = None
        tables_source = "-"
        if with_pyagrum:
            tables, tables_source = float64_tables(ALARM, network)
            pyagrum = {"script": folder / "pyagrum_answers.py", "bif": folder / "alarm.bif", "tables": folder / "alarm.tables.json"}
            pyagrum["script"].write_text(PYAGRUM_SCRIPT, encoding="utf-8")
            pyagrum["bif"].write_bytes(gzip.decompress(ALARM.read_bytes()))
            pyagrum["tables"].write_text(json.dumps(tables), encoding="utf-8")
        one = one_structure_queries(states, args.queries, args.seed)
        cases.append(run_alarm_case("one", "alarm, one structure", one, folder, args, pyagrum, ("ratio", TARGET_ONE)))
        cases.append(run_alarm_case("mixed", "alarm, mixed", mixed_queries(states, args.queries, args.seed), folder, args,
                                    pyagrum, ("ratio", TARGET_MIXED)))
        log("in process ...")
        proc = in_process(ALARM, {c["kind"]: c["file"] for c in cases}, one, args.repeats,
                          {c["kind"]: c["crux_out"] for c in cases if c["crux"]["seconds"] is not None})
        start = startup(ALARM, folder, args.repeats)
        log(f"    start-up: {_s(start['seconds'])} s")
        if not args.skip_120:
            cases.append(run_scenario_case(folder, args))
    seconds = time.perf_counter() - start_time
    changed = changed_files(sources, source_digest())
    if changed:
        notes.append(f"Crux's files changed while the bench ran (the figures mix versions): {', '.join(changed)}")
    host = describe(proc["device"])
    meta = {
        "command": " ".join(["python -m bench.cli", *(argv if argv is not None else sys.argv[1:])]),
        "queries": args.queries, "seed": args.seed, "repeats": args.repeats, "seconds": seconds,
        "commit": commit(), "load": f"{load_before} at the start, {load_average()} at the end", "pyagrum": version("pyagrum") if with_pyagrum else "not installed",
        "tables_source": tables_source, "notes": notes,
        "pyagrum_evidence": {"change": "chgEvidence where the variables repeat, else setEvidence",
                             "set": "setEvidence on every line"}[args.pyagrum_evidence],
    }
    text = render(cases, proc, start, meta, host)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    failed = any(c["crux"]["seconds"] is None and c["crux"]["status"] != "did not finish" for c in cases)
    failed |= any(c.get("pyagrum") is not None and c["pyagrum"]["seconds"] is None for c in cases)
    failed |= any((c["agreement"]["max_diff"] or 0) > TOLERANCE or c["agreement"]["shapes"] for c in cases if c.get("agreement"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
