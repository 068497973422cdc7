"""The prediction oracle: "what happens if I do X, given Y?" with credible intervals.

The oracle predicts; it never ranks or recommends actions (deciding lives in
``dialogue/``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Literal

import torch
from crux.oracle.device import resolve_device
from crux.oracle.engine import Batch, Engine, Posterior, Workspace, size_in_words
from crux.oracle.exact import Einsum, ImpossibleEvidence, TooLarge
from crux.oracle.gaussian import Gaussian
from crux.oracle.junction import Tree
from crux.oracle.query import (
    Answer,
    Density,
    Distribution,
    Query,
    QueryError,
    Resolved,
    Resolver,
    index_of_state,
    resolve,
    variable_name,
)
from crux.oracle.router import Router
from crux.oracle.sample import Sampled
from crux.worldmodel.compile import BeliefState
from crux.worldmodel.model import Model

INTERVAL = (0.05, 0.95)
"""Quantiles of the 90% credible interval."""

Beliefs = BeliefState | Mapping[str, BeliefState] | None
"""Whose numbers answer: the model's parties (None), one belief state for every
query, or a belief state per party name (others fall back to the model's)."""


Method = Literal["auto", "exact", "sampled"]
METHODS: tuple[str, ...] = ("auto", "exact", "sampled")
MAX_BYTES = 2 * 2**30
"""Default memory allowed for one exact contraction's largest intermediate."""
MAX_PARTICLES = 10**8
"""The most particles a sampled answer may take (10^8: a standard error near 5e-5)."""
MAX_SAMPLES = 10**5
"""The most parameter draws behind an interval (the memory allowed bounds them too)."""

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
        if particles > MAX_PARTICLES:
            raise QueryError(f"particles must be at most {MAX_PARTICLES:,} (got {particles:,}): the error of a sampled answer shrinks as 1/sqrt(particles), and more would run for hours")
        if samples > MAX_SAMPLES:
            raise QueryError(f"samples must be at most {MAX_SAMPLES:,} (got {samples:,}): an interval's quantiles are steady long before")
        if not (isinstance(max_bytes, int) and 0 < max_bytes):
            raise QueryError(f"the memory allowed must be a positive number of bytes (got {max_bytes})")
        self.model = model
        self.device = resolve_device(device)
        self.samples = samples
        self.seed = seed
        self.dtype = dtype
        self.method = method
        self.particles = particles
        self.max_bytes = max_bytes
        net = model.network
        einsum = Einsum(net, max_bytes=max_bytes)
        self.work = Workspace(net, self.device, dtype, samples, seed, max_bytes, einsum.kernel.needed)
        """The tables prepared for the device, and what each structure's answers depend on."""
        self.router = Router(
            [Tree(net, max_bytes), einsum, Gaussian(), Sampled(net, particles, seed)], method, self._falling_back
        )
        """The engines, and which answers what."""
        self._resolver = Resolver(net, model.parties, model.default_party)
        self.on_sampling: Callable[[str], None] | None = None
        """Called with a sentence when ``auto`` samples what exact inference could not fit."""

    # -- public ------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget everything kept between calls: contraction paths, compiled structures, pruned
        variable sets, checked query shapes, prepared tables and the junction tree.  Answers do
        not change; the next calls pay for finding them again (a benchmark going cold)."""
        self.router.clear()
        self.work.clear()
        self._resolver.clear()

    def resolve(self, query: Query) -> Resolved:
        """``query`` checked against the model (names as the model spells them, states as
        indices); raises :class:`QueryError` with the fix.  Pass the result to :meth:`ask_many`
        (or :meth:`posterior_means`) and it is not checked again."""
        return resolve(query, self.model.network, self.model.parties, self.model.default_party)

    def ask(self, query: Query | Resolved, beliefs: Beliefs = None) -> Answer:
        """One query; see :meth:`ask_many`."""
        return self.ask_many([query], beliefs)[0]

    def ask_many(self, queries: Sequence[Query | Resolved], beliefs: Beliefs = None) -> list[Answer]:
        """Answer queries in order, with intervals; queries of equal structure run as one
        contraction.  A query already resolved (:meth:`resolve`) is not checked again."""
        with collector_paused(len(queries)):
            return self._ask_many(queries, beliefs)

    def _ask_many(self, queries: Sequence[Query | Resolved], beliefs: Beliefs) -> list[Answer]:
        resolved = self._resolve(queries)
        results = self._run(resolved, self.belief_states(resolved, beliefs), draws=True)
        net = self.model.network
        intervals = _intervals([(post[t], (i, t)) for i, (r, (post, _, _)) in enumerate(zip(resolved, results))
                                for t in r.outcomes if t not in net.continuous])
        answers = []
        for i, (r, (post, method, stderr)) in enumerate(zip(resolved, results)):
            outcomes = {}
            for t in r.outcomes:
                if t in net.continuous:
                    mean, sd, low, high = post[t][0].tolist()
                    se = None if stderr is None or t not in stderr else float(stderr[t][0])
                    outcomes[t] = Density(mean=mean, sd=sd, interval=[low, high], stderr=se)
                    continue
                outcomes[t] = Distribution(
                    states=list(net.states[t]),
                    p=post[t][0].tolist(),
                    interval=intervals[i, t],
                    stderr=None if stderr is None or t not in stderr else stderr[t].tolist(),
                )
            answers.append(Answer(query=r.query, method=method, device=self.device.type, outcomes=outcomes))
        return answers

    def posterior_means(
        self, queries: Sequence[Query | Resolved], beliefs: BeliefState | Sequence[BeliefState] | Mapping[str, BeliefState] | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """Posterior-mean marginals only (no intervals), as CPU tensors: the fast path for
        deciding.  ``beliefs`` may also give one belief state per query, so that many
        hypothetical beliefs (what if a party accepted this fact?) run as one batch."""
        if isinstance(beliefs, Sequence) and len(beliefs) != len(queries):
            raise ValueError("give one belief state per query")
        with collector_paused(len(queries)):
            resolved = self._resolve(queries, echo=False)
            states = list(beliefs) if isinstance(beliefs, Sequence) else self.belief_states(resolved, beliefs)
            return [post for post, _, _ in self._run(resolved, states, draws=False, means=True)]

    def ask_columns(
        self,
        outcomes: Sequence[str],
        do: Mapping[str, Sequence[str] | Sequence[int] | torch.Tensor] | None = None,
        given: Mapping[str, Sequence[str] | Sequence[int] | torch.Tensor] | None = None,
        as_: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Many queries of one structure, given as columns: ``do[X]`` and ``given[E]`` hold one
        state per query (state names, or state indices as a list, array or integer tensor), all of
        the same length B.  Returns the posterior means ``{outcome: (B, card)}`` on the CPU.

        The fast path for scripts with thousands of queries: no object per query, one
        contraction per chunk.  Networks with continuous variables (or ``method="sampled"``)
        take the general path, query by query."""
        do, given = dict(do or {}), dict(given or {})
        lengths = {name: len(column) for name, column in (*do.items(), *given.items())}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{n}: {k}" for n, k in lengths.items())
            raise QueryError(f"every column needs one state per query; the lengths differ ({shown})")
        batch = next(iter(lengths.values()), 1)
        net = self.model.network
        # A query of the same structure checks the names (and that nothing is both set and seen).
        do = {variable_name(net, v, "do"): c for v, c in do.items()}
        given = {variable_name(net, v, "given"): c for v, c in given.items()}
        columns = {v: _state_column(net, v, c, self.device) for v, c in (*do.items(), *given.items())}
        some = {v: net.states[v][0] for v in columns}
        template = resolve(
            Query(do={v: some[v] for v in do}, given={v: some[v] for v in given}, outcomes=list(outcomes), as_=as_),
            net, self.model.parties, self.model.default_party, echo=False,
        )
        if batch == 0:
            return {t: torch.empty(0, net.card(t), dtype=torch.float64) for t in template.outcomes}
        state = self._beliefs_of(template, None)
        if net.continuous or self.method == "sampled":  # the general path, one resolved query per row
            members = [
                replace(template, do=tuple((v, int(columns[v][b])) for v, _ in template.do),
                        given=tuple((v, int(columns[v][b])) for v, _ in template.given))
                for b in range(batch)
            ]
            answers = self._run(members, [state] * batch, draws=False)
            return {t: torch.stack([post[t][0] for post, _, _ in answers]) for t in template.outcomes}
        whole = Batch(
            self.work, [state], batch, template.outcomes,
            do={v: (None, columns[v]) for v, _ in template.do}, given={v: (None, columns[v]) for v, _ in template.given},
        )
        # the einsum engine, whatever the targets (the tree's answers would differ in the last bits)
        einsum = self.router.engine("einsum")
        posterior = self._answer(whole, lambda row: QueryError(f"row {row + 1}: {ImpossibleEvidence(row)}"), einsum)
        return {t: p[0].cpu() for t, p in posterior.p.items()}

    # -- internals -----------------------------------------------------------------------

    def _resolve(self, queries: Sequence[Query | Resolved], echo: bool = True) -> list[Resolved]:
        resolver = self._resolver
        return [q if isinstance(q, Resolved) else resolver(q, echo) for q in queries]

    def belief_states(self, resolved: Sequence[Resolved], beliefs: Beliefs = None) -> list[BeliefState]:
        """Each query's belief state (looked up once per party)."""
        by_party: dict[str, BeliefState] = {}
        out = []
        for r in resolved:
            state = by_party.get(r.party)
            if state is None:
                state = by_party[r.party] = self._beliefs_of(r, beliefs)
            out.append(state)
        return out

    def _beliefs_of(self, r: Resolved, beliefs: Beliefs) -> BeliefState:
        if isinstance(beliefs, BeliefState):
            return beliefs
        if beliefs is not None and r.party in beliefs:
            return beliefs[r.party]
        return self.model.beliefs(r.party)

    def _run(self, resolved: list[Resolved], states: list[BeliefState], draws: bool, means: bool = False) -> list[tuple]:
        """Per query, in order: posteriors ``{target: (1 + draws or 1, card)}`` on the CPU (with
        ``means``, the posterior means alone: ``{target: (card,)}``), the method that computed
        them, and (sampled) their standard errors ``{target: (card,)}``."""
        out: list[tuple] = [None] * len(resolved)  # type: ignore[list-item]
        for indices, batch, engine in self.groups(resolved, states, draws):
            posterior = self._answer(batch, lambda b, at=indices: _in_batch(at[b], len(resolved)), engine)
            self._fill(out, indices, batch, posterior, means)
        return out

    def groups(
        self, resolved: Sequence[Resolved], states: Sequence[BeliefState], draws: bool
    ) -> Iterator[tuple[Sequence[int], Batch, Engine | None]]:
        """How a call's queries are answered: ``(indices, batch, engine)`` per group, the engine
        None where the router picks it (``router.answer(batch, engine)`` answers a group).

        Queries of one structure and belief state are one group.  Otherwise, first every query
        the junction tree holds (those that set the decision, of any structure, across belief
        states) in one group, then the rest grouped by structure (and by belief state, where
        there are few)."""
        if not resolved:
            return
        whole = Batch.of(self.work, resolved, states, draws)
        if whole.one_structure and whole.shared:
            yield range(len(resolved)), whole, None
            return
        rest: Sequence[int] = range(len(resolved))
        tree = self.router.engine("tree")
        decision = self.model.network.decision
        if tree is not None and tree in self.router.allowed:
            mine = [i for i, r in enumerate(resolved) if decision is None or any(v == decision for v, _ in r.do)]
            if mine:
                batch = Batch.of(self.work, [resolved[i] for i in mine], [states[i] for i in mine], draws)
                if tree.holds(batch):
                    yield mine, batch, tree
                    taken = set(mine)
                    rest = [i for i in range(len(resolved)) if i not in taken]
        grouped: dict[tuple, list[int]] = {}
        by_state = len({id(s) for s in states}) <= _SPLIT_STATES
        for i in rest:
            grouped.setdefault((id(states[i]) if by_state else None, resolved[i].structure[1:]), []).append(i)
        for indices in grouped.values():
            yield indices, Batch.of(self.work, [resolved[i] for i in indices], [states[i] for i in indices], draws), None

    def _answer(self, batch: Batch, impossible: Callable[[int], QueryError], engine: Engine | None = None) -> Posterior:
        """The router's (or ``engine``'s) answer; impossible evidence raised with ``impossible``
        (given the batch row of the first query it is impossible for)."""
        posterior = self.router.answer(batch, engine)
        first = posterior.first_impossible()
        if first is not None:
            raise impossible(first)
        return posterior

    @staticmethod
    def _fill(out: list, indices: Sequence[int], batch: Batch, posterior: Posterior, means: bool) -> None:
        """Each query's share of a posterior, on the CPU, into ``out`` at its index."""
        answered = {  # row -> (S, card), or (card,) with means
            t: dict(zip(batch.asks[t].tolist() if not batch.one_structure else range(batch.size),
                        (p[0] if means else p).cpu().unbind(0 if means else 1)))
            for t, p in posterior.p.items()
        }
        stderr = posterior.stderr
        for b, i in enumerate(indices):
            members = batch.members[b].outcomes  # type: ignore[index]
            errors = None if stderr is None else {t: e[b].cpu() for t, e in stderr.items()}
            out[i] = ({t: answered[t][b] for t in members}, posterior.method, errors)

    def _falling_back(self, err: TooLarge) -> None:
        """Tell :attr:`on_sampling` (if set) that an answer is sampled because exact inference
        would not fit: a long computation should not be a silent one."""
        if self.on_sampling is not None:
            self.on_sampling(
                f"exact inference for {err.target} needs {size_in_words(err.elements * err.itemsize)}, over the "
                f"{size_in_words(self.max_bytes)} allowed: what does not fit is sampled instead ({self.particles:,} particles; "
                "slower and approximate; --max-memory allows more, --particles trades accuracy for time)"
            )


def _intervals(posts: list[tuple[torch.Tensor, Hashable]]) -> dict[Hashable, list[list[float]]]:
    """The 90% interval ``[[low, high], ...]`` of each state from ``(posterior, key)`` pairs (a
    posterior: ``(S, card)``, the mean then the draws; a mean alone is a point interval): the
    posteriors of one shape stacked, one quantile call for all (per query, that call was half
    of ``ask_many``'s time)."""
    alike: dict[tuple[int, ...], list[int]] = {}
    for j, (post, _) in enumerate(posts):
        alike.setdefault(tuple(post.shape), []).append(j)
    out: dict[Hashable, list[list[float]]] = {}
    for shape, members in alike.items():
        drawn = torch.stack([posts[j][0] for j in members], dim=1)  # (S, n, card)
        if shape[0] == 1:  # the mean alone (certain numbers): a point interval
            bounds = drawn.expand(2, -1, -1)
        else:
            bounds = interval_bounds(drawn[1:])
        for j, rows in zip(members, bounds.permute(1, 2, 0).tolist()):
            out[posts[j][1]] = rows
    return out


def interval_bounds(drawn: torch.Tensor) -> torch.Tensor:
    """The 90% interval ``(2, n, card)`` of parameter draws ``(S, n, card)``, one quantile call
    per slice that ``torch.nanquantile`` takes.  Draws that cannot condition on the evidence are
    NaN and left out; where no draw can (the evidence has probability 0 under each of them, e.g.
    after counts of 1e-65) the draws say nothing, and the interval is all of [0, 1]."""
    level = torch.tensor(INTERVAL, dtype=drawn.dtype, device=drawn.device)
    per = max(1, _QUANTILE_CELLS // (drawn.shape[0] * drawn.shape[2]))  # nanquantile's input limit
    bounds = torch.cat([torch.nanquantile(drawn[:, k : k + per], level, dim=0) for k in range(0, drawn.shape[1], per)], dim=1)
    return torch.where(bounds.isnan(), torch.tensor([0.0, 1.0], dtype=bounds.dtype).reshape(2, 1, 1), bounds)


_QUANTILE_CELLS = 1 << 23
"""At most this many numbers per ``torch.nanquantile`` call (it refuses inputs of 2**24 or more)."""


def _in_batch(at: int, queries: int) -> QueryError:
    """Impossible evidence of the query at ``at``: named by its number when it came in a batch."""
    err = ImpossibleEvidence(at)
    return err if queries == 1 else QueryError(f"query {at + 1}: {err}")


@contextmanager
def collector_paused(count: int):
    """Python's cyclic garbage collector paused while a large batch makes its objects per query
    (none of them cyclic): with 100,000 queries alive, its passes over them halved the batch's
    speed (measured: bench/findings/tuning_notes.md).  Below :data:`_PAUSE_FROM` queries, or where it was off already, nothing changes.  The pause is
    the process's (a server's other threads collect after the batch too), for the batch only."""
    if count < _PAUSE_FROM or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_PAUSE_FROM = 1000

_SPLIT_STATES = 4
"""A batch answered from at most this many belief states (the parties) runs one contraction per
structure and state, each compiled and read by index, not one over tables stacked per query
(measured: bench/findings/tuning_notes.md).  More states (a dialogue's hypothetical beliefs, one
per query) stay stacked."""


def _state_column(net, var: str, column, device: torch.device) -> torch.Tensor:
    """A column of states (names or indices) as a long tensor of state indices, every row checked."""
    if var in net.continuous:
        raise QueryError(f"{var} is continuous: columns take discrete variables (ask such queries with ask_many)")
    card = net.card(var)
    if len(column) == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    if isinstance(column[0], str):
        found = []
        for row, s in enumerate(column):
            try:
                found.append(index_of_state(net, var, str(s)))
            except QueryError as err:
                raise QueryError(f"row {row + 1}: {err}") from None
        return torch.tensor(found, dtype=torch.long, device=device)
    try:
        values = torch.as_tensor(column, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise QueryError(f"the column of {var} holds neither state names nor state indices") from None
    if values.dtype.is_floating_point or values.dtype == torch.bool or values.dim() != 1:
        raise QueryError(f"the column of {var} must be one state name or integer index per query")
    low, high = torch.aminmax(values)
    if bool(low < 0) or bool(high >= card):
        row = int(((values < 0) | (values >= card)).nonzero()[0])
        raise QueryError(f"row {row + 1}: {var} has {card} states, so its index must be 0..{card - 1}, not {int(values[row])}")
    return values.long()
