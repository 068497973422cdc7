"""Parameter uncertainty: the posterior mean and draws of every Dirichlet row, as one batch."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import torch

from crux.worldmodel.compile import BeliefState


def _draw(alpha: torch.Tensor, samples: int) -> torch.Tensor:
    positive = alpha > 0
    gamma = torch.distributions.Gamma(torch.where(positive, alpha, torch.ones_like(alpha)), 1.0)
    draws = gamma.sample((samples,)) * positive
    return draws / draws.sum(-1, keepdim=True).clamp_min(torch.finfo(draws.dtype).tiny)


def dirichlet_draws(alpha: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """``(samples, *alpha.shape)`` draws, one Dirichlet per row (last axis) of ``alpha``.

    Zero entries stay zero (a row with a structural zero is a Dirichlet over its
    other states).  Seeded without touching the global random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _draw(alpha, samples)


def variable_seed(seed: int, var: str) -> int:
    """A seed of each variable's own stream: draws do not depend on which other tables are drawn."""
    return (seed * 1_000_003 + zlib.crc32(var.encode("utf-8"))) % (2**63)


def draw_tables(
    beliefs: BeliefState, samples: int, seed: int, names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """``{var: (1 + samples, *table shape)}`` on the CPU in float64 for ``names`` (default: every
    table): index 0 is the posterior mean, then ``samples`` independent draws of each row from its
    Dirichlet.  Seeded per variable, so answers are reproducible however the tables are grouped.
    """
    chosen = list(beliefs.concentration if names is None else names)
    if beliefs.certain:
        return {v: beliefs.mean(v).unsqueeze(0).expand(samples + 1, *beliefs.concentration[v].shape) for v in chosen}
    out = {}
    for var in chosen:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(variable_seed(seed, var))
            draws = _draw(beliefs.concentration[var], samples)
        out[var] = torch.cat([beliefs.mean(var).unsqueeze(0), draws], dim=0)
    return out
