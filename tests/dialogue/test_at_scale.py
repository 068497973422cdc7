"""Sessions at real size: the fast paths say what the slow ones said.

- Incremental belief states equal compiling from scratch, bit for bit.
- A turn's ranking makes a bounded number of oracle calls, however many facts there are.
- The greedy shrinking of a redundant pool, batched, keeps the facts trying one at a time keeps.
- Whole sessions (the bundled examples in both modes, generated scenarios, the constructed
  cases of ``bench.constructions``) give the same turns, diagnoses, unresolved beliefs and value
  conflicts as the engine before these paths (``tests/data/sessions_golden.json``, written by
  that engine: ``python -m tests.dialogue.test_at_scale OUT.json`` writes it again).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from crux.beliefs.graph import BeliefGraph, FactRecord
from bench.constructions import generate_cases
from bench.scenarios import generated
from crux.dialogue import cruxes
from crux.dialogue.cruxes import rank_cruxes
from crux.dialogue.elicitation import Elicitation
from crux.dialogue.engine import Engine
from crux.dialogue.session import run_session
from crux.oracle.oracle import Oracle
from crux.worldmodel.compile import compile_beliefs
from crux.worldmodel.model import load_model

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "sessions_golden.json"
EXAMPLES = ("squirrel_or_cat", "anticoagulation", "squirrel_or_cat_unknown_values")
SIZES = ((10, 5), (20, 8), (30, 10))


def _write(data: dict, folder: Path) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
    return path


def _cases(folder: Path) -> list[tuple[str, Path, str]]:
    """(key, scenario file, mode) of the seeded set."""
    out = []
    for name in EXAMPLES:
        for mode in ("full", "predict-only"):
            out.append((f"{name}:{mode}", ROOT / "examples" / f"{name}.yaml", mode))
    for size in SIZES:
        for seed in range(6):
            path = _write(generated(seed, *size), folder)
            for mode in ("full", "predict-only"):
                out.append((f"{path.stem}:{mode}", path, mode))
    for case in generate_cases(24, seed=7):
        data = {**case.scenario, "name": f"c-{case.kind}-{case.seed}"}
        out.append((f"{data['name']}:full", _write(data, folder), "full"))
    return out


def _essence(report: dict) -> dict:
    """What must not change: each diagnosis (kind, shares, cells, choices), every turn's offer and
    response, the unresolved beliefs with their value of information, the value conflicts."""

    def diagnosis(d: dict) -> dict:
        x = d["diagnosis"]
        return {
            "kind": x["kind"], "belief_share": x["belief_share"], "value_share": x["value_share"],
            "cells": x.get("cells"), "choices": d["choices"],
        }

    keys = ("variable", "given", "kind", "agent", "human", "value_of_information")
    return {
        "initial": diagnosis(report["initial"]),
        "turns": [
            {k: t.get(k) for k in ("turn", "from", "to", "fact", "response")} | {"after": diagnosis(t)}
            for t in report["turns"]
        ],
        "final": diagnosis(report["final"]),
        "unresolved": [{k: u.get(k) for k in keys} for u in report["final"].get("unresolved_beliefs", [])],
        "conflicts": report["final"].get("value_conflicts"),
    }


def _session(path: Path, mode: str) -> dict:
    model = load_model(path)
    report, _ = run_session(path, model, Oracle(model, device="cpu"), mode=mode)
    return _essence(report)


def _differences(old, new, at: str = "") -> list[str]:
    """Where two essences differ; numbers within 2e-6 (a report rounds to 6 decimals) agree."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return [f"{at}: keys {sorted(set(old) ^ set(new))}"]
        return [m for k in old for m in _differences(old[k], new[k], f"{at}.{k}")]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{at}: {len(old)} entries, now {len(new)}"]
        return [m for i, (x, y) in enumerate(zip(old, new)) for m in _differences(x, y, f"{at}[{i}]")]
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool):
        return [] if abs(old - new) <= 2e-6 + 1e-6 * abs(old) else [f"{at}: {old} -> {new}"]
    return [] if old == new else [f"{at}: {old!r} -> {new!r}"]


def test_sessions_say_what_they_said(tmp_path):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    cases = _cases(tmp_path)
    assert sorted(golden) == sorted(key for key, _, _ in cases)
    changed = {}
    for key, path, mode in cases:
        found = _differences(golden[key], _session(path, mode))
        if found:
            changed[key] = found[:3]
    assert not changed, changed


# -- incremental beliefs ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_incremental_beliefs_are_the_compiled_ones(tmp_path, seed):
    model = load_model(_write(generated(seed, 30, 12), tmp_path))
    scenario, network = model.scenario, model.network
    graph = BeliefGraph.initial(scenario, network, "human")
    for k, fact in enumerate(f for f in scenario.facts if not graph.seen(f)):
        status, reliability = ("rejected", None) if k % 3 == 2 else ("accepted", 0.5 if k % 4 == 1 else None)
        before = graph
        graph = graph.with_record(FactRecord(fact, "agent", k + 1, status, reliability))  # type: ignore[arg-type]
        made = graph.state
        if status == "rejected":
            assert made is before.state  # nothing changes: the very same numbers
        compiled = compile_beliefs(scenario, network, graph.priors, graph.facts_in_force())
        assert made.concentration.keys() == compiled.concentration.keys()
        assert made.likelihood.keys() == compiled.likelihood.keys()
        for v in compiled.concentration:
            assert torch.equal(made.concentration[v], compiled.concentration[v]), v
        for v in compiled.likelihood:
            assert torch.equal(made.likelihood[v], compiled.likelihood[v]), v
    # a record that replaces one (a discount after accepting) is compiled afresh, and still right
    last = graph.records[-1]
    again = graph.with_record(FactRecord(last.fact, last.origin, last.turn, "accepted", 0.3))
    compiled = compile_beliefs(scenario, network, again.priors, again.facts_in_force())
    assert all(torch.equal(again.state.concentration[v], compiled.concentration[v]) for v in compiled.concentration)
    assert all(torch.equal(again.state.likelihood[v], compiled.likelihood[v]) for v in compiled.likelihood)


def test_hypothetical_beliefs_share_what_they_do_not_change(canonical_path):
    model = load_model(canonical_path)
    scenario = model.scenario
    kinds = set()
    graphs = [BeliefGraph.initial(scenario, model.network, party) for party in ("agent", "human")]
    for graph, fact in ((g, f) for g in graphs for f in scenario.facts if not g.seen(f)):
        after = graph.with_facts([fact], "human", 1).state
        counts = scenario.facts[fact].counts
        tabled = {counts.variable} if counts is not None else set()
        observed = set(scenario.facts[fact].observe or {})
        kinds.add("counts" if counts is not None else "observe")
        for v, table in graph.state.concentration.items():
            assert (after.concentration[v] is table) == (v not in tabled)
        for v, vec in after.likelihood.items():
            assert (graph.state.likelihood.get(v) is vec) == (v not in observed)
    assert kinds == {"counts", "observe"}


# -- a turn's oracle calls ----------------------------------------------------------------------


@pytest.mark.parametrize("facts", [4, 12, 30])
def test_a_turn_ranks_every_fact_in_a_bounded_number_of_calls(tmp_path, monkeypatch, facts):
    calls = []
    real = Oracle.posterior_means

    def counted(self, queries, beliefs=None):
        calls.append(len(queries))
        return real(self, queries, beliefs)

    for seed in range(3):
        model = load_model(_write(generated(seed, 14, facts), tmp_path))
        engine = Engine(model, Oracle(model, device="cpu"), "full", Elicitation())
        engine._rediagnose()
        monkeypatch.setattr(Oracle, "posterior_means", counted)
        calls.clear()
        rank_cruxes(engine.evaluator, engine.graphs, engine.diagnosis)
        monkeypatch.setattr(Oracle, "posterior_means", real)
        # every fact alone and the pool in one call; the facts the pool needs in one more; the
        # shrinking of a redundant pool in one per fact it keeps (none of these cases has one)
        assert 1 <= len(calls) <= 2, (seed, calls)
        assert calls[0] >= len(cruxes.unshared(engine.graphs))


class _Pool:
    """A stand-in evaluator: a pool "changes a choice" when it holds enough weight."""

    def __init__(self, weights: dict[str, int], need: int):
        self.weights, self.need, self.calls = weights, need, 0

    def diagnose(self, pools):
        self.calls += 1
        return [_Verdict(sum(self.weights[m] for m in pool) >= self.need) for pool in pools]


class _Verdict:
    def __init__(self, changes: bool):
        self.changes = changes

    def differs(self, current) -> bool:
        return self.changes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=12), st.integers(1, 30))
def test_the_batched_shrink_keeps_what_one_at_a_time_keeps(weights, need):
    moves = [f"f{i}" for i in range(len(weights))]
    pool = _Pool(dict(zip(moves, weights)), need)
    original = cruxes._with
    cruxes._with = lambda graphs, trial: frozenset(trial)  # a pool is the set of its facts here
    try:
        order = sorted(moves, key=lambda m: pool.weights[m])
        found = cruxes._minimal(pool, {}, moves, order, None)  # type: ignore[arg-type]
        assert pool.calls <= len(found) + 1  # one call per fact kept, and one more
        expected = set(moves)
        for m in order:  # the reference: one fact at a time
            if pool.diagnose([frozenset(expected - {m})])[0].changes:
                expected.discard(m)
    finally:
        cruxes._with = original
    assert found == expected


if __name__ == "__main__":  # write the golden file from the engine at hand
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        written = {key: _session(path, mode) for key, path, mode in _cases(Path(folder))}
    Path(sys.argv[1]).write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
