"""Exact posterior marginals by batched tensor contraction (variable elimination as einsum).

One call answers a batch of queries that share a *structure* (which variables
are intervened on, which are observed, which are reported): the intervened and
observed states travel as batch-indexed one-hot vectors, so the whole batch is
one contraction per reported variable.  Tables may carry a leading *sample*
axis (draws of the Dirichlet rows): the posterior mean and every draw are then
contracted at once.  Contraction paths come from greedy variable elimination
(:mod:`oracle.paths`) and are cached per equation and shapes.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache

import opt_einsum
import torch

from crux.oracle.engine import Batch, Posterior, per_call
from crux.oracle.paths import elimination_path
from crux.oracle.query import QueryError
from crux.worldmodel.compile import Network

_SAMPLE, _BATCH = opt_einsum.get_symbol(0), opt_einsum.get_symbol(1)
_COMPILED_CELLS = 1 << 20
"""Largest compiled structure (draws x states of everything set, seen and asked) kept for indexing."""


class TooLarge(QueryError):
    """An exact contraction whose largest intermediate would not fit the memory allowed."""

    def __init__(self, target: str, elements: int, itemsize: int, limit: int):
        self.target, self.elements, self.itemsize = target, elements, itemsize
        super().__init__(
            f"exact inference for {target} needs an intermediate of {elements:,} numbers "
            f"({elements * itemsize / 2**30:.2f} GiB), over the {limit / 2**30:.2f} GiB allowed: "
            "use --method sampled (or auto), or allow more memory"
        )


class ImpossibleEvidence(QueryError):
    """The evidence of the query at ``index`` of a batch has probability zero."""

    def __init__(self, index: int):
        self.index = index
        super().__init__(
            "the evidence has probability 0 under these beliefs, so nothing can be concluded from it; "
            "check the `given` states"
        )


def undecided(network: Network, target: str) -> QueryError:
    """The error for an answer that depends on the decision, left unset."""
    states = ", ".join(network.states[network.decision])
    return QueryError(
        f"the answer about {target} depends on the decision {network.decision}: "
        f"set it with do {network.decision}=<one of {states}>"
    )


def relevant(network: Network, targets: Sequence[str], do: Sequence[str], evidence: Sequence[str]) -> set[str]:
    """Variables a target's posterior can depend on: ancestors of the targets and the
    evidence in the graph cut at the interventions (everything else is barren)."""
    cut = set(do)
    seen: set[str] = set()
    stack = [*targets, *evidence]
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        if var not in cut:
            stack.extend(network.parents[var])
    return seen


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _letters(equation: str) -> str:
    """The equation with its symbols renamed to plain letters when it has at most 52: the
    backend's einsum then takes each pairwise step as it is, without renaming it again."""
    used = dict.fromkeys(c for c in equation if c not in ",->")
    if len(used) > len(_LETTERS):
        return equation
    table = str.maketrans(dict(zip(used, _LETTERS)))
    return equation.translate(table)


_SEARCH_CELLS = 1 << 16
"""An elimination path whose largest intermediate holds more numbers than this is compared with
opt_einsum's greedy search (0.5-3 ms more, once per structure), and the smaller one kept."""


@lru_cache(maxsize=4096)
def _plan(equation: str, shapes: tuple[tuple[int, ...], ...]):
    """A contraction path for the equation and shapes (cached per structure), as a function of
    the operands, and the size of its largest intermediate.

    The path is greedy variable elimination (:mod:`oracle.paths`: 0.15-1.3 ms, where
    opt_einsum's search takes 0.5-3.3 ms); where its largest intermediate is big,
    opt_einsum's greedy path is found too and the one with the smaller largest intermediate
    kept.  The pairwise steps run as plain ``torch.einsum`` calls, each step's indices renamed
    to letters once here.  A step of more than 52 indices (which ``torch.einsum`` cannot
    name) runs through opt_einsum instead."""
    inputs, output = equation.split("->")
    steps, largest = elimination_path(inputs.split(","), shapes, output)
    if largest > _SEARCH_CELLS:
        _, info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="greedy")
        if info.largest_intermediate < largest:
            steps, largest = _as_steps(info.contraction_list, len(shapes)), int(info.largest_intermediate)
    renamed = [(ids, _letters(step)) for ids, step in steps]
    if any(not step.replace(",", "").replace("->", "").isascii() for _, step in renamed):
        expression = opt_einsum.contract_expression(equation, *shapes, optimize="greedy")
        return (lambda *operands: expression(*operands, backend="torch")), largest
    count = len(shapes)

    def contract(*operands: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor | None] = [*operands, *[None] * len(renamed)]
        for at, (ids, step) in enumerate(renamed, start=count):
            values[at] = torch.einsum(step, *[values[i] for i in ids])
            for i in ids:
                values[i] = None  # each intermediate is used once: free it
        return values[-1]

    return contract, largest


def _as_steps(contraction_list, count: int) -> list[tuple[tuple[int, ...], str]]:
    """opt_einsum's steps (positions popped from a stack of operands, the result pushed) as
    steps over operand ids, like :func:`oracle.paths.elimination_path`'s."""
    stack = list(range(count))
    steps = []
    for at, (inds, _, step, _, _) in enumerate(contraction_list, start=count):
        steps.append((tuple(stack.pop(i) for i in inds), step))
        stack.append(at)
    return steps


class ExactEngine:
    """Batched exact inference over one network."""

    def __init__(self, network: Network, prune: bool = True, max_bytes: int | None = None):
        """``prune=False`` contracts every variable for every target (slow; the reference for
        the pruning of barren variables)."""
        self.network = network
        self.prune = prune
        self.max_bytes = max_bytes
        self._symbol = {var: opt_einsum.get_symbol(i + 2) for i, var in enumerate(network.order)}
        self._compiled: OrderedDict[tuple, tuple[tuple, dict, dict, torch.Tensor]] = OrderedDict()
        self._met: dict[tuple, None] = {}  # structures asked one query at a time before
        self._relevant: dict[tuple, frozenset[str]] = {}

    def marginals(
        self,
        tables: Mapping[str, torch.Tensor],
        likelihood: Mapping[str, torch.Tensor],
        do: Sequence[str],
        do_states: torch.Tensor,
        given: Sequence[str],
        given_states: torch.Tensor,
        targets: Sequence[str],
        mask: bool = False,
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``P(target | do, given, soft evidence)`` for every sample and query.

        ``tables[v]``: shape ``(S, *parents, v)`` (S draws of the parameters,
        shared by the batch) or ``(S, B, *parents, v)`` (one table per query,
        e.g. the beliefs of different parties); ``likelihood[v]``: shape ``(v,)``
        or ``(B, v)``; ``do_states``/``given_states``: long tensors
        ``(B, len(do))``/``(B, len(given))`` of state indices.  Returns
        ``{target: (S, B, card)}`` normalised over the last axis.  Sample 0 is
        taken to be the posterior mean.  Raises :class:`QueryError` if some
        query's evidence has probability zero under it (:class:`ImpossibleEvidence`),
        or if an answer depends on an unset decision.  With ``mask``, impossible evidence
        raises nothing: their rows are NaN, and the ``(B,)`` mask of them is returned too.
        """
        net = self.network
        soft = [v for v in likelihood if v not in do]
        any_table = next(iter(tables.values()), None)  # none when only intervened variables are asked about
        like = {"dtype": torch.float64 if any_table is None else any_table.dtype, "device": do_states.device}
        samples, batch = (1 if any_table is None else any_table.shape[0]), do_states.shape[0]
        hot: dict[str, torch.Tensor] = {}
        impossible: torch.Tensor | None = None  # the queries whose evidence is impossible, where there are any

        def one_hot() -> dict[str, torch.Tensor]:
            if not hot:
                for columns, names in ((do_states, do), (given_states, given)):
                    for j, var in enumerate(names):
                        hot[var] = torch.nn.functional.one_hot(columns[:, j], net.card(var)).to(**like)
            return hot

        out: dict[str, torch.Tensor] = {}
        for target in targets:
            needed = self.needed([target], do, [*given, *soft]) if self.prune else set(net.order)
            if net.decision in needed and net.decision not in do:
                raise undecided(net, target)
            table = None
            key = (target, tuple(do), tuple(given))
            if batch > 1 or key in self._met:  # a structure met once is not worth compiling yet
                table = self._answers(key, tables, likelihood, needed, do_states.device)
            else:
                _remember(self._met, key, None)
            if table is not None:
                out[target], found = self._read(table, do_states, given_states, mask)
                impossible = _either(impossible, found)
                continue
            operands, subscripts = self._operands(needed, do, tables, likelihood, like, one_hot())
            operands.insert(0, torch.ones(samples, batch, **like))  # fixes the output's axes
            subscripts.insert(0, _SAMPLE + _BATCH)
            expr, largest = self._planned(operands, subscripts, _SAMPLE + _BATCH + self._symbol[target])
            if self.max_bytes is not None and largest > self.max_bytes:
                itemsize = operands[0].element_size()
                raise TooLarge(target, largest // itemsize, itemsize, self.max_bytes)
            out[target], found = _conditioned(expr(*operands), mask)
            impossible = _either(impossible, found)
        return (out, impossible) if mask else out

    def clear(self) -> None:
        """Forget the compiled structures, the structures met, the pruned variable sets and
        every contraction path planned."""
        for kept in (self._compiled, self._met, self._relevant):
            kept.clear()
        _plan.cache_clear()

    def _operands(
        self,
        needed: set[str],
        do: Sequence[str],
        tables: Mapping[str, torch.Tensor],
        likelihood: Mapping[str, torch.Tensor],
        like: dict,
        hot: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[str]]:
        """The needed variables' tables and soft evidence as einsum operands, in topological order.
        With ``hot`` (batch one-hot vectors of the set and seen variables) a set variable is its
        vector and a seen one is multiplied by it; without, a set variable adds nothing (its axis
        stays free) and seen ones stay free too."""
        net = self.network
        operands: list[torch.Tensor] = []
        subscripts: list[str] = []
        for var in sorted(needed, key=net.position.__getitem__):
            axes = self._symbol[var]
            if var in do:
                if hot is not None:
                    operands.append(hot[var])
                    subscripts.append(_BATCH + axes)
                continue
            table = tables[var]
            operands.append(table)
            lead = _SAMPLE + (_BATCH if table.dim() == len(net.parents[var]) + 3 else "")
            subscripts.append(lead + "".join(self._symbol[p] for p in net.parents[var]) + axes)
            if hot is not None and var in hot:
                operands.append(hot[var])
                subscripts.append(_BATCH + axes)
            if var in likelihood:
                vec = likelihood[var].to(**like)
                operands.append(vec)
                subscripts.append((_BATCH if vec.dim() == 2 else "") + axes)
        return operands, subscripts

    @staticmethod
    def _planned(operands: list[torch.Tensor], subscripts: list[str], output: str):
        """The contraction of these operands into ``output`` (cached per equation and shapes), and
        the bytes of its largest intermediate."""
        equation = _letters(",".join(subscripts) + "->" + output)
        expr, largest = _plan(equation, _bucketed(operands, subscripts))
        return expr, largest * operands[0].element_size()

    def needed(self, targets: Sequence[str], do: Sequence[str], evidence: Sequence[str]) -> set[str]:
        """:func:`relevant`, remembered per (targets, do, evidence): asked again for every query."""
        key = (tuple(targets), tuple(do), tuple(evidence))
        found = self._relevant.get(key)
        if found is None:
            found = _remember(self._relevant, key, frozenset(relevant(self.network, targets, do, evidence)))
        return found  # type: ignore[return-value]

    # -- a structure's answers for every state of what it sets and sees ------------------------

    def _answers(
        self,
        key: tuple[str, tuple[str, ...], tuple[str, ...]],
        tables: Mapping[str, torch.Tensor],
        likelihood: Mapping[str, torch.Tensor],
        needed: set[str],
        device: torch.device,
    ) -> torch.Tensor | None:
        """``(S, *do, *given, target)``: the joint of the target with the evidence, for every
        state of the intervened and observed variables — the structure compiled, so that any
        batch of it is read off by indexing.  Kept for the same tables (the same tensors); None
        where the tables or soft evidence differ per query, or the table would be too large."""
        net = self.network
        target, do, given = key  # the structure: (target, set variables, seen variables)
        used = {v: tables[v] for v in needed if v not in do}
        soft = {v: likelihood[v] for v in needed if v in likelihood and v not in do}
        # the very tensors it was made from (kept alive by the entry, so their ids are theirs)
        signature = (tuple(map(id, used.values())), tuple(map(id, soft.values())))
        kept = self._compiled.get(key)
        if kept is not None and kept[0] == signature:
            self._compiled.move_to_end(key)
            return kept[3]
        if any(t.dim() != len(net.parents[v]) + 2 for v, t in used.items()) or any(l.dim() != 1 for l in soft.values()):
            return None
        samples = next((t.shape[0] for t in used.values()), 1)
        cells = samples * math.prod(net.card(v) for v in (*do, *given, target))
        if cells > _COMPILED_CELLS:
            return None
        like = {"dtype": next(iter(used.values())).dtype if used else torch.float64, "device": device}
        operands, subscripts = self._operands(needed, do, tables, soft, like)
        # the sample axis, and each set variable's axis whether or not anything reads it
        operands[:0] = [torch.ones(samples, **like), *(torch.ones(net.card(v), **like) for v in do)]
        subscripts[:0] = [_SAMPLE, *(self._symbol[v] for v in do)]
        free = [*do, *given]
        if target not in free:
            free.append(target)
        expr, largest = self._planned(operands, subscripts, _SAMPLE + "".join(self._symbol[v] for v in free))
        if largest > 4 * _COMPILED_CELLS * operands[0].element_size() or (
            self.max_bytes is not None and largest > self.max_bytes
        ):
            return None  # every state at once is too much: query by query (one-hot vectors) instead
        joint = expr(*operands)
        if target in do or target in given:  # the target is set or seen: its axis is the answer's, one-hot
            hot = torch.eye(net.card(target), **like)
            position = 1 + [*do, *given].index(target)
            joint = joint.unsqueeze(-1) * hot.reshape(
                *[net.card(target) if j == position else 1 for j in range(joint.dim())], net.card(target)
            )
        self._compiled[key] = (signature, used, soft, joint)
        if len(self._compiled) > 256:
            self._compiled.popitem(last=False)
        return joint

    @staticmethod
    def _read(
        table: torch.Tensor, do_states: torch.Tensor, given_states: torch.Tensor, mask: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each query's row of a compiled structure, conditioned: ``(S, B, card)`` (rows picked
        by their flat index into the structure's states)."""
        samples, card = table.shape[0], table.shape[-1]
        states = torch.cat([do_states, given_states], dim=1) if given_states.shape[1] else do_states
        strides = _strides(tuple(table.shape[1:-1]), states.device)
        flat = states @ strides
        return _conditioned(table.reshape(samples, -1, card).index_select(1, flat), mask)


def _bucketed(operands: Sequence[torch.Tensor], subscripts: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """The operands' shapes with the batch axis rounded up to a power of two: a path is planned
    once for batches of about one size (a dialogue asks for a different number of hypothetical
    beliefs every turn), not again for every size.  Any path is right for any sizes; the
    largest intermediate it reports is that of the rounded batch, at most twice the true one."""
    shapes = []
    for op, term in zip(operands, subscripts):
        shape = tuple(op.shape)
        if _BATCH in term:
            at = term.index(_BATCH)
            if shape[at] > 1:
                shape = (*shape[:at], 1 << (shape[at] - 1).bit_length(), *shape[at + 1 :])
        shapes.append(shape)
    return tuple(shapes)


def _remember(memory: dict, key, value, limit: int = 4096):
    """Store ``value`` under ``key``, forgetting the oldest entry past ``limit``; returns ``value``."""
    memory[key] = value
    if len(memory) > limit:
        memory.pop(next(iter(memory)))
    return value


@lru_cache(maxsize=1024)
def _strides(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Row-major strides of a compiled structure's state axes, as a long tensor."""
    return torch.tensor([math.prod(sizes[j + 1 :]) for j in range(len(sizes))], dtype=torch.long, device=device)


def _either(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """Either mask (None: no query marked)."""
    return second if first is None else first if second is None else first | second


def _conditioned(joint: torch.Tensor, mask: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(S, B, card)`` joints of target and evidence, normalised over the target, and the
    ``(B,)`` mask of the queries whose evidence is impossible (None where there are none).

    Evidence whose probability underflows (to 0, or into the subnormal numbers where float
    precision is gone) cannot be conditioned on: an error for the posterior mean (NaN rows and
    the mask with ``mask``), NaN for a parameter draw (left out of the interval's quantiles)."""
    total = joint.sum(-1, keepdim=True)
    floor = _FLOOR[total.dtype]
    impossible = total[0, :, 0] <= floor
    if not bool(impossible.any()):
        if total.shape[0] == 1:  # the posterior mean alone: every row is possible
            return joint / total, None
        return torch.where(total > floor, joint / total.clamp_min(floor), torch.nan), None
    if not mask:
        raise ImpossibleEvidence(int(impossible.nonzero()[0]))
    return torch.where(total > floor, joint / total.clamp_min(floor), torch.nan), impossible


_FLOOR = {t: torch.finfo(t).tiny / torch.finfo(t).eps for t in (torch.float64, torch.float32, torch.float16, torch.bfloat16)}
"""Below this, a probability has lost its precision (subnormal): evidence that weighs less is impossible."""


class Einsum:
    """The einsum engine behind :class:`oracle.engine.Engine`: a batch of one structure whose
    targets are discrete, one contraction per target (:class:`ExactEngine`)."""

    name = "einsum"
    exact = True

    def __init__(self, network: Network, max_bytes: int | None = None):
        self.kernel = ExactEngine(network, max_bytes=max_bytes)

    def holds(self, batch: Batch) -> bool:
        return batch.one_structure and all(batch.kind(t) == "discrete" for t in batch.targets)

    def most(self, batch: Batch) -> int:
        return per_call(batch)

    def answer(self, batch: Batch) -> Posterior:
        """One contraction for the batch; where its intermediates would not fit the memory
        allowed, the batch is halved (an intermediate grows with the batch), down to one query:
        only a query too large alone raises :class:`TooLarge`."""
        try:
            p, impossible = self.kernel.marginals(batch.tables(), batch.likelihood, *batch.columns(), batch.targets, mask=True)
            return Posterior(batch.size, p, impossible)
        except TooLarge:
            if batch.size == 1:
                raise
        half = batch.size // 2
        return Posterior.joined([self.answer(batch.rows(0, half)), self.answer(batch.rows(half, batch.size))])

    def clear(self) -> None:
        self.kernel.clear()
