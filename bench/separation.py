"""Does the engine separate belief from value disagreements, and how few facts does it need?

Run::

    python -m bench.separation --cases 300 --seed 0 [--json]

Generates ``--cases`` scenarios across the kinds of :mod:`bench.constructions`
(whose final diagnosis is known by construction), runs a headless session on
each (the agent and the scripted human of :mod:`dialogue.parties`), and
reports per kind:

``n``            cases of the kind.
``acc``          share of sessions whose final diagnosis kind is the construction's.
``cells``        share whose final swap-test choices are the construction's (the pool's).
``offered``      mean facts offered (turns), ``accepted`` mean facts accepted.
``fewest``       mean of the fewest facts that suffice, defined below.
``=min``         share of sessions that accepted exactly that many facts.
``pooled``       offers, in all, of a fact that alone changes no choice (the stop rule's
                 pooled branch: the offer's ``if_accepted`` equals the current cells).
``inert``        inert facts offered, in all (must be 0).
``left``         sessions that ended with an unshared, unrejected fact that alone or
                 pooled with the other unshared ones changes a swap-test choice (must
                 be 0): ``dialogue.cruxes.rank_cruxes`` on the final graphs is not
                 empty, or re-deriving the rule with the evaluator (final state, plus
                 each unshared fact, plus all of them) finds such a fact.
``subset``       (information only) sessions whose remaining unshared facts include
                 a *subset*, neither one fact nor all of them, that would change a
                 choice: the stop rule of SCENARIO.md does not look at those.
``unres``        priors/rejects: share whose report lists the construction's variable
                 in ``unresolved_beliefs`` and has no value conflict about it.

**Fewest facts that suffice.**  Let ``S`` be the facts unshared at the start
that their receiver would accept (a fact the scripted human rejects is left
out: it can never be shared).  For ``T`` a subset of ``S``, let ``key(T)`` be
the four swap-test choices once every fact of ``T`` is shared.  ``T`` is a
*stopping point* when no remaining fact of ``S``, alone or all together,
changes a choice: ``key(T + {m}) == key(T)`` for every ``m`` in ``S - T``, and
``key(S) == key(T)``.  The fewest facts that suffice is the smallest ``|T|``
over stopping points, found by brute force over every subset of ``S`` (one
batched evaluation per case).  A session that ends by the stop rule after
every fact the human rejects was offered ends at a stopping point, so
``accepted >= fewest`` (checked; the constructions rule out sessions that end
before the rejected fact is offered, see ``bench.constructions``); offers
rejected by the human are counted in ``offered`` but not in ``accepted`` or
``fewest``.

**Baselines**, on the same cases and the same evaluator:

``share-all``  offer every unshared fact in file order (the receiver accepts or
               rejects as in the session); diagnose at the end.
``naive``      a naive persuader: offer the unshared facts in a random order
               (seeded per case) and stop at the first point where the parties'
               own choices agree (before any offer if they agree at the start);
               if they never agree, every fact is offered.  Diagnose where it stopped.

Finally one engine step is timed: ``dialogue.cruxes.rank_cruxes`` (ranking every
unshared fact, alone and pooled) on a generated 30-variable model with 20
facts, on the CPU: the median of several runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


from bench.constructions import KINDS, Case, Context, Move, generate_cases, large_scenario
from bench.machine import describe
from crux.beliefs.graph import BeliefGraph, FactRecord
from crux.dialogue.cruxes import rank_cruxes
from crux.dialogue.diagnosis import Diagnosis
from crux.dialogue.engine import CELL_NAMES
from crux.dialogue.protocol import Diagnosed, Offered, Responded
from crux.dialogue.session import run_session

SHORT = {name: "".join(p[0] for p in key) for key, name in CELL_NAMES.items()}
"""Report cell names ("agent beliefs, human values") to the short ones ("ah")."""


# -- one headless session -------------------------------------------------------------------


@dataclass
class Outcome:
    """A headless session on a case, and its final state rebuilt from the events."""

    case: Case
    ctx: Context
    report: dict
    offers: list[Offered]
    responses: list[Responded]
    pooled_offers: int
    """Offers of a fact that alone changes no choice (the stop rule's pooled branch)."""
    graphs: dict[str, BeliefGraph]
    """The final belief graphs (the initial ones plus every response)."""
    final: Diagnosis
    """The final state re-diagnosed with the evaluator."""

    @property
    def kind(self) -> str:
        return self.report["final"]["diagnosis"]["kind"]

    @property
    def cells(self) -> dict[str, str]:
        return {SHORT[k]: v for k, v in self.report["final"]["diagnosis"]["cells"].items()}

    @property
    def offered(self) -> list[str]:
        return [o.fact for o in self.offers]

    @property
    def accepted(self) -> list[Move]:
        sender = {o.fact: o.sender for o in self.offers}
        return [(r.fact, sender[r.fact], r.by) for r in self.responses if r.response == "accepted"]

    @property
    def rejected(self) -> list[str]:
        return [r.fact for r in self.responses if r.response == "rejected"]

    def cruxes_left(self) -> list:
        """``rank_cruxes`` on the final graphs: empty when nothing unshared could change a choice."""
        return rank_cruxes(self.ctx.evaluator, self.graphs, self.final)

    def changers_left(self) -> list[str]:
        """The stop rule re-derived with the evaluator: the unshared, unrejected facts that alone
        change a swap-test choice, plus ``"(pooled)"`` if all of them together do."""
        moves = self.ctx.moves(self.graphs)
        if not moves:
            return []
        pairs = [self.ctx.share([m], self.graphs) for m in moves] + [self.ctx.share(moves, self.graphs)]
        found = self.ctx.diagnose(pairs)
        key = self.final.key()
        out = [m[0] for m, d in zip(moves, found) if d.key() != key]
        return out + (["(pooled)"] if found[-1].key() != key else [])

    def unresolved_ok(self) -> bool | None:
        """priors/rejects: the variable is an unresolved belief and never a value conflict."""
        var = self.case.unresolved_variable
        if var is None:
            return None
        final = self.report["final"]
        listed = any(u["variable"] == var for u in final["unresolved_beliefs"])
        conflict = any(c["outcome"] == var for c in final["value_conflicts"])
        return listed and not conflict and not final["value_conflicts"]  # equal values: no conflict at all


def run_headless(case: Case, workdir: str | Path | None = None) -> Outcome:
    """Run the engine's headless session (agent + scripted human) on a case."""
    ctx = Context.of(case.scenario)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(workdir or tmp) / f"{case.name}.json"
        path.write_text(json.dumps(case.scenario), encoding="utf-8")
        report, events = run_session(path, ctx.model, ctx.oracle, mode="full")
    offers = [e for e in events if isinstance(e, Offered)]
    responses = [e for e in events if isinstance(e, Responded)]
    pooled, cells = 0, None
    for e in events:
        if isinstance(e, Diagnosed):
            cells = e.cells
        elif isinstance(e, Offered):
            pooled += e.if_accepted == cells
    graphs = dict(ctx.graphs)
    sender = {o.fact: o.sender for o in offers}
    for r in responses:
        graphs[r.by] = graphs[r.by].with_record(
            FactRecord(fact=r.fact, origin=sender[r.fact], turn=r.turn, status=r.response, reliability=r.reliability)
        )
    final = ctx.diagnose([(graphs["agent"], graphs["human"])])[0]
    return Outcome(case, ctx, report, offers, responses, pooled, graphs, final)


# -- brute force over subsets of the shareable facts ---------------------------------------------


class Subsets:
    """The diagnosis after sharing every subset of the shareable facts (one batched call)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.moves: list[Move] = ctx.shareable()
        self.table: dict[frozenset, Diagnosis] = ctx.subset_diagnoses(self.moves)
        self.subsets = list(self.table)
        self.all = frozenset(range(len(self.moves)))

    def index(self, moves: Sequence[Move]) -> frozenset:
        return frozenset(self.moves.index(m) for m in moves)

    def key(self, s: frozenset) -> tuple:
        return self.table[s].key()

    def stops(self, s: frozenset) -> bool:
        """No remaining fact alone, nor all remaining together, changes a swap-test choice."""
        k = self.key(s)
        return k == self.key(self.all) and all(self.key(s | {i}) == k for i in self.all - s)

    def fewest(self) -> int:
        return min(len(s) for s in self.subsets if self.stops(s))

    def subset_changes(self, s: frozenset) -> bool:
        """Some subset of the remaining facts (of any size) changes a choice."""
        k = self.key(s)
        rest = sorted(self.all - s)
        return any(
            self.key(s | frozenset(r)) != k for size in range(1, len(rest) + 1) for r in itertools.combinations(rest, size)
        )


# -- baselines --------------------------------------------------------------------------------


def share_all(ctx: Context, table: Subsets) -> dict:
    """Offer every unshared fact in file order; the receiver accepts or rejects by its rules."""
    moves = ctx.moves()
    accepted = [m for m in moves if ctx.accepts(m)]
    d = table.table[table.index(accepted)]
    return {"kind": d.kind, "offered": len(moves), "accepted": len(accepted), "offered_facts": [m[0] for m in moves]}


def naive(ctx: Context, table: Subsets, seed: int) -> dict:
    """Random order, stop at the first point where the parties' own choices agree."""
    moves = ctx.moves()
    random.Random(f"naive:{seed}").shuffle(moves)
    got: list[Move] = []
    offered: list[str] = []
    d = table.table[frozenset()]
    for m in moves:
        if d.kind == "agree":
            break
        offered.append(m[0])
        if ctx.accepts(m):
            got.append(m)
            d = table.table[table.index(got)]
    return {"kind": d.kind, "offered": len(offered), "accepted": len(got), "offered_facts": offered}


# -- one case, every measure ----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    kind: str
    expected: str
    got: str
    cells_ok: bool
    offered: int
    accepted: int
    rejected: int
    fewest: int
    pooled_offers: int
    inert_offered: int
    left: bool
    subset_left: bool
    unresolved_ok: bool | None
    rejected_ok: bool | None
    share_all: dict
    naive: dict
    problems: list[str] = field(default_factory=list)


def evaluate_case(case: Case) -> Result:
    out = run_headless(case)
    table = Subsets(out.ctx)
    accepted = table.index(out.accepted)
    left = bool(out.cruxes_left()) or bool(out.changers_left())
    inert = set(case.inert_facts)
    rejected_ok = None
    if case.rejected_fact is not None:
        rejected_ok = out.rejected == [case.rejected_fact] and case.rejected_fact in out.offered
    res = Result(
        name=case.name,
        kind=case.kind,
        expected=case.expected_kind,
        got=out.kind,
        cells_ok=out.cells == case.expected_cells,
        offered=len(out.offers),
        accepted=len(out.accepted),
        rejected=len(out.rejected),
        fewest=table.fewest(),
        pooled_offers=out.pooled_offers,
        inert_offered=sum(f in inert for f in out.offered),
        left=left,
        subset_left=table.subset_changes(accepted),
        unresolved_ok=out.unresolved_ok(),
        rejected_ok=rejected_ok,
        share_all=share_all(out.ctx, table),
        naive=naive(out.ctx, table, case.seed),
    )
    for b in (res.share_all, res.naive):
        b["inert"] = sum(f in inert for f in b.pop("offered_facts"))
    if res.got != res.expected:
        res.problems.append(f"final kind {res.got}, construction says {res.expected}")
    if not res.cells_ok:
        res.problems.append(f"final cells {out.cells}, construction says {case.expected_cells}")
    if out.final.key() != table.key(accepted) or out.final.kind != res.got:
        res.problems.append("the report's final diagnosis differs from re-deriving it")
    if res.inert_offered:
        res.problems.append(f"offered {res.inert_offered} inert fact(s)")
    if res.left:
        res.problems.append("an unshared fact left would change a swap-test choice")
    if res.unresolved_ok is False:
        res.problems.append(f"{case.unresolved_variable} is not an unresolved belief (or is a value conflict)")
    if res.rejected_ok is False:
        res.problems.append(f"{case.rejected_fact} was not offered and rejected")
    if not table.stops(accepted):
        res.problems.append("the final state is not a stopping point over the facts the human would accept")
    return res


# -- timing ---------------------------------------------------------------------------------------


def time_step(runs: int = 7, n_variables: int = 30, n_facts: int = 20) -> dict:
    """Median milliseconds of one ``rank_cruxes`` on a generated model."""
    data = large_scenario(0, n_variables, n_facts)
    ctx = Context.of(data)
    base = (ctx.graphs["agent"], ctx.graphs["human"])
    current = ctx.diagnose([base])[0]
    ranked = rank_cruxes(ctx.evaluator, ctx.graphs, current)  # warm-up (contraction paths)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rank_cruxes(ctx.evaluator, ctx.graphs, current)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "variables": len(data["world"]["variables"]),
        "facts": len(data["facts"]),
        "unshared": len(ctx.moves()),
        "cruxes": len(ranked),
        "runs": runs,
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
    }


def machine() -> dict:
    return describe(str(Context.of(large_scenario(0, 5, 1)).oracle.device))


# -- the whole bench ------------------------------------------------------------------------------


def summarise(results: Sequence[Result]) -> dict:
    def mean(xs):
        xs = list(xs)
        return round(sum(xs) / len(xs), 3) if xs else None

    def share(xs):
        xs = [x for x in xs if x is not None]
        return round(sum(bool(x) for x in xs) / len(xs), 3) if xs else None

    out = {}
    groups = {k: [r for r in results if r.kind == k] for k in KINDS}
    groups["all"] = list(results)
    for k, rs in groups.items():
        if not rs:
            continue
        out[k] = {
            "n": len(rs),
            "accuracy": share(r.got == r.expected for r in rs),
            "cells": share(r.cells_ok for r in rs),
            "offered": mean(r.offered for r in rs),
            "accepted": mean(r.accepted for r in rs),
            "rejected": mean(r.rejected for r in rs),
            "fewest": mean(r.fewest for r in rs),
            "at_fewest": share(r.accepted == r.fewest for r in rs),
            "pooled_offers": sum(r.pooled_offers for r in rs),
            "inert_offered": sum(r.inert_offered for r in rs),
            "left": sum(r.left for r in rs),
            "subset_left": sum(r.subset_left for r in rs),
            "unresolved_ok": share(r.unresolved_ok for r in rs),
            "share_all": {
                "accuracy": share(r.share_all["kind"] == r.expected for r in rs),
                "offered": mean(r.share_all["offered"] for r in rs),
                "accepted": mean(r.share_all["accepted"] for r in rs),
                "inert_offered": sum(r.share_all["inert"] for r in rs),
            },
            "naive": {
                "accuracy": share(r.naive["kind"] == r.expected for r in rs),
                "offered": mean(r.naive["offered"] for r in rs),
                "accepted": mean(r.naive["accepted"] for r in rs),
                "inert_offered": sum(r.naive["inert"] for r in rs),
                "wrong_as": _counts(r.naive["kind"] for r in rs if r.naive["kind"] != r.expected),
            },
        }
    return out


def _counts(xs) -> dict:
    out: dict = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out


def render(summary: dict, timing: dict, host: dict, failures: list, meta: dict) -> str:
    def pct(x):
        return "  -  " if x is None else f"{100 * x:5.1f}%"

    head = (
        f"{'kind':<8} {'n':>4} {'acc':>6} {'cells':>6} {'offered':>7} {'accepted':>8} {'fewest':>6} {'=min':>6} "
        f"{'pooled':>6} {'inert':>5} {'left':>4} {'subset':>6} {'unres':>6} | {'all:acc':>7} {'offered':>7} {'inert':>5} | "
        f"{'naive:acc':>9} {'offered':>7} {'inert':>5}"
    )
    lines = [
        f"Crux separation bench: {meta['cases']} cases, seed {meta['seed']}, "
        f"generated in {meta['generate_s']:.1f}s, evaluated in {meta['evaluate_s']:.1f}s",
        "",
        head,
        "-" * len(head),
    ]
    for k, s in summary.items():
        if k == "all":
            lines.append("-" * len(head))
        sa, nv = s["share_all"], s["naive"]
        lines.append(
            f"{k:<8} {s['n']:>4} {pct(s['accuracy']):>6} {pct(s['cells']):>6} {s['offered']:>7.2f} {s['accepted']:>8.2f} "
            f"{s['fewest']:>6.2f} {pct(s['at_fewest']):>6} {s['pooled_offers']:>6} {s['inert_offered']:>5} {s['left']:>4} {s['subset_left']:>6} "
            f"{pct(s['unresolved_ok']):>6} | {pct(sa['accuracy']):>7} {sa['offered']:>7.2f} {sa['inert_offered']:>5} | "
            f"{pct(nv['accuracy']):>9} {nv['offered']:>7.2f} {nv['inert_offered']:>5}"
        )
    lines.append("")
    wrong = {k: s["naive"]["wrong_as"] for k, s in summary.items() if k != "all" and s["naive"]["wrong_as"]}
    if wrong:
        lines.append("naive persuader's wrong diagnoses: " + "; ".join(f"{k}: {v}" for k, v in wrong.items()))
    lines.append(
        "columns: acc = final kind as constructed; cells = final swap-test choices as constructed; offered/accepted = "
        "mean facts per session; fewest = mean fewest accepted facts reaching a stopping point (brute force); "
        "=min = sessions at that minimum; pooled = offers of a fact that alone changes no choice (total); inert = inert facts offered (total); left = sessions ending with an unshared "
        "fact that alone or pooled changes a choice; subset = sessions where some other subset of the unshared facts "
        "would (not part of the stop rule); unres = priors/rejects variable in unresolved_beliefs, no value conflict; "
        "all = share every fact in file order; naive = random order, stop at first agreement."
    )
    lines.append("")
    lines.append(
        f"engine step (rank_cruxes, every unshared fact alone and pooled): {timing['variables']} variables, "
        f"{timing['facts']} facts ({timing['unshared']} unshared): median {timing['median_ms']} ms "
        f"(min {timing['min_ms']}, max {timing['max_ms']}, {timing['runs']} runs)"
    )
    lines.append(
        f"device: {host['device']}; cores: {host['cpu_count']} (usable {host['affinity']}); torch threads: "
        f"{host['torch_threads']}; torch {host['torch']}; python {host['python']}"
    )
    lines.append("")
    if failures:
        lines.append(f"FAILURES ({len(failures)}):")
        for f in failures[:30]:
            lines.append(f"  {f['name']}: {'; '.join(f['problems'])}")
    else:
        lines.append("no failures: every session matched its construction")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.separation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="how many scenarios (the kinds in turn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")
    parser.add_argument("--timing-runs", type=int, default=7)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    cases = generate_cases(args.cases, args.seed)
    t1 = time.perf_counter()
    results = [evaluate_case(c) for c in cases]
    t2 = time.perf_counter()
    timing = time_step(args.timing_runs)
    host = machine()
    summary = summarise(results)
    failures = [{"name": r.name, "kind": r.kind, "problems": r.problems} for r in results if r.problems]
    meta = {
        "cases": len(cases),
        "seed": args.seed,
        "generate_s": t1 - t0,
        "evaluate_s": t2 - t1,
        "generation_tries_mean": round(sum(c.tries for c in cases) / len(cases), 2),
        "initial_disagreement": round(sum(c.initial_disagrees for c in cases) / len(cases), 3),
        "initial_kinds": {
            k: _counts(c.initial_kind for c in cases if c.kind == k) for k in KINDS
        },
    }
    if args.json:
        print(
            json.dumps(
                {
                    "meta": {**meta, "generate_s": round(meta["generate_s"], 2), "evaluate_s": round(meta["evaluate_s"], 2)},
                    "kinds": summary,
                    "timing": timing,
                    "machine": host,
                    "failures": failures,
                },
                indent=2,
            )
        )
    else:
        print(render(summary, timing, host, failures, meta))
        print()
        print(
            "initial kinds by construction kind: "
            + "; ".join(f"{k}: {v}" for k, v in meta["initial_kinds"].items())
            + f"; initial disagreement in {100 * meta['initial_disagreement']:.1f}% of cases"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
