"""Expected utility of every action under many belief states, through one batched oracle call.

The prediction (each action's outcome marginals) is the oracle's
(:func:`~oracle.predict.action_marginals`); weighing it by utilities is done here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crux.oracle.oracle import Oracle
from crux.oracle.predict import action_marginals
from crux.values.utility import Utility
from crux.worldmodel.compile import BeliefState


def expected_utilities(
    oracle: Oracle, states: Sequence[BeliefState], utilities: Sequence[Utility]
) -> torch.Tensor:
    """``(len(states), len(utilities), actions)``: every belief state against every utility."""
    marginals = action_marginals(oracle, states)
    return torch.stack([torch.stack([u.expected(m) for u in utilities]) for m in marginals])
