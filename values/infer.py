"""Bayesian inference of a party's utilities from its choices (Pyro, NUTS).

A party facing situation k (evidence e_k) chooses action a with probability
proportional to exp(beta * EU_k(a)), where EU_k(a) is the expected normalised
utility of a under the party's beliefs.  Utilities are additive over outcome
states; each outcome's first state is the zero of its scale (adding a constant
to one outcome's utilities changes no choice), and the whole is divided by its
range, the normalisation of SCENARIO.md, so the reported utilities are each
state's utility over the party's range: the numbers of a value conflict.

With ``beliefs="unknown"`` the party's priors over the upstream root variables
are inferred jointly with its values: from choices alone the two are confounded,
and the posterior over values is wider.  Once a dialogue has pinned the
beliefs, it narrows (:func:`identifiability`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

from oracle.exact import ExactEngine
from oracle.oracle import Oracle
from values.expected import action_marginals
from worldmodel.compile import BeliefState, Network
from worldmodel.errors import CruxError, unknown

INTERVAL = (0.05, 0.95)


@dataclass(frozen=True)
class Choice:
    """One observed decision: what the party saw, and what it chose."""

    given: Mapping[str, str]
    chose: str


@dataclass
class ValuePosterior:
    """Posterior draws of the normalised utilities and of the rationality beta."""

    states: list[tuple[str, str]]
    """(outcome, state) for each column of ``utility``; each outcome's first state is 0."""
    utility: torch.Tensor
    """``(draws, len(states))`` normalised utilities."""
    beta: torch.Tensor
    """``(draws,)``"""
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    """Other inferred quantities (unknown beliefs), by name."""

    def summary(self) -> dict:
        def stats(x: torch.Tensor) -> dict:
            low, high = torch.quantile(x, torch.tensor(INTERVAL, dtype=x.dtype), dim=0).tolist()
            return {"mean": float(x.mean()), "interval": [low, high]}

        out = {"utilities": {}, "beta": stats(self.beta)}
        for j, (o, s) in enumerate(self.states):
            out["utilities"].setdefault(o, {})[s] = stats(self.utility[:, j])
        for name, x in self.extra.items():
            out[name] = stats(x)
        return out

    def widths(self) -> dict[tuple[str, str], float]:
        bounds = torch.quantile(self.utility, torch.tensor(INTERVAL, dtype=self.utility.dtype), dim=0)
        return {s: float(bounds[1, j] - bounds[0, j]) for j, s in enumerate(self.states)}


def free_states(network: Network) -> list[tuple[str, str]]:
    """The utilities that can be inferred: every outcome state but each outcome's first."""
    return [(o, s) for o in network.outcomes if o not in network.continuous for s in network.states[o][1:]]


def check_choices(network: Network, choices: Sequence[Choice]) -> None:
    """Unknown variables, states or actions are errors that list the valid names."""
    actions = network.states[network.decision]
    for k, c in enumerate(choices, 1):
        if c.chose not in actions:
            raise CruxError(f"choice {k}: {unknown('action', c.chose, actions)}")
        for var, state in c.given.items():
            if var not in network.states or var == network.decision:
                raise CruxError(f"choice {k}: {unknown('variable', var, [v for v in network.order if v != network.decision])}")
            if state not in network.states[var]:
                raise CruxError(f"choice {k}: {unknown(f'state of {var}', state, network.states[var])}")


def situation_features(
    oracle: Oracle, beliefs: BeliefState, situations: Sequence[Mapping[str, str]]
) -> torch.Tensor:
    """``(situations, actions, free states)``: P(outcome = state | do(a), situation) under the
    beliefs, for one batched oracle call."""
    net = oracle.model.network
    columns = [(o, net.states[o].index(s)) for o, s in free_states(net)]
    if not columns:
        raise CruxError("the model has no discrete outcome whose values could be inferred")
    marginals = action_marginals(oracle, [beliefs] * len(situations), situations)
    return torch.stack([torch.stack([m[o][:, i] for o, i in columns], dim=-1) for m in marginals])


def outcome_features(oracle: Oracle, beliefs: BeliefState, choices: Sequence[Choice]) -> torch.Tensor:
    """:func:`situation_features` of the situations the choices were made in."""
    return situation_features(oracle, beliefs, [c.given for c in choices])


def normalise(scaled: torch.Tensor, states: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``beta x utilities`` (each outcome's first state at 0) split into the utilities over the
    range of the joint outcome, and beta = that range."""
    groups = _groups(states)
    low = sum(torch.clamp(scaled[..., g].min(-1).values, max=0.0) for g in groups)
    high = sum(torch.clamp(scaled[..., g].max(-1).values, min=0.0) for g in groups)
    span = high - low
    return scaled / span.unsqueeze(-1), span


def _groups(states: list[tuple[str, str]]) -> list[list[int]]:
    by_outcome: dict[str, list[int]] = {}
    for j, (o, _) in enumerate(states):
        by_outcome.setdefault(o, []).append(j)
    return list(by_outcome.values())


def infer_values(
    oracle: Oracle,
    beliefs: BeliefState,
    choices: Sequence[Choice],
    *,
    draws: int = 500,
    warmup: int = 300,
    seed: int = 0,
) -> ValuePosterior:
    """The posterior over a party's normalised utilities and beta, its beliefs known."""
    net = oracle.model.network
    check_choices(net, choices)
    states = free_states(net)
    features = outcome_features(oracle, beliefs, choices)
    chosen = torch.tensor([net.states[net.decision].index(c.chose) for c in choices])

    def model():
        scaled = pyro.sample("scaled", _SCALED_PRIOR(len(states)))
        with pyro.plate("choices", len(choices)):
            pyro.sample("choice", dist.Categorical(logits=features @ scaled), obs=chosen)

    samples = _run(model, draws, warmup, seed)
    return _posterior(states, samples["scaled"])


def infer_values_and_beliefs(
    oracle: Oracle,
    beliefs: BeliefState,
    choices: Sequence[Choice],
    unknown_priors: Sequence[str],
    *,
    draws: int = 500,
    warmup: int = 300,
    seed: int = 0,
) -> ValuePosterior:
    """The joint posterior over values and the party's priors of ``unknown_priors`` (root
    variables, uniform Dirichlet priors): the predictions are recomputed by an exact,
    differentiable contraction for every proposal."""
    net = oracle.model.network
    check_choices(net, choices)
    for var in unknown_priors:
        if net.parents[var] or var == net.decision or var in net.continuous:
            raise CruxError(f"{var}: only the prior of a discrete root variable can be inferred")
    states = free_states(net)
    actions = net.states[net.decision]
    engine = ExactEngine(net)
    tables = {v: beliefs.mean(v).unsqueeze(0) for v in beliefs.concentration}
    rows = []  # (situation, action) pairs, each a query
    for c in choices:
        for a in actions:
            rows.append((a, c.given))
    do_states = torch.tensor([[actions.index(a)] for a, _ in rows])
    given_vars = sorted({v for c in choices for v in c.given})
    # each situation gives evidence on its own variables; a missing one is "no evidence": a
    # uniform likelihood, carried by a per-query soft-evidence vector
    likelihood = {
        v: torch.stack([
            torch.nn.functional.one_hot(torch.tensor(net.states[v].index(g[v])), net.card(v)).double()
            if v in g else torch.ones(net.card(v), dtype=torch.float64)
            for _, g in rows
        ])
        for v in given_vars
    }
    for v, vec in beliefs.likelihood.items():
        likelihood[v] = likelihood[v] * vec if v in likelihood else vec
    chosen = torch.tensor([actions.index(c.chose) for c in choices])
    targets = [o for o in net.outcomes if o not in net.continuous]

    def features(priors: dict[str, torch.Tensor]) -> torch.Tensor:
        current = {**tables, **{v: p.unsqueeze(0) for v, p in priors.items()}}
        post = engine.marginals(current, likelihood, [net.decision], do_states, [], torch.empty(len(rows), 0, dtype=torch.long), targets)
        cols = [post[o][0, :, net.states[o].index(s)] for o, s in states]
        return torch.stack(cols, dim=-1).reshape(len(choices), len(actions), len(states))

    def model():
        scaled = pyro.sample("scaled", _SCALED_PRIOR(len(states)))
        priors = {
            v: pyro.sample(f"prior:{v}", dist.Dirichlet(torch.ones(net.card(v), dtype=torch.float64)))
            for v in unknown_priors
        }
        with pyro.plate("choices", len(choices)):
            pyro.sample("choice", dist.Categorical(logits=features(priors) @ scaled), obs=chosen)

    samples = _run(model, draws, warmup, seed)
    posterior = _posterior(states, samples["scaled"])
    for v in unknown_priors:
        for i, s in enumerate(net.states[v]):
            posterior.extra[f"P({v}={s})"] = samples[f"prior:{v}"][:, i]
    return posterior


def _SCALED_PRIOR(n: int) -> dist.Distribution:
    """Prior of beta x (raw utilities): beta of order 10, utilities of order 1."""
    return dist.Normal(torch.zeros(n, dtype=torch.float64), SCALED_SD).to_event(1)


SCALED_SD = 20.0
"""The model samples v = beta * u unnormalised: u = v / range(v) and beta = range(v).  That
removes the ridge between beta and the utilities' scale (which normalisation divides out),
and NUTS moves freely."""


def _posterior(states, scaled: torch.Tensor) -> ValuePosterior:
    """Draws of v = beta * u: u = v / range(v), beta = range(v)."""
    return ValuePosterior(states, *normalise(scaled, states))


def _run(model, draws: int, warmup: int, seed: int) -> dict[str, torch.Tensor]:
    pyro.clear_param_store()
    with torch.random.fork_rng(devices=[]):
        pyro.set_rng_seed(seed)
        mcmc = MCMC(NUTS(model, target_accept_prob=0.85), num_samples=draws, warmup_steps=warmup, disable_progbar=True)
        mcmc.run()
        return {k: v.detach() for k, v in mcmc.get_samples().items()}


def simulate_choices(
    oracle: Oracle,
    beliefs: BeliefState,
    utility: torch.Tensor,
    beta: float,
    situations: Sequence[Mapping[str, str]],
    seed: int = 0,
) -> list[Choice]:
    """Choices a noisy-rational party with these normalised utilities would make."""
    net = oracle.model.network
    actions = net.states[net.decision]
    features = situation_features(oracle, beliefs, situations)
    probs = torch.softmax(beta * (features @ utility), dim=-1)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return [Choice(given=dict(g), chose=actions[int(i)]) for g, i in zip(situations, picks)]


def identifiability(pinned: ValuePosterior, unpinned: ValuePosterior, unidentified: float = 0.5) -> dict:
    """How much pinning the beliefs narrows each utility's 90% interval, and which utilities stay
    unidentified (interval wider than ``unidentified`` even with the beliefs pinned)."""
    a, b = pinned.widths(), unpinned.widths()
    return {
        "narrowing": {f"{o}={s}": 1 - a[(o, s)] / b[(o, s)] if b[(o, s)] > 0 else 0.0 for o, s in a},
        "width_pinned": {f"{o}={s}": w for (o, s), w in a.items()},
        "width_unknown_beliefs": {f"{o}={s}": w for (o, s), w in b.items()},
        "unidentified": [f"{o}={s}" for (o, s), w in a.items() if w > unidentified],
    }
