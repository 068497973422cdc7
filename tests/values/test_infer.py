"""Inferring values from choices (Pyro NUTS): recovery, the identifiability demonstration, the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from typer.testing import CliRunner

from dialogue.cli.app import app
from oracle.oracle import Oracle
from tests.conftest import CANONICAL, EXAMPLES
from values.infer import Choice, free_states, identifiability, infer_values, infer_values_and_beliefs, simulate_choices
from worldmodel.errors import CruxError
from worldmodel.model import load_model

TRUTH = torch.tensor([-10 / 550, -300 / 550, -250 / 550], dtype=torch.float64)  # the human's, normalised


@pytest.fixture(scope="module")
def setting():
    model = load_model(CANONICAL)
    return model, Oracle(model, device="cpu")


def situations(variables=("road", "animal", "oncoming")):
    states = {"road": ["dry", "wet"], "animal": ["squirrel", "cat"], "oncoming": ["clear", "car"]}
    return [dict(zip(variables, c)) for c in itertools.product(*(states[v] for v in variables))]


def test_known_beliefs_recover_the_utilities(setting):
    model, oracle = setting
    assert free_states(model.network) == [("harm", "squirrel"), ("harm", "cat"), ("crash", "crash")]
    beliefs = model.beliefs("human")
    choices = simulate_choices(oracle, beliefs, TRUTH, 30.0, situations() * 5, seed=1)
    posterior = infer_values(oracle, beliefs, choices, draws=250, warmup=200, seed=0)
    bounds = torch.quantile(posterior.utility, torch.tensor([0.005, 0.995], dtype=torch.float64), dim=0)
    assert bool(((bounds[0] <= TRUTH) & (TRUTH <= bounds[1])).all()), (bounds, TRUTH)
    assert (posterior.utility.mean(0) - TRUTH).abs().max() < 0.06
    # the 99% interval, like the utilities' above: a 90% interval misses the truth one time in ten,
    # and which time depends on the last bits of the features the sampler starts from
    low, high = torch.quantile(posterior.beta, torch.tensor([0.005, 0.995], dtype=torch.float64)).tolist()
    assert low < 30.0 < high
    assert set(posterior.summary()["beta"]) == {"mean", "interval"}


def test_pinned_beliefs_narrow_the_values(setting):
    """From choices alone, a passenger who swerves may think no car is coming on a dry road, or
    may not fear a crash: with the road and oncoming priors unknown, the harm utilities are wider
    than with the beliefs pinned, as a dialogue pins them.

    Only what held on every NUTS seed tried (0-3, at 200 and 600 draws) is asserted: harm=squirrel
    narrows by 0.07-0.34.  The crash utility's narrowing ranged from -0.63 to +0.49 between seeds
    (the joint posterior mixes poorly), so it is reported, not asserted."""
    model, oracle = setting
    beliefs = model.beliefs("human")
    choices = simulate_choices(oracle, beliefs, TRUTH, 30.0, [{"animal": a} for a in ("squirrel", "cat")] * 12, seed=2)
    pinned = infer_values(oracle, beliefs, choices, draws=200, warmup=150, seed=0)
    joint = infer_values_and_beliefs(oracle, beliefs, choices, ["road", "oncoming"], draws=200, warmup=150, seed=0)
    report = identifiability(pinned, joint)
    assert report["width_pinned"]["harm=squirrel"] < report["width_unknown_beliefs"]["harm=squirrel"]
    assert set(report["narrowing"]) == {"harm=squirrel", "harm=cat", "crash=crash"}
    assert {"P(road=dry)", "P(oncoming=car)"} <= set(joint.summary())


def test_bad_choices_name_the_valid_ones(setting):
    model, oracle = setting
    with pytest.raises(CruxError, match="unknown action 'fly'"):
        infer_values(oracle, model.beliefs("human"), [Choice(given={}, chose="fly")], draws=50, warmup=50)
    with pytest.raises(CruxError, match="unknown state of road 'icy'"):
        infer_values(oracle, model.beliefs("human"), [Choice(given={"road": "icy"}, chose="brake")], draws=50, warmup=50)


def test_cli_values_infer(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["values", "infer", str(CANONICAL), "--choices", str(EXAMPLES / "choices" / "squirrel_or_cat.yaml"), "--draws", "100", "--json"],
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["choices"] == 12 and set(report["posterior"]["utilities"]) == {"harm", "crash"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("choices:\n  - {given: {road: wet}, choose: swerve}\n")
    result = runner.invoke(app, ["values", "infer", str(CANONICAL), "--choices", str(bad)])
    assert result.exit_code == 1 and "choices[0]" in result.stderr and "Traceback" not in result.stderr
