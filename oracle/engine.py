"""The one protocol every inference engine implements: a :class:`Batch` in, a :class:`Posterior` out.

A batch is built once per group of queries (the oracle groups them by structure and belief
state): the beliefs' tables on the device, prepared on first use and shared by every engine,
soft evidence, what each query sets and sees, and what it asks about.  An :class:`Engine` says
whether it :meth:`~Engine.holds` a batch and answers it; :mod:`oracle.router` picks the engine.
The kernels themselves (:class:`~oracle.exact.ExactEngine`, :class:`~oracle.junction.JunctionTree`,
:class:`~oracle.sample.Sampler`, :func:`~oracle.gaussian.gaussian_marginals`) know nothing of
queries; their adapters, next to them, turn a batch into their arguments.

Every cache kept between calls lives in a :class:`Workspace` (prepared tables, the variables a
structure's answers depend on) or in an engine (contraction paths, compiled structures, the
junction tree); :meth:`Workspace.clear` and :meth:`Engine.clear` forget them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import networkx as nx
import torch
from crux.oracle.params import draw_tables
from crux.oracle.query import QueryError, Resolved
from crux.worldmodel.compile import BeliefState, Network

Kind = Literal["discrete", "normal", "mixed"]

Setting = tuple[torch.Tensor | None, torch.Tensor]
"""What a batch sets (or sees) of one variable: a bool mask ``(B,)`` of the queries that do
(None: every query), and the state index ``(B,)`` each of them sets (sees)."""


class _once:  # noqa: N801 - used as a decorator, like functools.cached_property
    """A property computed on first use and then kept in the instance: ``cached_property``
    without its lock (a batch lives in one thread, and is made per call: the lock cost more
    than the work on a single query)."""

    def __init__(self, compute: Callable):
        self.compute, self.__doc__ = compute, compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class Batch:
    """Queries answered together, and everything an engine reads to answer them.

    One structure (every query sets, sees and asks about the same variables) or several (a
    junction tree pass): then :attr:`asks` holds, per target, the rows that ask about it, and
    a setting's mask the queries that set or see the variable.  What an engine reads is made
    on first use and kept with the batch, so routing a batch costs nothing."""

    def __init__(
        self,
        work: Workspace,
        states: Sequence[BeliefState],
        size: int,
        targets: Sequence[str],
        *,
        draws: bool = False,
        members: Sequence[Resolved] | None = None,
        one_structure: bool = True,
        do: dict[str, Setting] | None = None,
        given: dict[str, Setting] | None = None,
        asks: dict[str, torch.Tensor] | None = None,
    ):
        self.work, self.states, self.size, self.targets = work, states, size, tuple(targets)
        self.draws = draws
        """Parameter draws wanted too (for intervals): posteriors are ``(1 + samples, B, ...)``."""
        self.members = members
        """The resolved queries, where the batch came from queries (not columns)."""
        self.one_structure = one_structure
        if do is not None:
            self.__dict__["do"] = do
        if given is not None:
            self.__dict__["given"] = given
        if asks is not None:
            self.__dict__["asks"] = asks

    @classmethod
    def of(cls, work: Workspace, members: Sequence[Resolved], states: Sequence[BeliefState], draws: bool = False) -> Batch:
        """The batch of these resolved queries (one belief state each), of one structure or several."""
        first = members[0].structure[1:]
        one = all(r.structure[1:] == first for r in members)
        targets = members[0].outcomes if one else dict.fromkeys(t for r in members for t in r.outcomes)
        return cls(work, states, len(members), targets, draws=draws, members=members, one_structure=one)

    # -- what engines read ----------------------------------------------------------------

    @_once
    def do(self) -> dict[str, Setting]:
        """Discrete variables set by intervention."""
        return self._settings("do")

    @_once
    def given(self) -> dict[str, Setting]:
        """Discrete variables seen."""
        return self._settings("given")

    @_once
    def set_values(self) -> dict[str, torch.Tensor]:
        """Continuous variables set, the value ``(B,)`` per query (one structure)."""
        return self._continuous("do")

    @_once
    def seen_values(self) -> dict[str, torch.Tensor]:
        """Continuous variables seen, the value ``(B,)`` per query (one structure)."""
        return self._continuous("given")

    @_once
    def asks(self) -> dict[str, torch.Tensor]:
        """Per target, the rows of the queries that ask about it."""
        device = self.work.device
        if self.one_structure:
            every = torch.arange(self.size, device=device)
            return {t: every for t in self.targets}
        asking: dict[str, list[int]] = {}
        for b, r in enumerate(self.members):  # type: ignore[arg-type]
            for t in r.outcomes:
                asking.setdefault(t, []).append(b)
        return {t: torch.tensor(bs, dtype=torch.long, device=device) for t, bs in asking.items()}

    @_once
    def shared(self) -> bool:
        """Every query answered from the same belief state."""
        return len({id(s) for s in self.states}) == 1

    @_once
    def certain(self) -> bool:
        """No belief state has parameter uncertainty: a draw would be the mean."""
        return all(s.certain for s in self.beliefs())

    @property
    def per_query(self) -> int:
        """Posteriors per query: the mean, and the draws where they are wanted and differ."""
        return self.work.samples + 1 if self.draws and not self.certain else 1

    @_once
    def likelihood(self) -> dict[str, torch.Tensor]:
        """Soft evidence on the device: ``(card,)`` shared by the batch, or ``(B, card)``."""
        net, device, dtype = self.work.network, self.work.device, self.work.dtype
        if self.shared:
            return {v: t.to(device, dtype) for v, t in self.states[0].likelihood.items()}
        observed = dict.fromkeys(v for s in self.states for v in s.likelihood)
        found = stack_or_share(
            {v: [s.likelihood.get(v) for s in self.states] for v in observed},
            lambda v: torch.ones(net.card(v), dtype=torch.float64),
        )
        return {v: t.to(device, dtype) for v, t in found.items()}

    def columns(self) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
        """One structure's settings as index columns: set names, ``(B, len)`` long states, seen
        names, ``(B, len)`` long states."""
        (do, do_states), (given, given_states) = self._columns("do"), self._columns("given")
        return do, do_states, given, given_states

    def settings(self) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """Settings with every mask made: ``(mask, index)`` per variable set and seen."""
        every = torch.ones(self.size, dtype=torch.bool, device=self.work.device)
        return (
            {v: (every if m is None else m, i) for v, (m, i) in self.do.items()},
            {v: (every if m is None else m, i) for v, (m, i) in self.given.items()},
        )

    @_once
    def needed(self) -> frozenset[str]:
        """The variables one structure's answers can depend on: only their tables are prepared."""
        soft = sorted({v for s in self.beliefs() for v in s.likelihood})
        return self.work.needed(self.targets, self.names("do"), [*self.names("given"), *soft])

    def tables(self, needed: set[str] | frozenset[str] | None = None, draws: bool | None = None) -> dict[str, torch.Tensor]:
        """The tables of ``needed`` (default: :attr:`needed`) on the device: ``(S, ...)`` when the
        queries share beliefs, else ``(S, B, ...)``; with draws, S = 1 + samples."""
        return self.work.tables(self.states, self.draws if draws is None else draws, self.needed if needed is None else needed)

    def kind(self, target: str) -> Kind:
        """How ``target`` can be answered in one structure: ``discrete``, ``normal`` (everything
        it touches is continuous, closed form) or ``mixed`` (sampled)."""
        net = self.work.network
        if not net.continuous:
            return "discrete"
        do, given = self.names("do"), self.names("given")
        if any(v in net.continuous for v in given):  # evidence that cannot inform the target is no reason to sample
            cut = net.graph.copy()
            cut.remove_edges_from([(p, v) for v in do for p in net.parents[v]])
            given = [
                g for g in given
                if g == target or not nx.is_d_separator(cut, {target}, {g}, set(given) - {g, target})
            ]
        needed = self.work.needed([target], do, given)
        touched = needed & net.continuous
        if not touched:
            return "discrete"
        constants = {v for v in do if v not in net.continuous}  # a set discrete variable only shifts means
        return "normal" if touched == needed - constants else "mixed"

    # -- parts of a batch -------------------------------------------------------------------

    def with_targets(self, targets: Sequence[str]) -> Batch:
        """The same queries asking about these of their targets only (what was made is kept)."""
        if tuple(targets) == self.targets:
            return self
        members = self.members
        if members is not None and self.one_structure:
            members = [replace(r, outcomes=tuple(t for t in r.outcomes if t in targets)) for r in members]
        part = Batch(self.work, self.states, self.size, targets, draws=self.draws, members=members,
                     one_structure=self.one_structure)
        for kept in ("do", "given", "_columns_do", "_columns_given", "set_values", "seen_values", "shared", "certain", "likelihood"):
            if kept in self.__dict__:
                part.__dict__[kept] = self.__dict__[kept]
        return part

    def rows(self, start: int, stop: int) -> Batch:
        """The queries ``start..stop``."""
        if (start, stop) == (0, self.size):
            return self
        part = slice(start, stop)
        states = self.states if len(self.states) == 1 else self.states[part]
        members = None if self.members is None else self.members[part]
        if not self.one_structure and members is not None:
            return Batch.of(self.work, members, states, self.draws)
        if not self.one_structure:  # made from settings: each sliced, and the rows asking renumbered
            asks = {t: rows[(rows >= start) & (rows < stop)] - start for t, rows in self.asks.items()}
            asks = {t: rows for t, rows in asks.items() if len(rows)}
            return Batch(
                self.work, states, stop - start, list(asks), draws=self.draws, one_structure=False,
                do={v: (m[part], i[part]) for v, (m, i) in self.do.items()},  # type: ignore[index]
                given={v: (m[part], i[part]) for v, (m, i) in self.given.items()},  # type: ignore[index]
                asks=asks,
            )
        out = Batch(self.work, states, stop - start, self.targets, draws=self.draws, members=members)
        for name in ("do", "given", "set_values", "seen_values"):
            if name in self.__dict__ or self.members is None:
                found = getattr(self, name)
                out.__dict__[name] = {
                    v: (x[part] if isinstance(x, torch.Tensor) else (None if x[0] is None else x[0][part], x[1][part]))
                    for v, x in found.items()
                }
        return out

    # -- made from the members ----------------------------------------------------------------

    def beliefs(self) -> list[BeliefState]:
        """The distinct belief states answering."""
        return list({id(s): s for s in self.states}.values())

    def names(self, pairs_of: str) -> list[str]:
        """Every variable the batch sets (``do``) or sees (``given``), discrete or continuous."""
        if self.members is None:
            return list(self.__dict__[pairs_of])
        return [v for v, _ in getattr(self.members[0], pairs_of)]

    def _settings(self, pairs_of: str) -> dict[str, Setting]:
        if not self.one_structure:
            return _settings(self.members, pairs_of, self.work.device)  # type: ignore[arg-type]
        names, at = self._columns(pairs_of)
        return {v: (None, at[:, k]) for k, v in enumerate(names)}

    def _columns(self, pairs_of: str) -> tuple[list[str], torch.Tensor]:
        """One structure's discrete variables set (seen), and their states ``(B, len)``: made
        once, from the members (or stacked from the settings a batch of columns was made with)."""
        key = "_columns_" + pairs_of
        found = self.__dict__.get(key)
        if found is not None:
            return found
        net, device, members = self.work.network, self.work.device, self.members
        if members is None:
            settings: dict[str, Setting] = self.__dict__[pairs_of]
            if settings:
                at = torch.stack([index for _, index in settings.values()], dim=1)
            else:
                at = torch.zeros(self.size, 0, dtype=torch.long, device=device)
            found = list(settings), at
        else:
            rows = [getattr(r, pairs_of) for r in members]
            names = [v for v, _ in rows[0]]
            if net.continuous:
                discrete = [j for j, v in enumerate(names) if v not in net.continuous]
                index = [[int(row[j][1]) for j in discrete] for row in rows]
                names = [names[j] for j in discrete]
            else:  # every value is a state index
                index = [[i for _, i in row] for row in rows]
            found = names, torch.tensor(index, dtype=torch.long, device=device).reshape(len(rows), -1)
        self.__dict__[key] = found
        return found

    def _continuous(self, pairs_of: str) -> dict[str, torch.Tensor]:
        net = self.work.network
        if self.members is None or not net.continuous:
            return {}
        names = self.names(pairs_of)
        rows = [getattr(r, pairs_of) for r in self.members]
        return {
            v: torch.tensor([row[j][1] for row in rows], dtype=self.work.dtype, device=self.work.device)
            for j, v in enumerate(names) if v in net.continuous
        }


def _settings(members: Sequence[Resolved], pairs_of: str, device: torch.device) -> dict[str, Setting]:
    """Per variable, ``(mask, index)`` over the batch: which queries set it (do) or see it
    (given), and the state; for queries of any structure."""
    found: dict[str, tuple[list[int], list[int]]] = {}
    for b, r in enumerate(members):
        for v, i in getattr(r, pairs_of):
            rows, index = found.setdefault(v, ([], []))
            rows.append(b)
            index.append(int(i))
    return masked(found, len(members), device)


def masked(found: dict[str, tuple[list[int], list[int]]], size: int, device: torch.device) -> dict[str, Setting]:
    """Settings of a batch of several structures from ``{variable: (rows, states)}``: the rows
    that set (see) each variable, and the state each of them sets (sees)."""
    out: dict[str, Setting] = {}
    for v, (rows, index) in found.items():
        mask = torch.zeros(size, dtype=torch.bool, device=device)
        at = torch.zeros(size, dtype=torch.long, device=device)
        where = torch.tensor(rows, dtype=torch.long, device=device)
        mask[where] = True
        at[where] = torch.tensor(index, dtype=torch.long, device=device)
        out[v] = (mask, at)
    return out


@dataclass
class Posterior:
    """What an engine answers for a batch."""

    size: int
    """The batch's queries."""
    p: dict[str, torch.Tensor]
    """``{target: (S, B, card)}`` normalised over the last axis (S = 1, or 1 + draws with the
    posterior mean first); a continuous target ``(S, B, 4)``: mean, sd, 5% and 95% quantiles.
    In a batch of several structures, a target's rows are those of the queries asking about it."""
    impossible: torch.Tensor | None
    """``(B,)`` bool: the queries whose evidence has probability 0 under the posterior mean
    (their rows are NaN); None where there are none."""
    method: Literal["exact", "sampled"] = "exact"
    stderr: dict[str, torch.Tensor] | None = None
    """Sampled answers: the standard errors ``{target: (B, card)}`` of the posterior means."""

    def first_impossible(self) -> int | None:
        if self.impossible is None:
            return None
        found = self.impossible.nonzero()
        return int(found[0]) if len(found) else None

    @staticmethod
    def merged(parts: Sequence[Posterior]) -> Posterior:
        """Answers of the same queries about different targets, as one."""
        if len(parts) == 1:
            return parts[0]
        p: dict[str, torch.Tensor] = {}
        stderr: dict[str, torch.Tensor] = {}
        for part in parts:
            p.update(part.p)
            stderr.update(part.stderr or {})
        found = [part.impossible for part in parts if part.impossible is not None]
        impossible = torch.stack(found).any(0) if found else None
        method = "sampled" if any(part.method == "sampled" for part in parts) else "exact"
        return Posterior(parts[0].size, p, impossible, method, stderr or None)  # type: ignore[arg-type]

    @staticmethod
    def joined(parts: Sequence[Posterior]) -> Posterior:
        """Answers of consecutive runs of a batch's queries, as one (a target's rows are those of
        the queries asking about it, run after run)."""
        if len(parts) == 1:
            return parts[0]
        targets = dict.fromkeys(t for part in parts for t in part.p)
        p = {t: torch.cat([part.p[t] for part in parts if t in part.p], dim=1) for t in targets}
        stderr = None
        if any(part.stderr for part in parts):
            names = dict.fromkeys(t for part in parts for t in part.stderr or {})
            stderr = {t: torch.cat([part.stderr[t] for part in parts if part.stderr and t in part.stderr]) for t in names}
        method = "sampled" if any(part.method == "sampled" for part in parts) else "exact"
        impossible = None
        if any(part.impossible is not None for part in parts):
            impossible = torch.cat([
                torch.zeros(part.size, dtype=torch.bool) if part.impossible is None
                else part.impossible.cpu() for part in parts
            ])
        return Posterior(sum(part.size for part in parts), p, impossible, method, stderr)  # type: ignore[arg-type]


CELLS_PER_CALL = 1 << 22
"""Bound on (draws x queries) answered in one call, to keep memory flat on big batches."""


def per_call(batch: Batch) -> int:
    """Queries of a batch answered in one call of the einsum, sampling or Gaussian engine."""
    return max(1, CELLS_PER_CALL // batch.per_query)


class Engine(Protocol):
    """An inference engine: what it can hold, and its answers."""

    name: str
    exact: bool
    """Answers exactly (else sampled: within standard errors)."""

    def holds(self, batch: Batch) -> bool:
        """Whether this engine can answer every target of ``batch`` (as it is routed: one
        structure, or several)."""
        ...

    def most(self, batch: Batch) -> int:
        """How many of the batch's queries to answer in one call (memory stays flat)."""
        ...

    def answer(self, batch: Batch) -> Posterior: ...

    def clear(self) -> None:
        """Forget whatever is kept between calls."""
        ...


# -- the workspace: one place for the caches every engine shares -----------------------------


class Workspace:
    """A model's network on a device, the tables of belief states prepared for it (kept per
    table), and the variables each structure's answers depend on (kept per structure)."""

    def __init__(
        self, network: Network, device: torch.device, dtype: torch.dtype, samples: int, seed: int, max_bytes: int,
        relevant: Callable[[Sequence[str], Sequence[str], Sequence[str]], frozenset[str]],
    ):
        self.network, self.device, self.dtype = network, device, dtype
        self.samples, self.seed, self.max_bytes = samples, seed, max_bytes
        self.needed = relevant
        """``needed(targets, do, evidence)``: the variables the answers can depend on."""
        self._tables: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._bytes = 0

    def clear(self) -> None:
        self._tables.clear()
        self._bytes = 0

    def __len__(self) -> int:
        """Prepared tables kept."""
        return len(self._tables)

    def tables(self, states: Sequence[BeliefState], draws: bool, needed: set[str] | frozenset[str]) -> dict[str, torch.Tensor]:
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
                    f"{self.samples:,} draws of the tables behind the intervals need {size_in_words(size)}, over the "
                    f"{size_in_words(self.max_bytes)} allowed: ask for fewer --samples, or allow more --max-memory"
                )
        if len(unique) == 1:
            return self.prepared(next(iter(unique.values())), names, draws)
        out = {}
        for v in names:  # table by table: most are one tensor shared by every state
            column = [s.concentration[v] for s in states]
            holders = {id(t): s for t, s in zip(column, states)}
            made = {key: self.prepared(s, [v], draws)[v] for key, s in holders.items()}
            out[v] = stack_or_share({v: [made[id(t)] for t in column]}, None, dim=1)[v]
        return out

    def prepared(self, state: BeliefState, names: list[str], draws: bool) -> dict[str, torch.Tensor]:
        """The mean (and with ``draws`` the draws) of these tables of a belief state, on the device.

        Kept per table, not per belief state: the hypothetical beliefs of a dialogue (a party's
        beliefs plus one fact) share every table but the one a fact touches, so each table is
        prepared once however many states hold it (and a batch of them shares it, unstacked).
        Draws are seeded per variable, so a table's draws are the same in any state."""
        out: dict[str, torch.Tensor | None] = {}
        cache = self._tables
        for v in names:
            table = state.concentration[v]
            key = (v, id(table), draws, state.certain)
            found = cache.get(key)
            if found is not None and found[0] is table:
                cache.move_to_end(key)
                out[v] = found[1]
                continue
            out[v] = None
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
                self._bytes += prepared.numel() * prepared.element_size()
            while len(cache) > _CACHE_TABLES or self._bytes > _CACHE_BYTES:
                if len(cache) <= len(names):  # what this batch needs stays, however big
                    break
                _, (_, dropped) = cache.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()
        return out  # type: ignore[return-value]


_CACHE_TABLES = 16384
"""Prepared tables kept (each with the concentration it was made from)."""
_CACHE_BYTES = 1 << 30
"""At most this much memory of prepared tables kept (draws of a big table take megabytes)."""


def size_in_words(count: int) -> str:
    """Bytes in words: GiB, MiB or KiB, whichever reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale / 10:
            return f"{count / scale:.2f} {unit}"
    return f"{count / 2**10:.2f} KiB"


def stack_or_share(per_query: dict[str, list], fill, dim: int = 0) -> dict[str, torch.Tensor]:
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
