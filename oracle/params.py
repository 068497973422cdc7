"""Parameter uncertainty: the posterior mean and draws of every Dirichlet row, as one batch."""

from __future__ import annotations

import torch

from worldmodel.compile import BeliefState


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


def draw_tables(beliefs: BeliefState, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """``{var: (1 + samples, *table shape)}`` on the CPU in float64: index 0 is the
    posterior mean, then ``samples`` independent draws of each row from its
    Dirichlet.  Seeded, so answers are reproducible.
    """
    if beliefs.certain:
        return {var: beliefs.mean(var).unsqueeze(0).expand(samples + 1, *alpha.shape) for var, alpha in beliefs.concentration.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # one stream for all tables: seeds s and s + 1 share no draws
        return {
            var: torch.cat([beliefs.mean(var).unsqueeze(0), _draw(alpha, samples)], dim=0)
            for var, alpha in beliefs.concentration.items()
        }
