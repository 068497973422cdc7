"""Additive utilities over outcome states, range normalisation and expected utility.

A party's utility of a joint outcome is the sum of its utilities of each
outcome's state (unlisted states are 0).  To compare parties, each utility is
rescaled to [0, 1] over all joint outcome states; because it is additive, the
expected normalised utility needs only each outcome's marginal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from crux.worldmodel.compile import Network
from crux.worldmodel.spec import UNKNOWN

TIE_TOLERANCE = 1e-12
"""Expected utilities closer than this are a tie; ties go to the action listed first."""


@dataclass(frozen=True)
class Utility:
    """Utilities per outcome state, as vectors aligned with the network's states."""

    vectors: Mapping[str, tuple[float, ...]]

    @classmethod
    def from_values(cls, values: Mapping[str, Mapping[str, float]], network: Network) -> Utility:
        vectors = {  # continuous outcomes have no states to score
            o: tuple(float(values.get(o, {}).get(s, 0.0)) for s in network.states[o])
            for o in network.outcomes
            if o not in network.continuous
        }
        return cls(vectors)

    @property
    def low(self) -> float:
        """The worst joint outcome's utility."""
        return sum(min(v) for v in self.vectors.values())

    @property
    def high(self) -> float:
        """The best joint outcome's utility."""
        return sum(max(v) for v in self.vectors.values())

    def normalised(self) -> dict[str, torch.Tensor]:
        """Per-outcome vectors whose sum over outcomes lies in [0, 1] (each shifted by its minimum)."""
        span = self.high - self.low
        return {
            o: torch.tensor([(u - min(v)) / span if span > 0 else 0.0 for u in v], dtype=torch.float64)
            for o, v in self.vectors.items()
        }

    def expected(self, marginals: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Expected normalised utility from outcome marginals of shape ``(..., card)``."""
        total = None
        for o, vec in self.normalised().items():
            term = marginals[o] @ vec.to(marginals[o])
            total = term if total is None else total + term
        assert total is not None  # a network with outcomes
        return total


def choose(expected: Sequence[float]) -> int:
    """Index of the best action; ties (within :data:`TIE_TOLERANCE`) go to the first listed."""
    best = max(expected)
    return next(i for i, eu in enumerate(expected) if eu >= best - TIE_TOLERANCE)


def split_values(values: Mapping | str, network: Network) -> tuple[dict[str, dict[str, float]], list[str]]:
    """A party's values as written (``unknown``, or ``{outcome: {state: utility} or unknown}``) split
    into the stated utilities of every discrete outcome (an unlisted one is 0) and the outcomes whose
    utilities are unknown, in the network's order."""
    discrete = [o for o in network.outcomes if o not in network.continuous]
    if values == UNKNOWN:
        return {}, discrete
    unknown = [o for o in discrete if values.get(o) == UNKNOWN]
    stated = {o: {s: float(u) for s, u in values.get(o, {}).items()} for o in discrete if o not in unknown}
    return stated, unknown
