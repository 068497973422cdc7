"""Parameter uncertainty: the posterior mean and draws of every Dirichlet row, as one batch."""

from __future__ import annotations

import torch

from worldmodel.compile import BeliefState


def draw_tables(beliefs: BeliefState, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """``{var: (1 + samples, *table shape)}`` on the CPU in float64: index 0 is the
    posterior mean, then ``samples`` independent draws of each row from its
    Dirichlet.  Zero entries stay zero (a row with a structural zero is a
    Dirichlet over its other states).  Seeded, so answers are reproducible and do
    not touch the global random state.
    """
    out: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for var, alpha in beliefs.concentration.items():
            positive = alpha > 0
            gamma = torch.distributions.Gamma(torch.where(positive, alpha, torch.ones_like(alpha)), 1.0)
            draws = gamma.sample((samples,)) * positive
            draws = draws / draws.sum(-1, keepdim=True).clamp_min(torch.finfo(draws.dtype).tiny)
            out[var] = torch.cat([beliefs.mean(var).unsqueeze(0), draws], dim=0)
    return out
