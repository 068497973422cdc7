"""Sessions on generated scenarios whose diagnosis is known by construction (bench.constructions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.constructions import EXPECTED_KIND, KINDS, Context, _may_stop_before, generate
from bench.separation import main as bench_main
from bench.separation import run_headless
from crux.worldmodel.load import validate_data

SEEDS = (0, 1, 2)
FINDINGS = Path(__file__).resolve().parents[2] / "bench" / "findings"


@pytest.fixture(scope="module")
def outcomes():
    return {(kind, seed): run_headless(generate(kind, seed)) for kind in KINDS for seed in SEEDS}


def test_generated_scenarios_are_valid_small_and_reproducible():
    for kind in KINDS:
        case = generate(kind, 7)
        assert generate(kind, 7).scenario == case.scenario
        scenario, problems = validate_data(case.scenario)
        assert scenario is not None, problems
        world = scenario.world
        assert 4 <= len(world.variables) <= 8
        assert all(2 <= len(v.states) <= 3 for v in world.variables.values())
        assert 2 <= len(world.variables[world.decision].states) <= 3
        assert len(world.outcomes) == 2
        assert case.expected_kind == EXPECTED_KIND[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_final_diagnosis_is_the_constructed_one(outcomes, kind):
    for seed in SEEDS:
        out = outcomes[(kind, seed)]
        case = out.case
        assert out.kind == case.expected_kind, case.name
        assert out.cells == case.expected_cells, case.name
        assert out.final.key() == tuple(out.cells[c] for c in ("aa", "ah", "ha", "hh"))


@pytest.mark.parametrize("kind", KINDS)
def test_no_inert_fact_is_offered(outcomes, kind):
    for seed in SEEDS:
        out = outcomes[(kind, seed)]
        assert not set(out.offered) & set(out.case.inert_facts), out.case.name
    if kind == "inert":
        assert all(outcomes[(kind, s)].case.inert_facts for s in SEEDS)


def test_inert_facts_change_no_expected_utility():
    case = generate("inert", 3)
    ctx = Context.of(case.scenario)
    inert = [m for m in ctx.moves() if m[0] in case.inert_facts]
    before, after = ctx.diagnose([(ctx.graphs["agent"], ctx.graphs["human"]), ctx.share(inert)])
    for cell, eu in before.expected.items():
        assert after.expected[cell] == pytest.approx(eu, abs=1e-12)


@pytest.mark.parametrize("kind", ["priors", "rejects"])
def test_unsettled_beliefs_stay_beliefs(outcomes, kind):
    for seed in SEEDS:
        out = outcomes[(kind, seed)]
        var = out.case.unresolved_variable
        final = out.report["final"]
        assert final["diagnosis"]["kind"] == "belief"
        assert var in [u["variable"] for u in final["unresolved_beliefs"]], out.case.name
        assert final["value_conflicts"] == []  # equal values: nothing is a value conflict
        if kind == "rejects":
            assert out.case.rejected_fact in out.offered
            assert out.rejected == [out.case.rejected_fact]


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_left_that_would_change_a_choice(outcomes, kind):
    for seed in SEEDS:
        out = outcomes[(kind, seed)]
        assert out.cruxes_left() == [], out.case.name
        assert out.changers_left() == [], out.case.name


def test_initial_diagnosis_is_the_recorded_one(outcomes):
    for (kind, seed), out in outcomes.items():
        assert out.report["initial"]["diagnosis"]["kind"] == out.case.initial_kind, out.case.name
        if kind == "both":
            assert out.case.initial_kind in ("both", "belief")
        if kind in ("facts", "inert", "both", "values"):
            assert out.case.initial_disagrees


def test_values_kind_exchanges_nothing(outcomes):
    for seed in SEEDS:
        out = outcomes[("values", seed)]
        assert out.offers == [] and out.report["initial"]["diagnosis"]["kind"] == "value"


def test_the_rejects_guard_spots_a_pool_masked_by_a_fact_to_be_rejected():
    data = json.loads((FINDINGS / "rejects_masked_pool.json").read_text())
    ctx = Context.of(data)
    doomed = ("r1", "agent", "human")
    assert not ctx.accepts(doomed)
    assert _may_stop_before(ctx, ctx.shareable(), doomed)
    for seed in SEEDS:
        case = generate("rejects", seed)
        ctx = Context.of(case.scenario)
        assert not _may_stop_before(ctx, ctx.shareable(), (case.rejected_fact, "agent", "human"))


def test_bench_script_runs(capsys):
    assert bench_main(["--cases", "12", "--seed", "5", "--json", "--timing-runs", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kinds"]["all"]["n"] == 12
    assert result["kinds"]["all"]["accuracy"] == 1.0
    assert result["kinds"]["all"]["left"] == 0 and result["kinds"]["all"]["inert_offered"] == 0
    assert result["failures"] == []
    assert result["machine"]["device"] == "cpu" and result["timing"]["median_ms"] > 0
