"""Facts: evidence with a text, a source and a reliability, as the scenario format defines them."""

from __future__ import annotations

from crux.worldmodel.spec import Fact

__all__ = ["Fact", "informs", "with_reliability"]


def informs(fact: Fact) -> list[str]:
    """The variables a fact bears on: those it observes, or the one whose row it counts."""
    if fact.counts is not None:
        return [fact.counts.variable]
    return list(fact.observe or {})


def with_reliability(fact: Fact, reliability: float | None) -> Fact:
    """The fact as a receiver weighs it: a discount changes an observe fact's likelihood,
    and scales a counts fact's counts (data trusted at r counts as r times as much)."""
    if reliability is None:
        return fact
    if fact.counts is not None:
        scaled = {state: n * reliability for state, n in fact.counts.counts.items()}
        return fact.model_copy(update={"counts": fact.counts.model_copy(update={"counts": scaled})})
    return fact.model_copy(update={"reliability": reliability})
