"""How long a session takes at real size: turns, the end of the session, the whole session.

Run::

    python -m bench.sessions [--sizes 10x5,30x10,60x20,120x40] [--seeds 0-3] [--networks alarm,hailfinder]
                             [--network-facts 20] [--device cpu] [--threads 0] [--no-process] [--timeout 300]
                             [--keep DIR] [--out FILE] [--json]

**Cases.**  Generated scenarios (:func:`bench.scenarios.generated`) at each ``VARIABLESxFACTS``
size of ``--sizes`` (default 10x5, 30x10, 60x20, 120x40) and scenarios built on the bnlearn
networks of ``--networks`` (:func:`bench.scenarios.from_bif`, ``--network-facts`` facts, default
20): alarm from ``tests/data/alarm.bif.gz``, hailfinder from pgmpy's example models (the
``bench`` extra; a network whose file is missing is skipped with a note).  Every case runs once
per seed of ``--seeds`` (default 0-3; ``0-3``, ``0,2,5`` or ``7``).  Each scenario is written as a
YAML file (in ``--keep DIR`` or a temporary folder) and loaded with
:func:`worldmodel.model.load_model`, as ``crux session`` does.

**In process.**  :func:`dialogue.session.run_session` (full mode, the agent and the scripted
human) with an :class:`oracle.oracle.Oracle` on ``--device`` (default cpu).  While it runs,
``dialogue.engine.Engine._advance`` (what the engine does after every event to decide what comes
next: rank the cruxes and offer the top one, or conclude; the first diagnosis's included, from
``Engine.start``) and ``dialogue.engine.conclude`` (the end of the session: the final diagnosis's
unresolved beliefs and value conflicts) are wrapped with timers and put back afterwards.

``turns``    facts offered in the session (the report's turns).
``turn``     seconds of each outermost ``_advance`` call, less the time it spent in ``conclude``:
             per session the median and the largest; a group shows the median over seeds of
             the sessions' medians and the largest turn of all its sessions.
``reply``    the same for the engine's whole answer to a message (``Engine.start`` and
             ``Engine.handle`` calls in which ``_advance`` ran, less ``conclude``): the turn
             plus taking the response in and diagnosing again.
``end``      seconds in ``conclude`` over the session (median and worst over seeds).
``session``  the whole ``run_session`` call (median and worst over seeds); loading the file and
             building the oracle are not in it.
``process``  wall time of a whole ``crux session FILE --headless --json --device DEVICE`` process
             (interpreter start, imports, loading, the session, the report): median and worst
             over seeds.  One that runs past ``--timeout`` seconds (default 300) is killed and
             counted as "did not return"; ``--no-process`` skips it.

A warm-up session on a small generated scenario runs first (untimed), so the first case does not
pay for imports and first calls.  The issue's targets are printed beside the figures: a turn at
most 50 ms at 60x20 and 150 ms at 120x40 (median), never over 1 s; the end of the session at most
0.5 s at 60x20 and 2 s at 120x40 on every seed; every 120x40 session returns, whole at most 10 s
in process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch
import yaml

from bench.machine import describe
from bench.scenarios import from_bif, generated

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = ((10, 5), (30, 10), (60, 20), (120, 40))
DEFAULT_NETWORKS = ("alarm", "hailfinder")

TARGET_TURN_MEDIAN = {"60x20": 0.05, "120x40": 0.15}
"""A turn's median seconds, at most (issue)."""
TARGET_TURN_MAX = 1.0
"""No turn over 1 s, anywhere."""
TARGET_END = {"60x20": 0.5, "120x40": 2.0}
"""The end of the session, seconds at most on every seed."""
TARGET_SESSION = {"120x40": 10.0}
"""The whole session in process, seconds at most on every seed; every session returns."""
TARGETS_TEXT = (
    "A turn <= 50 ms at 60x20 and <= 150 ms at 120x40 (median), never over 1 s; end of session <= 0.5 s at 60x20 "
    "and <= 2 s at 120x40 on every seed; every 120x40 session returns, whole <= 10 s in process"
)


def network_file(name: str) -> Path | None:
    """The ``.bif.gz`` of a bnlearn network: the tests' copy, else pgmpy's example models; None if neither."""
    here = ROOT / "tests" / "data" / f"{name}.bif.gz"
    if here.is_file():
        return here
    spec = importlib.util.find_spec("pgmpy")  # where pgmpy is, without importing it
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        there = Path(folder) / "utils" / "example_models" / f"{name}.bif.gz"
        if there.is_file():
            return there
    return None


# -- timing the engine ------------------------------------------------------------------------------


@dataclass
class Timings:
    """What the wrapped engine calls took during one session (seconds)."""

    turns: list[float] = field(default_factory=list)
    replies: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    _advancing: int = 0
    _replying: int = 0
    _end_in_turn: float = 0.0
    _end_in_reply: float = 0.0
    _advanced: bool = False

    def reset(self) -> None:
        self.turns, self.replies, self.ends = [], [], []
        self._advancing = self._replying = 0
        self._end_in_turn = self._end_in_reply = 0.0
        self._advanced = False


@contextmanager
def timed_engine() -> Iterator[Timings]:
    """Time ``Engine._advance`` (less ``conclude``), ``Engine.start``/``handle`` (less ``conclude``)
    and ``dialogue.engine.conclude`` while the block runs; the originals are put back after it."""
    import crux.dialogue.engine as engine_module

    Engine = engine_module.Engine
    missing = [n for n, ok in (("Engine._advance", hasattr(Engine, "_advance")), ("conclude", hasattr(engine_module, "conclude"))) if not ok]
    if missing:
        raise RuntimeError(f"bench.sessions times dialogue.engine's {' and '.join(missing)}, which it no longer has: update the bench")
    rec = Timings()
    advance, conclude = Engine.__dict__["_advance"], engine_module.conclude
    start, handle = Engine.__dict__["start"], Engine.__dict__["handle"]

    def timed_conclude(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return conclude(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            rec.ends.append(dt)
            rec._end_in_turn += dt
            rec._end_in_reply += dt

    def timed_advance(self, *args, **kwargs):
        if rec._advancing:  # nested (after the value questions): part of the outer turn
            rec._advancing += 1
            try:
                return advance(self, *args, **kwargs)
            finally:
                rec._advancing -= 1
        rec._advancing, rec._end_in_turn = 1, 0.0
        t0 = time.perf_counter()
        try:
            return advance(self, *args, **kwargs)
        finally:
            rec.turns.append(time.perf_counter() - t0 - rec._end_in_turn)
            rec._advancing, rec._advanced = 0, True

    def replying(method):
        def timed(self, *args, **kwargs):
            if rec._replying:
                return method(self, *args, **kwargs)
            rec._replying, rec._end_in_reply, rec._advanced = 1, 0.0, False
            t0 = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                if rec._advanced:
                    rec.replies.append(time.perf_counter() - t0 - rec._end_in_reply)
                rec._replying = 0

        return timed

    Engine._advance, engine_module.conclude = timed_advance, timed_conclude
    Engine.start, Engine.handle = replying(start), replying(handle)
    try:
        yield rec
    finally:
        Engine._advance, Engine.start, Engine.handle = advance, start, handle
        engine_module.conclude = conclude


# -- one case ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    group: str
    """``60x20`` or a network's name."""
    seed: int
    scenario: dict


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def write_scenario(data: dict, folder: Path) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
    return path


def crux_command() -> list[str]:
    """The ``crux`` entry point beside this interpreter, else the same through ``python -c``."""
    script = Path(sys.executable).with_name("crux")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from dialogue.cli.app import main; main()"]


def in_process(path: Path, device: str, rec: Timings) -> dict:
    """One headless session in this process, timed; a row of figures (``error`` where it raised)."""
    from crux.dialogue.session import run_session
    from crux.oracle.oracle import Oracle
    from crux.worldmodel.model import load_model

    row: dict = {}
    try:
        t0 = time.perf_counter()
        model = load_model(path)
        oracle = Oracle(model, device=device)
        row["load_s"] = time.perf_counter() - t0
        rec.reset()
        t0 = time.perf_counter()
        report, _ = run_session(path, model, oracle, mode="full")
        row["session_s"] = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 -- a session that raises is a finding: counted and shown
        row["error"] = _one_line(err)
        row["trace"] = traceback.format_exc(limit=6)
        return row
    turns, replies = rec.turns, rec.replies
    row.update(
        turns=sum(t.get("type", "turn") == "turn" for t in report["turns"]),
        steps=len(turns),
        turn_median=statistics.median(turns) if turns else None,
        turn_max=max(turns, default=None),
        reply_median=statistics.median(replies) if replies else None,
        reply_max=max(replies, default=None),
        end_s=sum(rec.ends) if rec.ends else None,
        kind=report["final"]["diagnosis"]["kind"] if report.get("final") else None,
        turn_times=[round(t, 5) for t in turns],
    )
    if not rec.ends:
        row.setdefault("notes", []).append("conclude was not seen (does the engine still call dialogue.engine.conclude?)")
    return row


def as_process(path: Path, device: str, timeout: float, threads: int) -> dict:
    """``crux session PATH --headless --json`` as a whole process: its wall time, or why none."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    command = [*crux_command(), "session", str(path), "--headless", "--json", "--device", device]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, cwd=path.parent, env=env)
    except subprocess.TimeoutExpired:
        return {"process_status": f"did not return in {timeout:g} s"}
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"process_status": f"failed (exit {done.returncode}): {tail}"}
    out: dict = {"process_s": seconds, "process_status": "ok"}
    try:
        report = json.loads(done.stdout)
        out["process_turns"] = sum(t.get("type", "turn") == "turn" for t in report["turns"])
    except (ValueError, KeyError, TypeError):
        out["process_status"] = "ok, but its output is not a JSON report"
    return out


def run_case(case: Case, folder: Path, args: argparse.Namespace, rec: Timings) -> dict:
    scenario = case.scenario
    row: dict = {
        "group": case.group,
        "seed": case.seed,
        "name": scenario["name"],
        "variables": len(scenario["world"]["variables"]),
        "facts": len(scenario["facts"]),
    }
    path = write_scenario(scenario, folder)
    row.update(in_process(path, args.device, rec))
    if args.process:
        row.update(as_process(path, args.device, args.timeout, args.threads))
        if "turns" in row and row.get("process_turns") not in (None, row["turns"]):
            row.setdefault("notes", []).append(f"the process offered {row['process_turns']} facts, in process {row['turns']}")
    return row


def _progress(k: int, n: int, row: dict) -> str:
    head = f"[{k}/{n}] {row['group']} seed {row['seed']} ({row['variables']} variables, {row['facts']} facts): "
    if "error" in row:
        text = f"raised {row['error']}"
    else:
        text = (
            f"{row['turns']} turns, turn median {_s(row['turn_median'])} max {_s(row['turn_max'])}, "
            f"end {_s(row['end_s'])}, session {_s(row['session_s'])} s"
        )
    if "process_status" in row:
        text += f"; process {_s(row['process_s'])} s" if "process_s" in row else f"; process {row['process_status']}"
    return head + text


# -- figures ----------------------------------------------------------------------------------------


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _max(xs) -> float | None:
    return max((x for x in xs if x is not None), default=None)


def summarise(rows: Sequence[dict]) -> dict:
    """Per group (in the order first seen): the medians over seeds and the worst."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    out = {}
    for name, rs in groups.items():
        ran = [r for r in rs if "error" not in r]
        timed = [r for r in rs if "process_status" in r]
        returned = [r for r in timed if "process_s" in r]
        out[name] = {
            "sessions": len(rs),
            "variables": _median(r["variables"] for r in rs),
            "facts": _median(r["facts"] for r in rs),
            "raised": len(rs) - len(ran),
            "turns": _median(r["turns"] for r in ran),
            "turn_median": _median(r["turn_median"] for r in ran),
            "turn_max": _max(r["turn_max"] for r in ran),
            "reply_median": _median(r["reply_median"] for r in ran),
            "reply_max": _max(r["reply_max"] for r in ran),
            "end_median": _median(r["end_s"] for r in ran),
            "end_worst": _max(r["end_s"] for r in ran),
            "session_median": _median(r["session_s"] for r in ran),
            "session_worst": _max(r["session_s"] for r in ran),
            "processes": len(timed),
            "process_median": _median(r["process_s"] for r in returned),
            "process_worst": _max(r["process_s"] for r in returned),
            "did_not_return": sum(r["process_status"].startswith("did not return") for r in timed),
            "process_failed": sum(r["process_status"].startswith("failed") for r in timed),
        }
    return out


def check_targets(summary: dict) -> list[dict]:
    """Each target that applies to a group: the figure, the bound and whether it is met."""
    checks = []

    def add(group: str, what: str, value: float | None, bound: float) -> None:
        checks.append({"group": group, "target": what, "value": value, "bound": bound, "met": value is not None and value <= bound})

    for name, g in summary.items():
        if name in TARGET_TURN_MEDIAN:
            add(name, "turn, median", g["turn_median"], TARGET_TURN_MEDIAN[name])
        add(name, "turn, largest", g["turn_max"], TARGET_TURN_MAX)
        if name in TARGET_END:
            add(name, "end of session, every seed", g["end_worst"], TARGET_END[name])
        if name in TARGET_SESSION:
            add(name, "whole session in process, every seed", g["session_worst"], TARGET_SESSION[name])
            failed = g["raised"] + g["did_not_return"] + g["process_failed"]
            checks.append({"group": name, "target": "every session returns", "value": failed, "bound": 0, "met": failed == 0})
    return checks


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render(summary: dict, checks: list[dict], meta: dict, host: dict) -> str:
    head = (
        f"{'case':<11} {'n':>2} {'vars':>4} {'facts':>5} {'turns':>5} | {'turn med':>8} {'max':>7} | "
        f"{'reply med':>9} {'max':>7} | {'end med':>7} {'worst':>7} | {'session med':>11} {'worst':>7} | "
        f"{'process med':>11} {'worst':>7} | targets"
    )
    lines = [
        (
            f"Crux session bench: seeds {meta['seeds_text']}, {meta['sessions']} sessions, device {meta['device']}, "
            f"{meta['seconds']:.1f} s in all"
        ),
        f"command: {meta['command']}",
        (
            f"device: {host['device']}; cores: {host['cpu_count']} (usable {host['affinity']}); torch threads: "
            f"{host['torch_threads']}; torch {host['torch']}; python {host['python']}"
        ),
        "",
        "seconds; turns and seconds are medians over seeds, max/worst the largest of any seed (a turn's max: of every turn)",
        "",
        head,
        "-" * len(head),
    ]
    for name, g in summary.items():
        mine = [c for c in checks if c["group"] == name]
        missed = [c for c in mine if not c["met"]]
        verdict = "" if not mine else ("met" if not missed else f"MISSED {len(missed)}/{len(mine)}")
        if g["processes"] == 0:
            process = f"{'-':>11} {'-':>7}"
        elif g["process_median"] is None:
            process = f"{'none back':>11} {'-':>7}"
        else:
            process = f"{_s(g['process_median']):>11} {_s(g['process_worst']):>7}"
        turns = "-" if g["turns"] is None else f"{g['turns']:g}"
        lines.append(
            f"{name:<11} {g['sessions']:>2} {g['variables']:>4g} {g['facts']:>5g} {turns:>5} | "
            f"{_s(g['turn_median']):>8} {_s(g['turn_max']):>7} | {_s(g['reply_median']):>9} {_s(g['reply_max']):>7} | "
            f"{_s(g['end_median']):>7} {_s(g['end_worst']):>7} | {_s(g['session_median']):>11} {_s(g['session_worst']):>7} | "
            f"{process} | {verdict}"
        )
    lines += ["", f"targets (issue): {TARGETS_TEXT}"]
    for c in checks:
        if c["target"] == "every session returns":
            figure = f"{c['value']} raised, failed or did not return"
        else:
            figure = f"{_s(c['value'])} s <= {c['bound']:g} s"
        lines.append(f"  {c['group']:<11} {c['target']:<38} {figure:<28} {'met' if c['met'] else 'MISSED'}")
    trouble = []
    for name, g in summary.items():
        if g["raised"]:
            trouble.append(f"{name}: {g['raised']} session(s) raised in process")
        if g["did_not_return"]:
            trouble.append(f"{name}: {g['did_not_return']} process(es) did not return in {meta['timeout']:g} s")
        if g["process_failed"]:
            trouble.append(f"{name}: {g['process_failed']} process(es) failed")
    lines += [""] + (trouble or ["every session returned"])
    for problem in meta.get("problems", []):
        lines.append(f"  {problem}")
    for note in meta.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    if text.strip().lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        try:
            v, f = (int(x) for x in part.strip().lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: write a size as VARIABLESxFACTS, e.g. 60x20") from None
        if v < 6 or f < 0:
            raise argparse.ArgumentTypeError(f"{part!r}: a generated scenario needs at least 6 variables and no fewer than 0 facts")
        sizes.append((v, f))
    return sizes


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds as 0-3, 0,2,5 or 7") from None
    return seeds


def parse_networks(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip() and n.strip().lower() != "none"]


def build_cases(sizes, seeds, networks, network_facts: int, notes: list[str]) -> list[Case]:
    cases = [Case(f"{v}x{f}", s, generated(s, v, f)) for v, f in sizes for s in seeds]
    for name in networks:
        path = network_file(name)
        if path is None:
            notes.append(f"{name}: no {name}.bif.gz in tests/data or pgmpy's example models (pip install -e .[bench]); skipped")
            print(f"note: {notes[-1]}", file=sys.stderr, flush=True)
            continue
        cases += [Case(name, s, from_bif(str(path), s, network_facts)) for s in seeds]
    return cases


def warm_up(folder: Path, device: str, rec: Timings) -> None:
    """One small session, untimed: imports and first calls paid before the first case."""
    path = write_scenario({**generated(10_000, 10, 5), "name": "warm-up"}, folder)
    in_process(path, device, rec)
    rec.reset()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                        help="generated sizes, VARIABLESxFACTS, comma-separated (default 10x5,30x10,60x20,120x40; none: no generated cases)")
    parser.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2, 3], help="seeds of every case: 0-3, 0,2,5 or 7 (default 0-3)")
    parser.add_argument("--networks", type=parse_networks, default=list(DEFAULT_NETWORKS),
                        help="bnlearn networks made scenarios, comma-separated (default alarm,hailfinder; none: no networks)")
    parser.add_argument("--network-facts", type=int, default=20, help="facts of a network's scenario (default 20)")
    parser.add_argument("--device", default="cpu", help="the oracle's device, in process and in the crux process (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads, in process and in the crux process (default 0: torch's default)")
    parser.add_argument("--no-process", dest="process", action="store_false", help="skip timing a whole crux session process")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a crux session process may take (default 300)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up session")
    parser.add_argument("--keep", type=Path, default=None, help="write the scenario files here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rendered table to this file")
    parser.add_argument("--json", action="store_true", help="print the rows and figures as JSON instead of the table")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep.exists() and not args.keep.is_dir():
        parser.error(f"--keep {args.keep}: not a folder")

    notes: list[str] = []
    cases = build_cases(args.sizes, args.seeds, args.networks, args.network_facts, notes)
    previous = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    try:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="crux-bench-sessions-") as scratch:
            folder = args.keep or Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            with timed_engine() as rec:
                if args.warmup and cases:
                    warm_up(Path(scratch), args.device, rec)
                for k, case in enumerate(cases, 1):
                    row = run_case(case, folder, args, rec)
                    print(_progress(k, len(cases), row), file=sys.stderr, flush=True)
                    if "trace" in row:
                        print(row["trace"], file=sys.stderr, flush=True)
                    rows.append(row)
        seconds = time.perf_counter() - start
        host = describe(args.device)
    finally:  # the caller's threads back (a test calls main inside pytest's process)
        torch.set_num_threads(previous)

    summary = summarise(rows)
    checks = check_targets(summary)
    problems = [f"{r['name']}: {r['error']}" for r in rows if "error" in r]
    problems += [f"{r['name']}: process {r['process_status']}" for r in rows if r.get("process_status", "ok") != "ok"]
    problems += [f"{r['name']}: {note}" for r in rows for note in r.get("notes", [])]
    meta = {
        "command": " ".join(["python -m bench.sessions", *(argv if argv is not None else sys.argv[1:])]),
        "date": date.today().isoformat(),
        "seeds": args.seeds,
        "seeds_text": ",".join(str(s) for s in args.seeds),
        "sessions": len(rows),
        "device": args.device,
        "threads": args.threads,
        "process": args.process,
        "timeout": args.timeout,
        "seconds": seconds,
        "problems": problems,
        "notes": notes,
    }
    text = render(summary, checks, meta, host)
    if args.json:
        clean = [{k: v for k, v in r.items() if k != "trace"} for r in rows]
        print(json.dumps({"meta": meta, "machine": host, "groups": summary, "targets": checks, "sessions": clean}, indent=2))
    else:
        print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    failed = any("error" in r or r.get("process_status", "ok").startswith("failed") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
