"""The prediction oracle: "what happens if I do X, given Y?" with credible intervals.

The oracle predicts; it never ranks or recommends actions (deciding lives in
``dialogue/``).
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Literal

import networkx as nx
import torch

from crux.oracle.device import resolve_device
from crux.oracle.exact import ExactEngine, ImpossibleEvidence, TooLarge, relevant
from crux.oracle.gaussian import Z90, gaussian_marginals
from crux.oracle.junction import JunctionTree
from crux.oracle.params import draw_tables
from crux.oracle.query import (
    Answer, Density, Distribution, Query, QueryError, Resolved, Resolver, index_of_state, resolve, variable_name,
)
from crux.oracle.sample import Sampler
from crux.worldmodel.compile import BeliefState
from crux.worldmodel.model import Model

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
MAX_PARTICLES = 10**8
"""The most particles a sampled answer may take (10^8: a standard error near 5e-5)."""
MAX_SAMPLES = 10**5
"""The most parameter draws behind an interval (the memory allowed bounds them too)."""
INTERVAL_DRAWS = 100
"""Parameter draws behind a sampled answer's interval (each with particles / draws particles)."""
_TREE_CELLS = 1 << 24
"""Numbers per call of the junction tree pass (cells per query, :attr:`JunctionTree.cells`, x
queries: 128 MiB in float64, of which a pass computes only what the queries need): fewer calls
make up for leaving the cache (alarm: 15,753 queries per call; hailfinder 2,952; insurance 1,062).
Measured: bench/findings/tuning_notes.md."""
_TREE_TARGETS = 8
"""A batch of one structure asking about this many variables or more takes the junction tree
too: one pass gives every marginal, where the einsum engine contracts once per target (the
upstream marginals a session's end compares).  Measured: bench/findings/tuning_notes.md."""
_TREE_MAX_CELLS = 1 << 17
"""A junction tree holding more numbers per query than this (its materialised cliques and the
largest intermediates of its contracted ones: pigs 153k, water 592k) costs more per query than
finding and running each structure's own pruned contraction; below it (pathfinder 83k, andes
48k, insurance 16k, hailfinder 5.7k, alarm 1k) the tree is as fast or faster.  Measured:
bench/findings/tuning_notes.md."""


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
        self._engine = ExactEngine(model.network, max_bytes=max_bytes)
        self._tree: JunctionTree | None | bool = False  # False: not built yet; None: none fits
        self._sampler = Sampler(model.network)
        self._cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cached_bytes = 0
        self._resolver = Resolver(model.network, model.parties, model.default_party)
        self.on_sampling: Callable[[str], None] | None = None
        """Called with a sentence when ``auto`` samples what exact inference could not fit."""

    # -- public ------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget everything kept between calls: contraction paths, compiled structures, pruned
        variable sets, checked query shapes, prepared tables and the junction tree.  Answers do
        not change; the next calls pay for finding them again (a benchmark going cold)."""
        from crux.oracle import exact

        exact._plan.cache_clear()
        self._tree = False
        for kept in (self._engine._compiled, self._engine._met, self._engine._relevant, self._resolver._shapes, self._cache):
            kept.clear()
        self._cached_bytes = 0

    def ask(self, query: Query, beliefs: Beliefs = None) -> Answer:
        """One query; see :meth:`ask_many`."""
        return self.ask_many([query], beliefs)[0]

    def ask_many(self, queries: Sequence[Query], beliefs: Beliefs = None) -> list[Answer]:
        """Answer queries in order, with intervals; queries of equal structure run as one contraction."""
        with _collector_paused(len(queries)):
            return self._ask_many(queries, beliefs)

    def _ask_many(self, queries: Sequence[Query], beliefs: Beliefs) -> list[Answer]:
        resolved = self._resolve(queries)
        results = self._run(resolved, self._states(resolved, beliefs), draws=True)
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
        self, queries: Sequence[Query], beliefs: BeliefState | Sequence[BeliefState] | Mapping[str, BeliefState] | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """Posterior-mean marginals only (no intervals), as CPU tensors: the fast path for
        deciding.  ``beliefs`` may also give one belief state per query, so that many
        hypothetical beliefs (what if a party accepted this fact?) run as one batch."""
        if isinstance(beliefs, Sequence) and len(beliefs) != len(queries):
            raise ValueError("give one belief state per query")
        with _collector_paused(len(queries)):
            resolved = self._resolve(queries, echo=False)
            states = list(beliefs) if isinstance(beliefs, Sequence) else self._states(resolved, beliefs)
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

        def one_by_one() -> dict[str, torch.Tensor]:
            """The general path (continuous outcomes, sampling): one resolved query per row."""
            members = [
                replace(template, do=tuple((v, int(columns[v][b])) for v, _ in template.do),
                        given=tuple((v, int(columns[v][b])) for v, _ in template.given))
                for b in range(batch)
            ]
            answers = self._run(members, [state] * batch, draws=False)
            return {t: torch.stack([post[t][0] for post, _, _ in answers]) for t in template.outcomes}

        if net.continuous or self.method == "sampled":
            return one_by_one()
        do_names, given_names = [v for v, _ in template.do], [v for v, _ in template.given]

        def stacked(names: list[str], rows: slice) -> torch.Tensor:
            if not names:
                return torch.zeros(rows.stop - rows.start, 0, dtype=torch.long, device=self.device)
            return torch.stack([columns[v][rows] for v in names], dim=1)

        needed = self._needed([template], [state])
        out: dict[str, list[torch.Tensor]] = {t: [] for t in template.outcomes}
        for start in range(0, batch, _CELLS_PER_CALL):
            rows = slice(start, min(batch, start + _CELLS_PER_CALL))
            try:
                posts = self._engine.marginals(
                    self._tables([state], False, needed), self._likelihoods([state]),
                    do_names, stacked(do_names, rows), given_names, stacked(given_names, rows), template.outcomes,
                )
            except ImpossibleEvidence as err:
                raise QueryError(f"row {start + err.index + 1}: {err}") from None
            except TooLarge as err:
                if self.method == "exact":
                    raise
                self._falling_back(err)
                return one_by_one()  # auto: what does not fit is sampled
            for t, p in posts.items():
                out[t].append(p[0].cpu())
        return {t: torch.cat(parts) for t, parts in out.items()}

    # -- internals -----------------------------------------------------------------------

    def _resolve(self, queries: Sequence[Query], echo: bool = True) -> list[Resolved]:
        resolver = self._resolver
        return [resolver(q, echo) for q in queries]

    def _states(self, resolved: list[Resolved], beliefs: Beliefs) -> list[BeliefState]:
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
        per_query = (self.samples + 1) if draws and not all(s.certain for s in states) else 1
        rest = range(len(resolved))
        if per_query == 1:
            rest = self._run_tree(resolved, states, out, means)
        groups: dict[tuple, list[int]] = {}
        by_state = len({id(s) for s in states}) <= _SPLIT_STATES
        for i in rest:
            groups.setdefault((id(states[i]) if by_state else None, resolved[i].structure[1:]), []).append(i)
        step = max(1, _CELLS_PER_CALL // per_query)
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                try:
                    posts, method, stderr = self._answer([resolved[i] for i in chunk], [states[i] for i in chunk], draws)
                except ImpossibleEvidence as err:
                    raise _in_batch(err, chunk[err.index], len(resolved)) from None
                rows = {t: (p[0] if means else p).cpu().unbind(0 if means else 1) for t, p in posts.items()}
                for b, i in enumerate(chunk):
                    errors = None if stderr is None else {t: e[b].cpu() for t, e in stderr.items()}
                    out[i] = ({t: p[b] for t, p in rows.items()}, method, errors)
        return out

    def _junction(self) -> JunctionTree | None:
        """The network's junction tree, built on first use; None where it cannot serve (continuous
        variables, or a clique too large for the memory allowed)."""
        if self._tree is False:
            net = self.model.network
            tree = None if net.continuous else JunctionTree(net, max_cells=self.max_bytes // (8 * 4))
            self._tree = tree if tree is not None and tree.fits and tree.cells <= _TREE_MAX_CELLS else None
        return self._tree  # type: ignore[return-value]

    def _run_tree(self, resolved: list[Resolved], states: list[BeliefState], out: list, means: bool) -> list[int]:
        """Queries of more than one structure, without parameter draws, in one junction tree pass
        per chunk (:mod:`oracle.junction`); fills ``out`` and returns the indices left to the
        einsum engine.  One structure is one einsum contraction: finding its path takes a
        fraction of a millisecond, and alone it is 1.5-3x faster than a tree pass."""
        if self.method == "sampled" or (
            len({r.structure[1:] for r in resolved}) == 1 and len(resolved[0].outcomes) < _TREE_TARGETS
        ):
            return list(range(len(resolved)))
        tree = self._junction()
        if tree is None:
            return list(range(len(resolved)))
        decision = self.model.network.decision
        mine = [i for i, r in enumerate(resolved) if decision is None or any(v == decision for v, _ in r.do)]
        step = max(1, _TREE_CELLS // tree.cells)
        for start in range(0, len(mine), step):
            chunk = mine[start : start + step]
            members, chunk_states = [resolved[i] for i in chunk], [states[i] for i in chunk]
            tables = self._tables(chunk_states, False, set(self.model.network.order))
            asking: dict[str, list[int]] = {}
            for b, r in enumerate(members):
                for t in r.outcomes:
                    asking.setdefault(t, []).append(b)
            rows = {t: torch.tensor(bs, dtype=torch.long, device=self.device) for t, bs in asking.items()}
            posts, impossible = tree.marginals(tables, self._likelihoods(chunk_states), *self._settings(members), rows, len(chunk))
            if bool(impossible[0].any()):
                b = int(impossible[0].nonzero()[0])
                raise _in_batch(ImpossibleEvidence(b), chunk[b], len(resolved))
            answered = {  # row -> (S, card), or (card,) with means
                t: dict(zip(asking[t], (p[0] if means else p).cpu().unbind(0 if means else 1))) for t, p in posts.items()
            }
            for b, (i, r) in enumerate(zip(chunk, members)):
                out[i] = ({t: answered[t][b] for t in r.outcomes}, "exact", None)
        taken = set(mine)
        return [i for i in range(len(resolved)) if i not in taken]

    def _answer(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> tuple:
        """One group, target by target: discrete targets exact if the contraction fits (or is
        forced), else sampled; continuous ones exact in closed form when everything they touch
        is normal, else sampled.  The method is ``sampled`` if any target was."""
        by_kind: dict[str, list[str]] = {}
        for t in members[0].outcomes:
            by_kind.setdefault(self._kind(members[0], t), []).append(t)
        if "mixed" in by_kind and self.method == "exact":
            raise QueryError(
                "exact inference covers discrete networks and purely normal ones; this query mixes discrete and "
                "continuous variables: use --method sampled (or auto)"
            )
        posts: dict[str, torch.Tensor] = {}
        errors: dict[str, torch.Tensor] = {}
        sampled: list[str] = list(by_kind.get("mixed", []))
        if self.method == "sampled":
            sampled += by_kind.get("normal", []) + by_kind.get("discrete", [])
        else:
            if by_kind.get("normal"):
                posts.update(self._gaussian(_with_targets(members, by_kind["normal"]), states))
            if by_kind.get("discrete"):
                try:
                    posts.update(self._contract(_with_targets(members, by_kind["discrete"]), states, draws))
                except TooLarge as err:
                    if self.method == "exact":
                        raise
                    self._falling_back(err)
                    sampled += by_kind["discrete"]
        if sampled:
            found, _, found_errors = self._sample(_with_targets(members, sampled), states, draws)
            posts.update(found)
            errors.update(found_errors)
        return posts, "sampled" if sampled else "exact", errors or None

    def _kind(self, r: Resolved, target: str) -> str:
        """How ``target`` can be answered: discrete, normal (everything it touches is
        continuous) or mixed."""
        net = self.model.network
        if not net.continuous:
            return "discrete"
        do, given = [v for v, _ in r.do], [v for v, _ in r.given]
        if any(v in net.continuous for v in given):  # evidence that cannot inform the targets is no reason to sample
            cut = net.graph.copy()
            cut.remove_edges_from([(p, v) for v in do for p in net.parents[v]])
            given = [
                g for g in given
                if g == target or not nx.is_d_separator(cut, {target}, {g}, set(given) - {g, target})
            ]
        needed = relevant(net, [target], do, given)
        touched = needed & net.continuous
        if not touched:
            return "discrete"
        constants = {v for v in do if v not in net.continuous}  # a set discrete variable only shifts means
        return "normal" if touched == needed - constants else "mixed"

    def _gaussian(self, members: list[Resolved], states: list[BeliefState]) -> dict[str, torch.Tensor]:
        """Closed-form answers, one query at a time: ``{target: (1, B, 4)}`` mean, sd, 90% interval."""
        net = self.model.network
        out = {t: torch.empty(1, len(members), 4, dtype=torch.float64) for t in members[0].outcomes}
        for b, (r, state) in enumerate(zip(members, states)):
            do, given = dict(r.do), dict(r.given)
            needed = relevant(net, r.outcomes, list(do), list(given))
            answers = gaussian_marginals(net, state, sorted(needed), do, given, r.outcomes)
            for t, (mean, sd) in answers.items():
                out[t][0, b] = torch.tensor([mean, sd, mean - Z90 * sd, mean + Z90 * sd], dtype=torch.float64)
        return out

    def _likelihoods(self, states: list[BeliefState]) -> dict[str, torch.Tensor]:
        """Soft evidence on the device: ``(card,)`` shared by the batch, or ``(B, card)``."""
        net = self.model.network
        observed = dict.fromkeys(v for s in states for v in s.likelihood)
        likelihood = _stack_or_share(
            {v: [s.likelihood.get(v) for s in states] for v in observed},
            lambda v: torch.ones(net.card(v), dtype=torch.float64),
        )
        return {v: t.to(self.device, self.dtype) for v, t in likelihood.items()}

    def _settings(self, members: list[Resolved]) -> tuple[dict, dict]:
        """Per variable, ``(mask, index)`` over the batch: which queries set it (do) or see it
        (given), and the state; for queries of any structure."""
        columns: tuple[dict, dict] = ({}, {})
        for b, r in enumerate(members):
            for found, pairs in zip(columns, (r.do, r.given)):
                for v, i in pairs:
                    found.setdefault(v, ([], []))
                    found[v][0].append(b)
                    found[v][1].append(int(i))
        out: tuple[dict, dict] = ({}, {})
        for found, packed in zip(columns, out):
            for v, (rows, index) in found.items():
                mask = torch.zeros(len(members), dtype=torch.bool, device=self.device)
                at = torch.zeros(len(members), dtype=torch.long, device=self.device)
                where = torch.tensor(rows, dtype=torch.long, device=self.device)
                mask[where] = True
                at[where] = torch.tensor(index, dtype=torch.long, device=self.device)
                packed[v] = (mask, at)
        return out

    def _inputs(self, members: list[Resolved], states: list[BeliefState]):
        """Likelihoods, the batch's discrete intervention and evidence indices, and the targets."""
        net = self.model.network

        def indices(rows: list[tuple[tuple[str, int | float], ...]]) -> torch.Tensor:
            if net.continuous:
                values = [[int(i) for v, i in row if v not in net.continuous] for row in rows]
            else:  # every value is a state index
                values = [[i for _, i in row] for row in rows]
            return torch.tensor(values, dtype=torch.long, device=self.device).reshape(len(rows), -1)

        first = members[0]
        return (
            self._likelihoods(states),
            [v for v, _ in first.do if v not in net.continuous],
            indices([r.do for r in members]),
            [v for v, _ in first.given if v not in net.continuous],
            indices([r.given for r in members]),
            first.outcomes,
        )

    def _continuous_inputs(self, members: list[Resolved]) -> dict:
        """Values ``(B,)`` at which continuous variables are set or seen."""
        net = self.model.network

        def values(pairs_of: str) -> dict[str, torch.Tensor]:
            names = [v for v, _ in getattr(members[0], pairs_of) if v in net.continuous]
            return {
                v: torch.tensor([dict(getattr(r, pairs_of))[v] for r in members], dtype=self.dtype, device=self.device)
                for v in names
            }

        return {"set_values": values("do"), "seen_values": values("given")}

    def _needed(self, members: list[Resolved], states: list[BeliefState]) -> set[str]:
        """The variables a group's answers can depend on: only their tables are prepared."""
        r = members[0]
        soft = sorted({v for s in states for v in s.likelihood})
        return self._engine.needed(r.outcomes, [v for v, _ in r.do], [*(v for v, _ in r.given), *soft])

    def _falling_back(self, err: TooLarge) -> None:
        """Tell :attr:`on_sampling` (if set) that an answer is sampled because exact inference
        would not fit: a long computation should not be a silent one."""
        if self.on_sampling is not None:
            self.on_sampling(
                f"exact inference for {err.target} needs {_size(err.elements * err.itemsize)}, over the "
                f"{_size(self.max_bytes)} allowed: what does not fit is sampled instead ({self.particles:,} particles; "
                "slower and approximate; --max-memory allows more, --particles trades accuracy for time)"
            )

    def _contract(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> dict[str, torch.Tensor]:
        """One exact contraction for the group; where its intermediates would not fit the memory
        allowed, the group is halved (an intermediate grows with the batch), down to one query:
        only a query too large alone raises :class:`TooLarge` (and is sampled, with ``auto``)."""
        try:
            tables = self._tables(states, draws, self._needed(members, states))
            return self._engine.marginals(tables, *self._inputs(members, states))
        except TooLarge:
            if len(members) == 1:
                raise
        half = len(members) // 2
        first = self._contract(members[:half], states[:half], draws)
        try:
            second = self._contract(members[half:], states[half:], draws)
        except ImpossibleEvidence as err:
            raise ImpossibleEvidence(err.index + half) from None
        return {t: torch.cat([first[t], second[t]], dim=1) for t in first}

    def _sample(self, members: list[Resolved], states: list[BeliefState], draws: bool) -> tuple:
        """The mean answer and its standard errors from ``particles`` particles; with draws, the
        interval from :data:`INTERVAL_DRAWS` parameter draws of ``particles / draws`` particles each."""
        inputs = self._inputs(members, states)
        needed = self._needed(members, states)
        extra = {"normal": states[0].normal, "only": needed, **self._continuous_inputs(members)}
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        mean = self._sampler.marginals(self._tables(states, False, needed), *inputs, self.particles, generator, **extra)
        posts = mean.p
        if draws and not all(s.certain for s in states) and states[0].concentration:
            count = min(self.samples, INTERVAL_DRAWS)
            tables = {v: t[: count + 1] for v, t in self._tables(states, True, needed).items()}
            drawn = self._sampler.marginals(tables, *inputs, max(100, self.particles // count), generator, **extra)
            net = self.model.network
            posts = {t: mean.p[t] if t in net.continuous else torch.cat([mean.p[t], drawn.p[t][1:]], dim=0) for t in posts}
        return posts, "sampled", {t: e[0] for t, e in mean.stderr.items()}

    def _tables(self, states: list[BeliefState], draws: bool, needed: set[str]) -> dict[str, torch.Tensor]:
        """The needed tables on the device: ``(S, ...)`` when all queries share beliefs, else
        ``(S, B, ...)``.  Beliefs without uncertainty need no draws: their tables have S = 1."""
        unique = {id(s): s for s in states}
        draws = draws and not all(s.certain for s in unique.values())
        names = [v for v in next(iter(unique.values())).concentration if v in needed]
        if draws:  # the draws of one state's tables must fit the memory allowed, before any is made
            first = next(iter(unique.values()))
            size = (self.samples + 1) * sum(first.concentration[v].numel() for v in names) * self.dtype.itemsize
            if size > self.max_bytes:
                raise QueryError(
                    f"{self.samples:,} draws of the tables behind the intervals need {_size(size)}, over the "
                    f"{_size(self.max_bytes)} allowed: ask for fewer --samples, or allow more --max-memory"
                )
        if len(unique) == 1:
            return self._prepared(next(iter(unique.values())), names, draws)
        out = {}
        for v in names:  # table by table: most are one tensor shared by every state
            column = [s.concentration[v] for s in states]
            holders = {id(t): s for t, s in zip(column, states)}
            made = {key: self._prepared(s, [v], draws)[v] for key, s in holders.items()}
            out[v] = _stack_or_share({v: [made[id(t)] for t in column]}, None, dim=1)[v]
        return out

    def _prepared(self, state: BeliefState, names: list[str], draws: bool) -> dict[str, torch.Tensor]:
        """The mean (and with ``draws`` the draws) of these tables of a belief state, on the device.

        Kept per table, not per belief state: the hypothetical beliefs of a dialogue (a party's
        beliefs plus one fact) share every table but the one a fact touches, so each table is
        prepared once however many states hold it (and a batch of them shares it, unstacked).
        Draws are seeded per variable, so a table's draws are the same in any state."""
        out = {}
        cache = self._cache
        if not cache:
            self._cached_bytes = 0  # emptied from outside (a bench going cold)
        for v in names:
            table = state.concentration[v]
            key = (v, id(table), draws, state.certain)
            found = cache.get(key)
            if found is not None and found[0] is table:
                cache.move_to_end(key)
                out[v] = found[1]
                continue
            out[v] = None  # type: ignore[assignment]
        missing = [v for v, t in out.items() if t is None]
        if missing:
            if draws:
                fresh = draw_tables(state, self.samples, self.seed, missing)
            else:
                fresh = {v: state.mean(v).unsqueeze(0) for v in missing}
            for v in missing:
                prepared = out[v] = fresh[v].to(self.device, self.dtype)
                table = state.concentration[v]
                cache[(v, id(table), draws, state.certain)] = (table, prepared)
                self._cached_bytes += prepared.numel() * prepared.element_size()
            while len(cache) > _CACHE_TABLES or self._cached_bytes > _CACHE_BYTES:
                if len(cache) <= len(names):  # what this batch needs stays, however big
                    break
                _, (_, dropped) = cache.popitem(last=False)
                self._cached_bytes -= dropped.numel() * dropped.element_size()
        return out


_CACHE_TABLES = 16384
"""Prepared tables kept (each with the concentration it was made from)."""
_CACHE_BYTES = 1 << 30
"""At most this much memory of prepared tables kept (draws of a big table take megabytes)."""


def _size(count: int) -> str:
    """Bytes in words: GiB, MiB or KiB, whichever reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale / 10:
            return f"{count / scale:.2f} {unit}"
    return f"{count / 2**10:.2f} KiB"


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
            drawn = drawn[1:]
            level = torch.tensor(INTERVAL, dtype=drawn.dtype, device=drawn.device)
            per = max(1, _QUANTILE_CELLS // (drawn.shape[0] * drawn.shape[2]))  # nanquantile's input limit
            bounds = torch.cat(
                [torch.nanquantile(drawn[:, k : k + per], level, dim=0) for k in range(0, len(members), per)], dim=1
            )
        # No draw can condition on the evidence (it has probability 0 under each of them, e.g.
        # after counts of 1e-65): the draws say nothing, so the interval is all of [0, 1].
        bounds = torch.where(bounds.isnan(), torch.tensor([0.0, 1.0], dtype=bounds.dtype).reshape(2, 1, 1), bounds)
        for j, rows in zip(members, bounds.permute(1, 2, 0).tolist()):
            out[posts[j][1]] = rows
    return out


_QUANTILE_CELLS = 1 << 23
"""At most this many numbers per ``torch.nanquantile`` call (it refuses inputs of 2**24 or more)."""


def _in_batch(err: ImpossibleEvidence, at: int, queries: int) -> QueryError:
    """Impossible evidence of the query at ``at``: named by its number when it came in a batch."""
    return err if queries == 1 else QueryError(f"query {at + 1}: {err}")


@contextmanager
def _collector_paused(count: int):
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


def _with_targets(members: list[Resolved], targets: list[str]) -> list[Resolved]:
    if list(members[0].outcomes) == list(targets):
        return members
    return [replace(r, outcomes=tuple(t for t in r.outcomes if t in targets)) for r in members]


def _stack_or_share(per_query: dict[str, list], fill, dim: int = 0) -> dict[str, torch.Tensor]:
    """One tensor per name: shared if every query has the same one, else stacked along ``dim``.
    Queries missing one get ``fill(name)`` (made once); each distinct tensor is compared once
    (hypothetical beliefs share most of theirs)."""
    out = {}
    for name, tensors in per_query.items():
        if any(t is None for t in tensors):
            filler = fill(name)
            tensors = [filler if t is None else t for t in tensors]
        first = tensors[0]
        distinct = {id(t): t for t in tensors}
        if all(t is first or torch.equal(t, first) for t in distinct.values()):
            out[name] = first
        else:
            out[name] = torch.stack([t.to(first.device) for t in tensors], dim=dim)
    return out
