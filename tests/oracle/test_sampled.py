"""Sampled answers against exact ones, and the choice between them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.oracle.exact import TooLarge
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from tests.conftest import CANONICAL
from crux.worldmodel.model import load_model

DATA = Path(__file__).resolve().parent.parent / "data"

CASES = [
    ("alarm.bif.gz", Query(do={"HYPOVOLEMIA": "TRUE"}, given={"BP": "LOW"}, outcomes=["CO", "HR", "LVFAILURE"])),
    ("child.bif.gz", Query(do={"Disease": "TGA"}, given={"Age": "0-3_days"}, outcomes=["LowerBodyO2", "CO2"])),
    ("asia.bif.gz", Query(given={"xray": "yes", "dysp": "no"}, outcomes=["lung", "tub", "bronc"])),
    (CANONICAL, Query(do={"action": "swerve"}, given={"road": "wet"}, as_="agent")),
    (CANONICAL, Query(do={"action": "brake"}, as_="human")),
]


@pytest.mark.parametrize(("path", "query"), CASES)
def test_sampled_lies_within_four_standard_errors_of_exact(path, query):
    model = load_model(DATA / path if isinstance(path, str) else path)
    exact = Oracle(model, device="cpu", samples=50).ask(query)
    sampled = Oracle(model, device="cpu", samples=50, method="sampled", particles=50_000, seed=3).ask(query)
    assert exact.method == "exact" and sampled.method == "sampled"
    for name, dist in sampled.outcomes.items():
        truth = exact.outcomes[name].p
        assert dist.stderr is not None
        for p, se, t in zip(dist.p, dist.stderr, truth):
            assert abs(p - t) <= 4 * se + 1e-12, (name, p, t, se)


@pytest.mark.parametrize("chunk", [7, 1 << 30])
def test_chunks_of_particles_add_up_to_one_estimate(monkeypatch, chunk):
    """Particles drawn in small chunks (weights rescaled as better particles come) give an
    estimate within 4 standard errors of exact, with the same effective sample size as one chunk
    would report for the same weights."""
    from dataclasses import replace

    import torch

    from crux.oracle.sample import Sampler

    monkeypatch.setattr("crux.oracle.sample._CHUNK", chunk)
    model = load_model(DATA / "alarm.bif.gz")
    query = Query(given={"BP": "LOW", "HR": "HIGH"}, outcomes=["CO", "LVFAILURE"])
    exact = Oracle(model, device="cpu", samples=2).ask(query)
    sampled = Oracle(model, device="cpu", samples=2, method="sampled", particles=30_000, seed=5).ask(query)
    for name, dist in sampled.outcomes.items():
        for p, se, t in zip(dist.p, dist.stderr, exact.outcomes[name].p):
            assert abs(p - t) <= 4 * se + 1e-12, (chunk, name, p, t, se)
    # Soft evidence for a rare state (tub=yes, about 1%) weighs its particles a million times more:
    # the best weight jumps when the first such particle comes, and what came before must shrink.
    asia = load_model(DATA / "asia.bif.gz")
    net, world = asia.network, asia.beliefs("world")
    tables = {v: world.mean(v).unsqueeze(0) for v in net.order}
    soft = torch.tensor([1.0, 1e-6], dtype=torch.float64)  # states (yes, no)
    assert net.states["tub"] == ("yes", "no")
    empty = torch.zeros(1, 0, dtype=torch.long)
    estimate = Sampler(net).marginals(tables, {"tub": soft}, [], empty, [], empty, ["tub"], 20_000, torch.Generator().manual_seed(1))
    truth = Oracle(asia, device="cpu", samples=2).posterior_means([Query(outcomes=["tub"])], beliefs=replace(world, likelihood={"tub": soft}))[0]["tub"]
    p, se = float(estimate.p["tub"][0, 0, 0]), float(estimate.stderr["tub"][0, 0, 0])
    assert abs(p - float(truth[0])) <= 4 * se + 1e-9, (p, float(truth[0]), se)
    assert 0 < float(estimate.ess[0, 0]) <= 20_000


def test_exact_refuses_what_does_not_fit_and_auto_falls_back():
    model = load_model(DATA / "alarm.bif.gz")
    query = Query(given={"BP": "LOW"}, outcomes=["CO"])
    with pytest.raises(TooLarge, match="needs an intermediate of .* over the .* allowed"):
        Oracle(model, device="cpu", method="exact", max_bytes=64).ask(query)
    answer = Oracle(model, device="cpu", method="auto", max_bytes=64, particles=20_000).ask(query)
    assert answer.method == "sampled" and answer.outcomes["CO"].stderr is not None
    assert Oracle(model, device="cpu").ask(query).method == "exact"


def test_sampled_impossible_evidence_is_an_error():
    model = load_model(CANONICAL)
    # harm=cat with animal=squirrel cannot happen
    with pytest.raises(Exception, match="probability 0"):
        Oracle(model, device="cpu", method="sampled", particles=1000).ask(
            Query(do={"action": "brake"}, given={"harm": "cat", "animal": "squirrel"})
        )


def test_cli_method_options():
    runner = CliRunner()
    result = runner.invoke(app, ["ask", str(DATA / "asia.bif.gz"), "--given", "xray=yes", "--outcome", "lung",
                                 "--method", "sampled", "--particles", "5000", "--json"])
    assert result.exit_code == 0, result.stderr
    import json

    answer = json.loads(result.stdout)
    assert answer["method"] == "sampled" and len(answer["outcomes"]["lung"]["stderr"]) == 2
    result = runner.invoke(app, ["ask", str(DATA / "asia.bif.gz"), "--given", "xray=yes", "--method", "exact",
                                 "--max-memory", "1e-9"])
    assert result.exit_code == 1 and "GiB allowed: use --method sampled" in result.stderr
    result = runner.invoke(app, ["ask", str(DATA / "asia.bif.gz"), "--given", "xray=yes", "--method", "magic"])
    assert result.exit_code == 1 and "unknown method 'magic'" in result.stderr


def test_states_of_probability_zero_are_never_drawn(tmp_path):
    """The cumulative rows are compared in float32: rounding keeps them sorted, so a state of
    probability 0 (first, inner or last) spans no uniform, and the others keep their shares."""
    import torch

    from crux.oracle.sample import Sampler

    bif = tmp_path / "zeros.bif"
    bif.write_text(
        "network zeros { }\n"
        "variable P { type discrete [ 3 ] { p0, p1, p2 }; }\n"
        "variable X { type discrete [ 4 ] { x0, x1, x2, x3 }; }\n"
        "probability ( P ) { table 0.2, 0.3, 0.5; }\n"
        "probability ( X | P ) { (p0) 0.0, 0.5, 0.0, 0.5; (p1) 0.3, 0.0, 0.7, 0.0; (p2) 0.0, 0.0, 1.0, 0.0; }\n"
    )
    model = load_model(bif)
    net, world = model.network, model.beliefs("world")
    tables = {v: world.mean(v).unsqueeze(0) for v in net.order}
    empty = torch.zeros(1, 0, dtype=torch.long)
    rows = tables["X"][0]
    for k in range(3):  # P set to each state: X is drawn from that row
        drawn = Sampler(net).marginals(
            tables, {}, ["P"], torch.tensor([[k]]), [], empty, ["X"], 100_000, torch.Generator().manual_seed(k)
        )
        p, se = drawn.p["X"][0, 0], drawn.stderr["X"][0, 0]
        for j, truth in enumerate(rows[k].tolist()):
            if truth == 0.0:
                assert float(p[j]) == 0.0, (k, j)
            else:
                assert abs(float(p[j]) - truth) <= 4 * float(se[j]) + 1e-12, (k, j, float(p[j]), truth)
