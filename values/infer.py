"""Bayesian inference of a party's utilities from its choices (Pyro, NUTS).

A party facing situation k (evidence e_k) chooses action a with probability
proportional to exp(beta * EU_k(a)), where EU_k(a) is the expected normalised
utility of a under the party's beliefs.  Utilities are additive over outcome
states; each outcome's reference state is the zero of its scale (adding a constant
to one outcome's utilities changes no choice), and the whole is divided by its
range, the normalisation of SCENARIO.md, so the reported utilities are each
state's utility over the party's range: the numbers of a value conflict.

With ``beliefs="unknown"`` the party's priors over the upstream root variables
are inferred jointly with its values: from choices alone the two are confounded,
and the posterior over values is wider.  Once a dialogue has pinned the
beliefs, it narrows (:func:`identifiability`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

from crux.oracle.exact import ExactEngine
from crux.oracle.oracle import Oracle
from crux.oracle.predict import action_marginals
from crux.worldmodel.compile import BeliefState, Network
from crux.worldmodel.errors import CruxError, unknown

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
    """(outcome, state) for each column of ``utility``; each outcome's reference state is 0."""
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
    """The utilities that can be inferred: every outcome state but each outcome's reference
    state (its first unless ``world.reference`` names another), which is 0."""
    return [
        (o, s)
        for o in network.outcomes
        if o not in network.continuous
        for s in network.states[o]
        if s != network.reference(o)
    ]


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
    """``beta x utilities`` (each outcome's reference state at 0) split into the utilities over the
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
    progress: bool = False,
) -> ValuePosterior:
    """The posterior over a party's normalised utilities and beta, its beliefs known;
    ``progress`` shows the sampler's progress bar on stderr."""
    net = oracle.model.network
    check_choices(net, choices)
    states = free_states(net)
    features = outcome_features(oracle, beliefs, choices)
    chosen = torch.tensor([net.states[net.decision].index(c.chose) for c in choices])

    def model():
        scaled = pyro.sample("scaled", _SCALED_PRIOR(len(states)))
        with pyro.plate("choices", len(choices)):
            pyro.sample("choice", dist.Categorical(logits=features @ scaled), obs=chosen)

    samples = _run(model, draws, warmup, seed, progress)
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
    progress: bool = False,
) -> ValuePosterior:
    """The joint posterior over values and the party's priors of ``unknown_priors`` (root
    variables, uniform Dirichlet priors).  The predictions under each proposal of the priors
    are a mixture of predictions computed once (:func:`_prior_mixture`), not a contraction."""
    net = oracle.model.network
    check_choices(net, choices)
    unknown_priors = list(dict.fromkeys(unknown_priors))
    for var in unknown_priors:
        if var not in net.states:
            raise CruxError(unknown("variable", var, [v for v in net.order if v != net.decision]))
        if net.parents[var] or var == net.decision or var in net.continuous:
            raise CruxError(f"{var}: only the prior of a discrete root variable can be inferred")
    states = free_states(net)
    features = _prior_mixture(ExactEngine(net), beliefs, choices, unknown_priors, states)
    chosen = torch.tensor([net.states[net.decision].index(c.chose) for c in choices])

    def model():
        scaled = pyro.sample("scaled", _SCALED_PRIOR(len(states)))
        priors = [
            pyro.sample(f"prior:{v}", dist.Dirichlet(torch.ones(net.card(v), dtype=torch.float64)))
            for v in unknown_priors
        ]
        with pyro.plate("choices", len(choices)):
            pyro.sample("choice", dist.Categorical(logits=features(priors) @ scaled), obs=chosen)

    samples = _run(model, draws, warmup, seed, progress)
    posterior = _posterior(states, samples["scaled"])
    for v in unknown_priors:
        for i, s in enumerate(net.states[v]):
            posterior.extra[f"P({v}={s})"] = samples[f"prior:{v}"][:, i]
    return posterior


def _prior_mixture(
    engine: ExactEngine,
    beliefs: BeliefState,
    choices: Sequence[Choice],
    roots: Sequence[str],
    states: list[tuple[str, str]],
) -> Callable[[Sequence[torch.Tensor]], torch.Tensor]:
    """``features(priors)``: the ``(choices, actions, free states)`` predictions of
    :func:`situation_features` with the priors of the root variables ``roots`` replaced by
    ``priors``, one vector each.

    A root's prior enters the joint only as a factor p(x), so for a situation's evidence e
    (its hard evidence and the party's soft evidence) and x a joint state of the roots,

        P(o | e, do(a)) = sum_x w(x) L(x) P(o | e, do(a), x) / sum_x w(x) L(x),

    with w(x) the product of the priors and L(x) = P(e | do(a), x).  L and the predictions
    given x are contracted once here; a call is then two products over the few joint states.
    Only L's ratios matter, so it is the roots' posterior under uniform priors, by the chain
    rule one root at a time."""
    net = engine.network
    actions = net.states[net.decision]
    situations = [c.given for c in choices for _ in actions]  # one query per (choice, action)
    do_states = torch.tensor([[j] for _ in choices for j in range(len(actions))])
    likelihood = _evidence(net, beliefs, situations)
    joint = list(itertools.product(*(range(net.card(v)) for v in roots)))

    def answers(clamped: int, targets: list[str]) -> dict[str, torch.Tensor]:
        """``{target: (joint states, queries, card)}`` with the first ``clamped`` roots at each
        joint state's values, the other roots uniform; NaN where that state is impossible."""
        draws = 1 + len(joint)  # draw 0, every root uniform, keeps possible evidence possible
        tables = {}
        for v in beliefs.concentration:
            mean = beliefs.mean(v)
            tables[v] = mean.expand(draws, *mean.shape)
        for i, v in enumerate(roots):
            table = torch.full((draws, net.card(v)), 1.0 / net.card(v), dtype=torch.float64)
            if i < clamped:
                table[1:] = torch.nn.functional.one_hot(torch.tensor([x[i] for x in joint]), net.card(v)).double()
            tables[v] = table
        given = torch.empty(len(situations), 0, dtype=torch.long)
        post = engine.marginals(tables, likelihood, [net.decision], do_states, [], given, targets)
        return {t: p[1:] for t, p in post.items()}

    evidence = torch.ones(len(joint), len(situations), dtype=torch.float64)  # L(x), up to a factor per query
    for i, v in enumerate(roots):
        at = torch.tensor([x[i] for x in joint]).reshape(-1, 1, 1).expand(-1, len(situations), 1)
        evidence = evidence * answers(i, [v])[v].gather(-1, at).squeeze(-1)
    evidence = torch.nan_to_num(evidence, nan=0.0)
    given_x = answers(len(roots), list(dict.fromkeys(o for o, _ in states)))
    predictions = torch.stack([given_x[o][..., net.states[o].index(s)] for o, s in states], dim=-1)
    weighted = evidence.unsqueeze(-1) * torch.nan_to_num(predictions, nan=0.0)  # (joint, queries, states)

    def features(priors: Sequence[torch.Tensor]) -> torch.Tensor:
        w = torch.ones(1, dtype=torch.float64)
        for p in priors:
            w = (w.unsqueeze(-1) * p).reshape(-1)  # itertools.product's order
        mixed = torch.einsum("x,xqs->qs", w, weighted) / (w @ evidence).unsqueeze(-1)
        return mixed.reshape(len(choices), len(actions), len(states))

    return features


def _evidence(net: Network, beliefs: BeliefState, situations: Sequence[Mapping[str, str]]) -> dict[str, torch.Tensor]:
    """Each query's evidence as ``{variable: (queries, card)}`` likelihoods: a situation's
    states one-hot (a variable it leaves out, uniform: no evidence) times the party's soft
    evidence."""
    likelihood = {
        v: torch.stack([
            torch.nn.functional.one_hot(torch.tensor(net.states[v].index(g[v])), net.card(v)).double()
            if v in g else torch.ones(net.card(v), dtype=torch.float64)
            for g in situations
        ])
        for v in sorted({v for g in situations for v in g})
    }
    for v, vec in beliefs.likelihood.items():
        likelihood[v] = likelihood[v] * vec if v in likelihood else vec
    return likelihood


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


def _run(model, draws: int, warmup: int, seed: int, progress: bool = False) -> dict[str, torch.Tensor]:
    """NUTS draws of the model's sites; ``progress`` shows Pyro's progress bar (on stderr)."""
    pyro.clear_param_store()
    with torch.random.fork_rng(devices=[]):
        pyro.set_rng_seed(seed)
        kernel = NUTS(model, target_accept_prob=0.85)
        mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, disable_progbar=not progress)
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
