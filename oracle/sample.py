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
from dataclasses import dataclass, field

import torch

from crux.oracle.engine import Batch, Posterior, per_call
from crux.oracle.exact import ImpossibleEvidence
from crux.worldmodel.compile import Network
from crux.worldmodel.spec import Normal

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
    impossible: torch.Tensor | None = None
    """``(B,)``: the queries whose every particle weighs 0 under the posterior mean."""


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
        mask: bool = False,
    ) -> Estimate:
        """Same arguments as :meth:`oracle.exact.ExactEngine.marginals` (tables ``(S, ...)`` or
        ``(S, B, ...)``; ``do``/``given`` name discrete variables), plus the number of particles
        per draw and query, the laws of continuous variables, and the values ``(B,)`` at which
        continuous variables are set (``set_values``) or seen (``seen_values``).  Impossible
        evidence raises :class:`ImpossibleEvidence`; with ``mask``, the estimate marks it."""
        net = self.network
        any_table = next(iter(tables.values()), None)
        dtype = any_table.dtype if any_table is not None else torch.float64
        samples, batch = (any_table.shape[0] if any_table is not None else 1), do_states.shape[0]
        context = _Context(
            tables, likelihood, {v: do_states[:, j] for j, v in enumerate(do)},
            {v: given_states[:, j] for j, v in enumerate(given)}, normal or {}, set_values or {}, seen_values or {},
            net.order if only is None else sorted(only, key=net.position.__getitem__), samples, batch, dtype,
        )
        # Particles in chunks small enough to stay in cache, summed as they go (weights relative to
        # the best particle so far, rescaled when a better one comes); in one chunk when the
        # quantiles of a continuous target need every particle at once.
        discrete = {t: net.card(t) for t in targets if t not in net.continuous}
        whole = len(discrete) < len(targets)
        step = particles if whole else max(1, min(particles, _CHUNK // max(1, samples * batch)))
        top = torch.full((samples, batch, 1), float("-inf"), dtype=dtype, device=do_states.device)
        sums: _Sums | None = None
        for start in range(0, particles, step):
            values, log_weight = self._draw(context, min(step, particles - start), generator)
            best = torch.maximum(top, log_weight.amax(-1, keepdim=True))
            floor = best.clamp_min(torch.finfo(dtype).min)
            w = torch.exp(log_weight - floor)
            fresh = _Sums.of({t: values[t] for t in discrete}, w, discrete)
            sums = fresh if sums is None else sums.rescaled(torch.exp(top - floor)).plus(fresh)
            top = best
        impossible = top[0, :, 0] == float("-inf")  # every particle weighs 0 under the posterior mean
        if not mask and bool(impossible.any()):
            raise ImpossibleEvidence(int(impossible.nonzero()[0]))
        assert sums is not None
        p, stderr = {}, {}
        for target in targets:
            if target in discrete:
                p[target], stderr[target] = sums.estimate(target)
            else:  # one chunk: its weights are all the weights
                p[target], stderr[target] = _summarise_continuous(values[target], w, sums.w)
        return Estimate(p=p, stderr=stderr, ess=sums.w.squeeze(-1) ** 2 / sums.w2.squeeze(-1), impossible=impossible)

    def _draw(self, c: "_Context", particles: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One chunk of particles ``(S, B, particles)``: every needed variable's values, and the
        log weights of the evidence."""
        net = self.network
        device = generator.device
        samples, batch, dtype = c.samples, c.batch, c.dtype
        shape = (samples, batch, particles)
        s_index = torch.arange(samples, device=device).view(samples, 1, 1)
        b_index = torch.arange(batch, device=device).view(1, batch, 1)
        values: dict[str, torch.Tensor] = {}
        log_weight = torch.zeros(shape, dtype=dtype, device=device)

        def per_query(vector: torch.Tensor) -> torch.Tensor:
            return vector.to(device=device, dtype=dtype).view(1, batch, 1).expand(shape)

        for var in c.order:
            if var in net.continuous:
                if var in c.set_values:
                    values[var] = per_query(c.set_values[var])
                    continue
                law = c.normal[var]
                mean = torch.full(shape, float(law.intercept), dtype=dtype, device=device)
                for parent, weight in law.weights.items():
                    mean = mean + weight * values[parent]
                for parent, offsets in law.offsets.items():
                    shift = torch.tensor([offsets.get(s, 0.0) for s in net.states[parent]], dtype=dtype, device=device)
                    mean = mean + shift[values[parent]]
                if var in c.seen_values:
                    values[var] = per_query(c.seen_values[var])
                    from pyro.distributions import Normal  # Pyro on first use: most queries never need it

                    log_weight = log_weight + Normal(mean, float(law.scale)).log_prob(values[var])
                else:
                    noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
                    values[var] = mean + float(law.scale) * noise
                continue
            card = net.card(var)
            if var in c.fixed:
                values[var] = c.fixed[var].view(1, batch, 1).expand(shape)
                continue
            table = c.tables.get(var)
            if table is None:  # an unset decision (the exact path says which to set)
                raise ValueError(f"{var} has no table: set it with do")
            # one flat row index per particle: (draw, [query,] parent states), rows gathered at once
            by_query = table.dim() == len(net.shape(var)) + 2
            flat = None  # 0: one table shared by every particle
            if by_query or samples > 1:
                flat = (s_index * batch + b_index if by_query else s_index).expand(shape).clone()
                flat *= table[0, 0].numel() // card if by_query else table[0].numel() // card
            stride = 1
            for parent in reversed(net.parents[var]):
                term = values[parent] * stride
                flat = term if flat is None else flat + term
                stride *= net.card(parent)
            flat = flat.expand(shape).contiguous() if flat is not None else torch.zeros((), dtype=torch.long, device=device)
            rows = table.reshape(-1, card)
            if var in c.seen:
                state = c.seen[var].view(1, batch, 1).expand(shape)
                chosen = rows.reshape(-1)[flat * card + state]
                log_weight = log_weight + torch.log(chosen)
                values[var] = state
            else:
                # inverse CDF: the state is the number of its row's cumulative sums at or below u
                if card == 1:
                    values[var] = torch.zeros(shape, dtype=torch.long, device=device)
                    continue
                columns = c.cumulative(var, rows)
                # float32 uniforms (multiples of 2^-24) are drawn 1.6x faster than float64 ones; they
                # honour each state's probability to within 2^-24 = 6e-8, far below the standard error
                # of any feasible number of particles (5e-5 at 10^8)
                u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
                if flat.dim() == 0:  # one row for every particle
                    state = (columns[0, flat] <= u).to(torch.int32)
                    for k in range(1, card - 1):
                        state += columns[k, flat] <= u
                else:
                    index = flat.reshape(-1)
                    state = (columns[0].index_select(0, index).view(shape) <= u).to(torch.int32)
                    for k in range(1, card - 1):
                        state += columns[k].index_select(0, index).view(shape) <= u
                values[var] = state
            if var in c.likelihood:
                vec = c.likelihood[var].to(device=device, dtype=dtype)
                lik = vec[values[var]] if vec.dim() == 1 else vec[b_index.expand(shape), values[var]]
                log_weight = log_weight + torch.log(lik)
        return values, log_weight


_CHUNK = 1 << 16
"""Particles (times draws and queries) drawn at once: the chunk's tensors stay in cache."""


@dataclass
class _Context:
    """What every chunk of particles shares: tables, evidence, and the cumulative rows."""

    tables: Mapping[str, torch.Tensor]
    likelihood: Mapping[str, torch.Tensor]
    fixed: Mapping[str, torch.Tensor]
    seen: Mapping[str, torch.Tensor]
    normal: Mapping[str, Normal]
    set_values: Mapping[str, torch.Tensor]
    seen_values: Mapping[str, torch.Tensor]
    order: Sequence[str]
    samples: int
    batch: int
    dtype: torch.dtype
    _cumulative: dict = field(default_factory=dict)

    def cumulative(self, var: str, rows: torch.Tensor) -> torch.Tensor:
        """``(card - 1, rows)``: column k holds every row's sum of its first k + 1 entries, in
        float32 as the uniforms are, so that no comparison converts them (alarm, 10^6 particles:
        2.5M -> 2.9M samples/s).  Rounding is monotone: the sums stay sorted, and a state of
        probability 0 still spans nothing."""
        if var not in self._cumulative:
            self._cumulative[var] = rows.cumsum(-1)[:, :-1].T.to(torch.float32).contiguous()
        return self._cumulative[var]


@dataclass(frozen=True)
class _Sums:
    """Sums over particles of the weights w and w^2 ``(S, B, 1)``, and per discrete target and
    state of w and w^2 ``(S, B, card)``."""

    w: torch.Tensor
    w2: torch.Tensor
    w_state: dict[str, torch.Tensor]
    w2_state: dict[str, torch.Tensor]

    @staticmethod
    def of(values: Mapping[str, torch.Tensor], w: torch.Tensor, cards: Mapping[str, int]) -> "_Sums":
        w2 = w * w
        by_state, by_state2 = {}, {}
        for t, v in values.items():
            index = v.expand_as(w).long()
            zeros = torch.zeros(*w.shape[:-1], cards[t], dtype=w.dtype, device=w.device)
            by_state[t], by_state2[t] = zeros.scatter_add(-1, index, w), zeros.scatter_add(-1, index, w2)
        return _Sums(w.sum(-1, keepdim=True), w2.sum(-1, keepdim=True), by_state, by_state2)

    def rescaled(self, scale: torch.Tensor) -> "_Sums":
        square = scale * scale
        return _Sums(
            self.w * scale, self.w2 * square,
            {t: s * scale for t, s in self.w_state.items()}, {t: s * square for t, s in self.w2_state.items()},
        )

    def plus(self, other: "_Sums") -> "_Sums":
        return _Sums(
            self.w + other.w, self.w2 + other.w2,
            {t: s + other.w_state[t] for t, s in self.w_state.items()},
            {t: s + other.w2_state[t] for t, s in self.w2_state.items()},
        )

    def estimate(self, target: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-normalised estimate of each state's probability and its delta-method standard
        error: sqrt(sum w^2 (1[state] - p)^2) / sum w, expanded over the one-hot indicator."""
        p = self.w_state[target] / self.w
        spread = self.w2_state[target] * (1 - 2 * p) + p * p * self.w2
        return p, spread.clamp_min(0).sqrt() / self.w


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


INTERVAL_DRAWS = 100
"""Parameter draws behind a sampled answer's interval (each with particles / draws particles)."""


class Sampled:
    """Likelihood-weighted sampling behind :class:`oracle.engine.Engine`: any batch of one
    structure, discrete or continuous.  The mean answer and its standard errors come from
    ``particles`` particles; with draws, the interval from :data:`INTERVAL_DRAWS` parameter draws
    of ``particles / draws`` particles each.  Seeded: the same batch gives the same answer."""

    name = "sampler"
    exact = False

    def __init__(self, network: Network, particles: int, seed: int):
        self.kernel = Sampler(network)
        self.particles, self.seed = particles, seed

    def holds(self, batch: Batch) -> bool:
        return batch.one_structure

    def most(self, batch: Batch) -> int:
        return per_call(batch)

    def answer(self, batch: Batch) -> Posterior:
        net = self.kernel.network
        inputs = (batch.likelihood, *batch.columns(), batch.targets)
        extra = {
            "normal": batch.states[0].normal, "only": batch.needed, "set_values": batch.set_values,
            "seen_values": batch.seen_values, "mask": True,
        }
        generator = torch.Generator(device=batch.work.device).manual_seed(self.seed)
        mean = self.kernel.marginals(batch.tables(draws=False), *inputs, self.particles, generator, **extra)
        posts = mean.p
        if batch.per_query > 1 and batch.states[0].concentration:
            count = min(batch.work.samples, INTERVAL_DRAWS)
            tables = {v: t[: count + 1] for v, t in batch.tables(draws=True).items()}
            drawn = self.kernel.marginals(tables, *inputs, max(100, self.particles // count), generator, **extra)
            posts = {t: mean.p[t] if t in net.continuous else torch.cat([mean.p[t], drawn.p[t][1:]], dim=0) for t in posts}
        return Posterior(batch.size, posts, mean.impossible, "sampled", {t: e[0] for t, e in mean.stderr.items()})  # type: ignore[arg-type]

    def clear(self) -> None:
        """Nothing is kept between calls."""
