"""Vectorised Monte Carlo: ancestral sampling of many particles at once, likelihood weighting
for evidence, for what exact contraction cannot hold.

Particles live as integer tensors ``(S, B, M)`` — parameter draws, queries of one
structure, particles — until the answer is summarised.  Each variable's row is
gathered by its parents' flat index and sampled by comparing a uniform with the
row's cumulative sum.  Interventions fix a variable; hard evidence fixes it and
weighs the particle by its probability; soft evidence weighs it by the likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from oracle.exact import ImpossibleEvidence
from worldmodel.compile import Network


@dataclass(frozen=True)
class Estimate:
    """Self-normalised importance estimates, per draw and query."""

    p: dict[str, torch.Tensor]
    """``{target: (S, B, card)}``."""
    stderr: dict[str, torch.Tensor]
    """``{target: (S, B, card)}``: delta-method standard errors."""
    ess: torch.Tensor
    """``(S, B)`` effective sample size, (sum w)^2 / sum w^2."""


class Sampler:
    """Likelihood-weighted ancestral sampling over one network."""

    def __init__(self, network: Network):
        self.network = network

    def marginals(
        self,
        tables: Mapping[str, torch.Tensor],
        likelihood: Mapping[str, torch.Tensor],
        do: Sequence[str],
        do_states: torch.Tensor,
        given: Sequence[str],
        given_states: torch.Tensor,
        targets: Sequence[str],
        particles: int,
        generator: torch.Generator,
    ) -> Estimate:
        """Same arguments as :meth:`oracle.exact.ExactEngine.marginals` (tables ``(S, ...)`` or
        ``(S, B, ...)``), plus the number of particles per draw and query."""
        net = self.network
        any_table = next(iter(tables.values()))
        device, dtype = any_table.device, any_table.dtype
        samples, batch = any_table.shape[0], do_states.shape[0]
        shape = (samples, batch, particles)
        fixed = {v: do_states[:, j] for j, v in enumerate(do)}
        seen = {v: given_states[:, j] for j, v in enumerate(given)}
        s_index = torch.arange(samples, device=device).view(samples, 1, 1)
        b_index = torch.arange(batch, device=device).view(1, batch, 1)
        values: dict[str, torch.Tensor] = {}
        log_weight = torch.zeros(shape, dtype=dtype, device=device)
        for var in net.order:
            card = net.card(var)
            if var in fixed:
                values[var] = fixed[var].view(1, batch, 1).expand(shape)
                continue
            table = tables.get(var)
            if table is None:  # an unset decision (the exact path says which to set)
                raise ValueError(f"{var} has no table: set it with do")
            flat = torch.zeros(shape, dtype=torch.long, device=device)
            for parent in net.parents[var]:
                flat = flat * net.card(parent) + values[parent]
            per_query = table.dim() == len(net.shape(var)) + 2
            rows_table = table.reshape(samples, batch, -1, card) if per_query else table.reshape(samples, -1, card)
            rows = rows_table[s_index, b_index, flat] if per_query else rows_table[s_index, flat]
            if var in seen:
                state = seen[var].view(1, batch, 1).expand(shape)
                log_weight = log_weight + torch.log(rows.gather(-1, state.unsqueeze(-1)).squeeze(-1))
                values[var] = state
            else:
                u = torch.rand(shape, generator=generator, device=device, dtype=dtype).unsqueeze(-1)
                values[var] = (rows.cumsum(-1) < u).sum(-1).clamp_(max=card - 1)
            if var in likelihood:
                vec = likelihood[var].to(device=device, dtype=dtype)
                lik = vec[values[var]] if vec.dim() == 1 else vec[b_index.expand(shape), values[var]]
                log_weight = log_weight + torch.log(lik)
        # weights relative to each (draw, query)'s best particle: no underflow
        top = log_weight.amax(-1, keepdim=True)
        if bool((top[0] == float("-inf")).any()):
            raise ImpossibleEvidence(int((top[0, :, 0] == float("-inf")).nonzero()[0]))
        w = torch.exp(log_weight - top.clamp_min(torch.finfo(dtype).min))
        total = w.sum(-1, keepdim=True)
        ess = total.squeeze(-1) ** 2 / (w * w).sum(-1)
        p, stderr = {}, {}
        for target in targets:
            hot = torch.nn.functional.one_hot(values[target], net.card(target)).to(dtype)
            estimate = (w.unsqueeze(-1) * hot).sum(-2) / total
            spread = (w.unsqueeze(-1) ** 2 * (hot - estimate.unsqueeze(-2)) ** 2).sum(-2)
            p[target] = estimate
            stderr[target] = spread.sqrt() / total
        return Estimate(p=p, stderr=stderr, ess=ess)
