"""The prediction oracle: "what happens if I do X, given Y?" with credible intervals.

The oracle predicts; it never ranks or recommends actions (deciding lives in
``dialogue/``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from oracle.device import resolve_device
from oracle.exact import ExactEngine, ImpossibleEvidence, TooLarge
from oracle.params import draw_tables
from oracle.query import Answer, Distribution, Query, QueryError, Resolved, resolve
from oracle.sample import Sampler
from worldmodel.compile import BeliefState
from worldmodel.model import Model

INTERVAL = (0.05, 0.95)
"""Quantiles of the 90% credible interval."""

_CELLS_PER_CALL = 1 << 22
"""Bound on (draws x queries) contracted at once, to keep memory flat on big batches."""

Beliefs = BeliefState | Mapping[str, BeliefState] | None
"""Whose numbers answer: the model's parties (None), one belief state for every
query, or a belief state per party name (others fall back to the model's)."""


Method = Literal["auto", "exact", "sampled"]
METHODS: tuple[str, ...] = ("auto", "exact", "sampled")
MAX_BYTES = 2 * 2**30
"""Default memory allowed for one exact contraction's largest intermediate."""
INTERVAL_DRAWS = 100
"""Parameter draws behind a sampled answer's interval (each with particles / draws particles)."""


class Oracle:
    """Answers queries on a model, on a device: exactly where the contraction fits, else by
    sampling (``method="auto"``); ``exact`` refuses what does not fit, ``sampled`` always samples.

    ``samples`` draws of the Dirichlet rows give each probability its 90%
    credible interval; ``particles`` is the Monte Carlo size of a sampled answer;
    ``seed`` makes both reproducible.
    """

    def __init__(
        self,
        model: Model,
        *,
        device: str | torch.device = "auto",
        samples: int = 1000,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
        method: Method = "auto",
        particles: int = 100_000,
        max_bytes: int = MAX_BYTES,
    ):
        if samples < 2:
            raise QueryError(f"samples must be at least 2 to give an interval (got {samples})")
        if method not in METHODS:
            raise QueryError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        if particles < 100:
            raise QueryError(f"particles must be at least 100 (got {particles})")
        self.model = model
        self.device = resolve_device(device)
        self.samples = samples
        self.seed = seed
        self.dtype = dtype
        self.method = method
        self.particles = particles
        self._engine = ExactEngine(model.network, max_bytes=max_bytes)
        self._sampler = Sampler(model.network)
        self._draws: OrderedDict[int, tuple[BeliefState, dict[str, torch.Tensor]]] = OrderedDict()

    # -- public ------------------------------------------------------------------------

    def ask(self, query: Query, beliefs: Beliefs = None) -> Answer:
        """One query; see :meth:`ask_many`."""
        return self.ask_many([query], beliefs)[0]

    def ask_many(self, queries: Sequence[Query], beliefs: Beliefs = None) -> list[Answer]:
        """Answer queries in order, with intervals; queries of equal structure run as one contraction."""
        resolved = self._resolve(queries)
        states = [self._beliefs_of(r, beliefs) for r in resolved]
        results = self._run(resolved, states, draws=True)
        net = self.model.network
        answers = []
        for r, (post, method, stderr) in zip(resolved, results):
            outcomes = {}
            for t in r.outcomes:
                drawn = post[t][1:] if len(post[t]) > 1 else post[t]  # certain numbers: a point interval
                bounds = torch.nanquantile(drawn, torch.tensor(INTERVAL, dtype=post[t].dtype), dim=0)
                outcomes[t] = Distribution(
                    states=list(net.states[t]),
                    p=post[t][0].tolist(),
                    interval=bounds.T.tolist(),
                    stderr=None if stderr is None else stderr[t].tolist(),
                )
            answers.append(Answer(query=r.query, method=method, device=self.device.type, outcomes=outcomes))
        return answers

    def posterior_means(
        self, queries: Sequence[Query], beliefs: BeliefState | Sequence[BeliefState] | Mapping[str, BeliefState] | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """Posterior-mean marginals only (no intervals), as CPU tensors: the fast path for
        deciding.  ``beliefs`` may also give one belief state per query, so that many
        hypothetical beliefs (what if a party accepted this fact?) run as one batch."""
        resolved = self._resolve(queries)
        if isinstance(beliefs, Sequence):
            if len(beliefs) != len(queries):
                raise ValueError("give one belief state per query")
            states = list(beliefs)
        else:
            states = [self._beliefs_of(r, beliefs) for r in resolved]
        return [{t: p[0] for t, p in post.items()} for post, _, _ in self._run(resolved, states, draws=False)]

    # -- internals -----------------------------------------------------------------------

    def _resolve(self, queries: Sequence[Query]) -> list[Resolved]:
        m = self.model
        return [resolve(q, m.network, m.parties, m.default_party) for q in queries]

    def _beliefs_of(self, r: Resolved, beliefs: Beliefs) -> BeliefState:
        if isinstance(beliefs, BeliefState):
            return beliefs
        if beliefs is not None and r.party in beliefs:
            return beliefs[r.party]
        return self.model.beliefs(r.party)

    def _run(self, resolved: list[Resolved], states: list[BeliefState], draws: bool) -> list[tuple]:
        """Per query, in order: posteriors ``{target: (1 + draws or 1, card)}`` on the CPU, the
        method that computed them, and (sampled) their standard errors ``{target: (card,)}``."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(resolved):
            groups.setdefault(r.structure[1:], []).append(i)
        out: list[tuple] = [None] * len(resolved)  # type: ignore[list-item]
        per_query = (self.samples + 1) if draws and not all(s.certain for s in states) else 1
        step = max(1, _CELLS_PER_CALL // per_query)
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                try:
                    posts, method, stderr = self._answer([resolved[i] for i in chunk], [states[i] for i in chunk], draws)
                except ImpossibleEvidence as err:
                    if len(resolved) == 1:
                        raise
                    raise QueryError(f"query {chunk[err.index] + 1}: {err}") from None
                for b, i in enumerate(chunk):
                    errors = None if stderr is None else {t: e[b].cpu() for t, e in stderr.items()}
                    out[i] = ({t: p[:, b].cpu() for t, p in posts.items()}, method, errors)
        return out

    def _answer(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> tuple:
        """One group: exact if it fits (or is forced), else sampled."""
        if self.method != "sampled":
            try:
                return self._contract(members, states, draws), "exact", None
            except TooLarge:
                if self.method == "exact":
                    raise
        return self._sample(members, states, draws)

    def _inputs(self, members: list[Resolved], states: list[BeliefState]):
        """Likelihoods and the batch's intervention and evidence indices, on the device."""
        observed = dict.fromkeys(v for s in states for v in s.likelihood)
        likelihood = _stack_or_share(
            {v: [s.likelihood.get(v) for s in states] for v in observed},
            lambda v: torch.ones(self.model.network.card(v), dtype=torch.float64),
        )

        def indices(rows: list[tuple[tuple[str, int], ...]]) -> torch.Tensor:
            values = [[i for _, i in row] for row in rows]
            return torch.tensor(values, dtype=torch.long, device=self.device).reshape(len(rows), -1)

        first = members[0]
        return (
            {v: t.to(self.device, self.dtype) for v, t in likelihood.items()},
            [v for v, _ in first.do],
            indices([r.do for r in members]),
            [v for v, _ in first.given],
            indices([r.given for r in members]),
            first.outcomes,
        )

    def _contract(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> dict[str, torch.Tensor]:
        return self._engine.marginals(self._tables(states, draws), *self._inputs(members, states))

    def _sample(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> tuple:
        """The mean answer and its standard errors from ``particles`` particles; with draws, the
        interval from :data:`INTERVAL_DRAWS` parameter draws of ``particles / draws`` particles each."""
        inputs = self._inputs(members, states)
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        mean = self._sampler.marginals(self._tables(states, False), *inputs, self.particles, generator)
        posts = mean.p
        if draws and not all(s.certain for s in states):
            count = min(self.samples, INTERVAL_DRAWS)
            tables = {v: t[: count + 1] for v, t in self._tables(states, True).items()}
            drawn = self._sampler.marginals(tables, *inputs, max(100, self.particles // count), generator)
            posts = {t: torch.cat([mean.p[t], drawn.p[t][1:]], dim=0) for t in posts}
        return posts, "sampled", {t: e[0] for t, e in mean.stderr.items()}

    def _tables(self, states: list[BeliefState], draws: bool) -> dict[str, torch.Tensor]:
        """Tables on the device: ``(S, ...)`` when all queries share beliefs, else ``(S, B, ...)``.
        Beliefs without uncertainty need no draws: their tables have S = 1."""
        unique = {id(s): s for s in states}
        draws = draws and not all(s.certain for s in unique.values())
        if draws:
            per_state = {key: self._draw(s) for key, s in unique.items()}
        else:
            per_state = {key: {v: s.mean(v).unsqueeze(0) for v in s.concentration} for key, s in unique.items()}
        if len(unique) == 1:
            return {v: t.to(self.device, self.dtype) for v, t in next(iter(per_state.values())).items()}
        names = next(iter(unique.values())).concentration.keys()
        stacked = _stack_or_share({v: [per_state[id(s)][v] for s in states] for v in names}, None, dim=1)
        return {v: t.to(self.device, self.dtype) for v, t in stacked.items()}

    def _draw(self, state: BeliefState) -> dict[str, torch.Tensor]:
        """Mean and draws of every table of a belief state, on the device (a small cache)."""
        key = id(state)
        if key in self._draws and self._draws[key][0] is state:
            self._draws.move_to_end(key)
            return self._draws[key][1]
        tables = {v: t.to(self.device, self.dtype) for v, t in draw_tables(state, self.samples, self.seed).items()}
        self._draws[key] = (state, tables)
        if len(self._draws) > 16:
            self._draws.popitem(last=False)
        return tables


def _stack_or_share(per_query: dict[str, list], fill, dim: int = 0) -> dict[str, torch.Tensor]:
    """One tensor per name: shared if every query has the same one, else stacked along ``dim``."""
    out = {}
    for name, tensors in per_query.items():
        tensors = [t if t is not None else fill(name) for t in tensors]
        first = tensors[0]
        if all(t is first or torch.equal(t, first) for t in tensors[1:]):
            out[name] = first
        else:
            out[name] = torch.stack([t.to(first.device) for t in tensors], dim=dim)
    return out
