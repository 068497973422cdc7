"""Elicitation: questions chosen by information about the decision, answers reweighing the values."""

from __future__ import annotations

import json
import random

import torch
from typer.testing import CliRunner

from dialogue.cli.app import app
from oracle.oracle import Oracle
from tests.conftest import CANONICAL
from values.elicit import Elicitor, simulated_answer
from worldmodel.model import load_model


def elicit(truth: torch.Tensor, order: str, seed: int, cap: int = 30):
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=8000, seed=seed)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    while not elicitor.settled() and len(elicitor.asked) < cap:
        if order == "information":
            question = elicitor.best_question()
        else:
            question = rng.choice([q for q in elicitor.questions if all(q is not a for a, _ in elicitor.asked)])
        elicitor.answer(question, simulated_answer(question, truth, gen))
    true_decision = elicitor.actions[int((elicitor.decision_features @ truth).argmax())]
    return len(elicitor.asked), elicitor.decision()[0], true_decision


def test_the_human_of_the_canonical_example():
    """The passenger's own values (harm: squirrel -10, cat -300; crash -250), beta 30."""
    truth = 30 * torch.tensor([-10 / 550, -300 / 550, -250 / 550], dtype=torch.float64)
    asked, decided, true_decision = elicit(truth, "information", seed=0)
    assert decided == true_decision == "swerve"
    assert asked <= 15


def test_questions_and_answers():
    model = load_model(CANONICAL)
    elicitor = Elicitor(Oracle(model, device="cpu"), model.beliefs("human"), particles=2000)
    kinds = {q.kind for q in elicitor.questions}
    assert kinds == {"actions", "outcomes"}
    assert len(elicitor.situations) == 8  # road x animal x oncoming
    worse = next(q for q in elicitor.questions if q.kind == "outcomes" and q.first == "harm=squirrel" and q.second == "harm=cat")
    assert worse.text() == "Which is worse: harm=squirrel or harm=cat?"
    before = elicitor.summary()["harm"]["cat"]["mean"]
    for _ in range(3):
        elicitor.answer(worse, "harm=cat")
    assert elicitor.summary()["harm"]["cat"]["mean"] < before
    assert elicitor.information(worse) >= 0


def test_information_beats_random_order():
    rng = random.Random(1)
    totals = {"information": 0, "random": 0}
    for seed in range(6):
        raw = torch.tensor([rng.gauss(0, 1) for _ in range(3)], dtype=torch.float64)
        truth = 20 * raw / raw.abs().sum()
        for order in totals:
            asked, _, _ = elicit(truth, order, seed)
            totals[order] += asked
    assert totals["information"] < totals["random"]


def test_cli_elicit_with_scripted_answers():
    runner = CliRunner()
    result = runner.invoke(app, ["values", "elicit", str(CANONICAL), "--max-questions", "3", "--json"], input="1\n2\n1\n")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])  # the test runner echoes the typed answers
    assert len(report["questions"]) == 3 and report["decision"] in ("brake", "swerve", "continue")
