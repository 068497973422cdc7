"""Shared fixtures: the bundled examples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CANONICAL = EXAMPLES / "squirrel_or_cat.yaml"


@pytest.fixture(scope="session")
def canonical_path() -> Path:
    return CANONICAL


@pytest.fixture(scope="session")
def canonical():
    from crux.worldmodel.load import load_scenario

    return load_scenario(CANONICAL)


def to_a_conflict(make_live, tries: int = 40):
    """A live session (from ``make_live()``) whose value answers clash: the scripted human exchanges
    the facts and answers the signs, then the other questions at random (seeded) until the engine
    reports answers that cannot all hold.  Returns the session and the clash."""
    import random

    from crux.dialogue.parties import Agent, ScriptedHuman
    from crux.dialogue.protocol import ValueAnswer

    for seed in range(tries):
        live = make_live()
        engine = live.engine
        human, rng = ScriptedHuman(engine.scenario, engine.model.network), random.Random(seed)
        while engine.question is None:
            offer = engine.pending
            live.send(Agent().respond(offer) if offer.receiver == "agent" else human.respond(offer))
        while engine.conflict is None and engine.question is not None:
            q = engine.question
            choice = human.answer(q).choice if q.kind == "sign" else rng.choice([q.first, q.second])
            live.send(ValueAnswer(question=q.number, choice=choice))
        if engine.conflict is not None:
            return live, engine.conflict
        live.close()
    raise AssertionError(f"no clash in {tries} sessions answered at random")
