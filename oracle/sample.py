"""Vectorised Monte Carlo: ancestral sampling of many particles at once, likelihood weighting
for evidence, for what exact contraction cannot hold (large networks, continuous variables).

Particles live as tensors ``(S, B, M)`` — parameter draws, queries of one structure,
particles — until the answer is summarised.  A discrete variable's row is gathered by
its parents' flat index and sampled by comparing a uniform with the row's cumulative
sum; a continuous one is normal around a mean linear in its parents.  Interventions fix
a variable; hard evidence fixes it and weighs the particle by its probability (for a
continuous variable, its density, with Pyro's Normal); soft evidence weighs it by the
likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from pyro.distributions import Normal as NormalLaw

from oracle.exact import ImpossibleEvidence
from worldmodel.compile import Network
from worldmodel.spec import Normal

QUANTILES = (0.05, 0.95)


@dataclass(frozen=True)
class Estimate:
    """Self-normalised importance estimates, per draw and query."""

    p: dict[str, torch.Tensor]
    """``{target: (S, B, card)}``; for a continuous target ``(S, B, 4)``: mean, sd, 5% and 95% quantiles."""
    stderr: dict[str, torch.Tensor]
    """Delta-method standard errors, same shapes (a continuous target: the mean's, in slot 0)."""
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
        normal: Mapping[str, Normal] | None = None,
        set_values: Mapping[str, torch.Tensor] | None = None,
        seen_values: Mapping[str, torch.Tensor] | None = None,
        only: set[str] | None = None,
    ) -> Estimate:
        """Same arguments as :meth:`oracle.exact.ExactEngine.marginals` (tables ``(S, ...)`` or
        ``(S, B, ...)``; ``do``/``given`` name discrete variables), plus the number of particles
        per draw and query, the laws of continuous variables, and the values ``(B,)`` at which
        continuous variables are set (``set_values``) or seen (``seen_values``)."""
        net = self.network
        normal, set_values, seen_values = normal or {}, set_values or {}, seen_values or {}
        any_table = next(iter(tables.values()), None)
        device = do_states.device
        dtype = any_table.dtype if any_table is not None else torch.float64
        samples, batch = (any_table.shape[0] if any_table is not None else 1), do_states.shape[0]
        shape = (samples, batch, particles)
        fixed = {v: do_states[:, j] for j, v in enumerate(do)}
        seen = {v: given_states[:, j] for j, v in enumerate(given)}
        s_index = torch.arange(samples, device=device).view(samples, 1, 1)
        b_index = torch.arange(batch, device=device).view(1, batch, 1)
        values: dict[str, torch.Tensor] = {}
        log_weight = torch.zeros(shape, dtype=dtype, device=device)

        def per_query(vector: torch.Tensor) -> torch.Tensor:
            return vector.to(device=device, dtype=dtype).view(1, batch, 1).expand(shape)

        order = net.order if only is None else sorted(only, key=net.position.__getitem__)
        for var in order:
            if var in net.continuous:
                if var in set_values:
                    values[var] = per_query(set_values[var])
                    continue
                law = normal[var]
                mean = torch.full(shape, float(law.intercept), dtype=dtype, device=device)
                for parent, weight in law.weights.items():
                    mean = mean + weight * values[parent]
                for parent, offsets in law.offsets.items():
                    shift = torch.tensor([offsets.get(s, 0.0) for s in net.states[parent]], dtype=dtype, device=device)
                    mean = mean + shift[values[parent]]
                if var in seen_values:
                    values[var] = per_query(seen_values[var])
                    log_weight = log_weight + NormalLaw(mean, float(law.scale)).log_prob(values[var])
                else:
                    noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
                    values[var] = mean + float(law.scale) * noise
                continue
            card = net.card(var)
            if var in fixed:
                values[var] = fixed[var].view(1, batch, 1).expand(shape)
                continue
            table = tables.get(var)
            if table is None:  # an unset decision (the exact path says which to set)
                raise ValueError(f"{var} has no table: set it with do")
            # one flat row index per particle: (draw, [query,] parent states), rows gathered at once
            by_query = table.dim() == len(net.shape(var)) + 2
            flat = (s_index * batch + b_index if by_query else s_index).expand(shape).clone()
            flat *= table[0, 0].numel() // card if by_query else table[0].numel() // card
            stride = 1
            for parent in reversed(net.parents[var]):
                flat += values[parent] * stride
                stride *= net.card(parent)
            rows = table.reshape(-1, card)
            if var in seen:
                state = seen[var].view(1, batch, 1).expand(shape)
                chosen = rows.reshape(-1)[flat * card + state]
                log_weight = log_weight + torch.log(chosen)
                values[var] = state
            else:
                cumulative = rows.cumsum(-1).index_select(0, flat.reshape(-1)).view(*shape, card)
                u = torch.rand(shape, generator=generator, device=device, dtype=dtype).unsqueeze(-1)
                values[var] = torch.searchsorted(cumulative, u, right=True).squeeze(-1).clamp_(max=card - 1)
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
            if target in net.continuous:
                p[target], stderr[target] = _summarise_continuous(values[target], w, total)
                continue
            hot = torch.nn.functional.one_hot(values[target], net.card(target)).to(dtype)
            estimate = (w.unsqueeze(-1) * hot).sum(-2) / total
            spread = (w.unsqueeze(-1) ** 2 * (hot - estimate.unsqueeze(-2)) ** 2).sum(-2)
            p[target] = estimate
            stderr[target] = spread.sqrt() / total
        return Estimate(p=p, stderr=stderr, ess=ess)


def _summarise_continuous(x: torch.Tensor, w: torch.Tensor, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean, sd and quantiles of particles ``x`` ``(S, B, M)``."""
    x = x.expand_as(w)
    mean = (w * x).sum(-1, keepdim=True) / total
    var = (w * (x - mean) ** 2).sum(-1, keepdim=True) / total
    order = x.argsort(-1)
    xs, ws = x.gather(-1, order), w.gather(-1, order)
    cdf = ws.cumsum(-1) / total
    quantiles = [xs.gather(-1, (cdf < q).sum(-1, keepdim=True).clamp_(max=x.shape[-1] - 1)) for q in QUANTILES]
    summary = torch.cat([mean, var.sqrt(), *quantiles], dim=-1)
    se = ((w**2 * (x - mean) ** 2).sum(-1, keepdim=True)).sqrt() / total
    return summary, torch.cat([se, torch.zeros_like(summary[..., 1:])], dim=-1)
