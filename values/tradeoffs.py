"""Value conflicts: outcome states the parties weigh differently, and the trade-off in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from crux.values.utility import Utility

TOLERANCE = 1e-9


@dataclass(frozen=True)
class ValueConflict:
    outcome: str
    state: str
    agent: float
    human: float
    drive: float
    """How much this difference moves the choice: |difference| times how much the two
    choices differ in the probability of this state."""
    human_interval: tuple[float, float] | None = None
    """The 90% interval of the human's number when their values were elicited, not stated."""

    def to_json(self) -> dict:
        out = {
            "outcome": self.outcome,
            "state": self.state,
            "agent": round(self.agent, 6),
            "human": round(self.human, 6),
            "drive": round(self.drive, 6),
        }
        if self.human_interval is not None:
            out["human_interval"] = [round(x, 6) for x in self.human_interval]
        return out


def state_weights(utility: Utility) -> dict[tuple[str, str], float]:
    """Each outcome state's utility divided by the party's range (the scale of SCENARIO.md's report)."""
    span = utility.high - utility.low
    states = {}
    for o, vec in utility.vectors.items():
        for i, u in enumerate(vec):
            states[(o, i)] = u / span if span > 0 else 0.0
    return states  # type: ignore[return-value]


def value_conflicts(
    agent: Utility,
    human: Utility,
    state_names: Mapping[str, tuple[str, ...]],
    difference: Mapping[str, torch.Tensor] | None = None,
    human_intervals: Mapping[tuple[str, str], Sequence[float]] | None = None,
) -> list[ValueConflict]:
    """Outcome states whose normalised utilities differ, ranked by how much each drives the choice.

    ``difference[o]`` is P(o | one party's choice) - P(o | the other's), per
    state; without it every conflict has drive 0 and the order is by size.
    ``human_intervals[(outcome, state)]`` is the 90% interval of the human's
    number (utility / range) when their values were elicited.
    """
    wa, wh = state_weights(agent), state_weights(human)
    out = []
    for (o, i), a in wa.items():
        h = wh[(o, i)]
        if abs(a - h) <= TOLERANCE:
            continue
        moved = float(difference[o][i].abs()) if difference is not None else 0.0
        name = state_names[o][i]
        interval = human_intervals.get((o, name)) if human_intervals is not None else None
        out.append(ValueConflict(o, name, a, h, abs(a - h) * moved, None if interval is None else tuple(interval)))
    return sorted(out, key=lambda c: (-c.drive, -abs(c.agent - c.human)))


def tradeoff(conflicts: list[ValueConflict]) -> str | None:
    """The main trade-off in words, from the human's side, or None when there is no opposite pair."""
    heavier_human = [c for c in conflicts if c.human < c.agent]  # the human fears it more
    heavier_agent = [c for c in conflicts if c.agent < c.human]
    if not heavier_human or not heavier_agent:
        if conflicts:
            c = conflicts[0]
            who = "you" if abs(c.human) > abs(c.agent) else "the agent"
            return f"{who} weigh{'s' if who != 'you' else ''} {c.outcome}={c.state} more heavily"
        return None
    spare, risk = heavier_human[0], heavier_agent[0]
    return (
        f"you would risk {risk.outcome}={risk.state} to avoid {spare.outcome}={spare.state}; "
        "the agent would not"
    )
