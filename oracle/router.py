"""Which engine answers a batch: the first, in order of preference, that holds it.

The preference: the junction tree (several structures, or many targets, in one pass), the
einsum engine (discrete targets), closed-form Gaussian answers (normal targets), sampling
(anything).  ``method="exact"`` leaves sampling out, so what no exact engine holds is refused;
``"sampled"`` keeps sampling alone.  ``auto`` samples what an exact engine finds too large for
the memory allowed, and says so.  A new engine is a class implementing
:class:`oracle.engine.Engine`, placed in this list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crux.oracle.engine import Batch, Engine, Posterior
from crux.oracle.exact import TooLarge, undecided
from crux.oracle.query import QueryError


class Router:
    def __init__(self, engines: Sequence[Engine], method: str, on_too_large: Callable[[TooLarge], None] | None = None):
        """``engines`` in order of preference (the inexact last); ``on_too_large`` hears of each
        answer sampled because exact inference did not fit."""
        self.engines = list(engines)
        self.method = method
        self.on_too_large = on_too_large
        if method == "sampled":
            self.allowed = [e for e in self.engines if not e.exact]
        elif method == "exact":
            self.allowed = [e for e in self.engines if e.exact]
        else:
            self.allowed = self.engines
        """The engines this method may use, in order of preference."""

    def engine(self, name: str) -> Engine | None:
        return next((e for e in self.engines if e.name == name), None)

    def route(self, batch: Batch) -> Engine | None:
        """The engine that answers the whole batch; None where none holds it."""
        return next((e for e in self.allowed if e.holds(batch)), None)

    def answer(self, batch: Batch, engine: Engine | None = None) -> Posterior:
        """The batch's answers, in calls of at most :meth:`Engine.most` queries, by ``engine``
        or else the engines that hold it: a batch of one structure asking about targets of
        different kinds (discrete, normal, mixed) sends each kind to its own engine."""
        if engine is not None:
            return self._answer(engine, batch)
        _decided(batch)
        kinds: dict[str, list[str]] = {}
        if batch.one_structure and batch.work.network.continuous:
            for t in batch.targets:
                kinds.setdefault(batch.kind(t), []).append(t)
        else:  # a discrete network, or a tree pass: one kind of target
            kinds[""] = list(batch.targets)
        parts = []
        for targets in kinds.values():
            part = batch.with_targets(targets)
            found = self.route(part)
            if found is None:
                raise QueryError(
                    "exact inference covers discrete networks and purely normal ones; this query mixes discrete and "
                    "continuous variables: use --method sampled (or auto)"
                )
            parts.append((found, part))
        return Posterior.merged([self._answer(found, part) for found, part in parts])

    def _answer(self, engine: Engine, batch: Batch) -> Posterior:
        step = engine.most(batch)
        try:
            if batch.size <= step:
                return engine.answer(batch)
            return Posterior.joined(
                [engine.answer(batch.rows(start, min(batch.size, start + step))) for start in range(0, batch.size, step)]
            )
        except TooLarge as err:
            fallback = next((e for e in self.allowed if not e.exact), None)
            if fallback is None or not fallback.holds(batch):
                raise
            if self.on_too_large is not None:
                self.on_too_large(err)
            return fallback.answer(batch)

    def clear(self) -> None:
        for engine in self.engines:
            engine.clear()


def _decided(batch: Batch) -> None:
    """Refuse, for every engine alike, an answer that depends on the decision when the batch
    leaves it unset (a decision has no table: nothing could say which action was taken)."""
    net = batch.work.network
    if net.decision is None or not batch.one_structure or net.decision in batch.names("do"):
        return
    do, given = batch.names("do"), [*batch.names("given"), *(v for s in batch.beliefs() for v in s.likelihood)]
    for target in batch.targets:
        if net.decision in batch.work.needed([target], do, given):
            raise undecided(net, target)
