"""Contraction paths by greedy variable elimination, found in a fraction of a millisecond.

A query of a new structure needs a new contraction path.  opt_einsum's greedy search is
general (any einsum) and can cost more than the contraction itself (measured:
``bench/findings/tuning_notes.md``).  The operands here are a Bayesian network's tables,
so the classic elimination heuristic serves as well: repeatedly sum out the index whose
factors, multiplied together, make the smallest table (min-weight), multiplying those
factors pairwise, smallest first.  Every index not in the output is summed at the first
step after which no other factor holds it.

Tested against a direct ``torch.einsum`` of the whole equation (hypothesis) and, on the
benchmark networks' queries, against opt_einsum's paths for the size of the largest
intermediate: the median is the same; where a path is big (more than 65k numbers) the engine
also asks opt_einsum and keeps the smaller (:func:`oracle.exact._plan`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def elimination_path(
    terms: Sequence[str], shapes: Sequence[Sequence[int]], output: str
) -> tuple[list[tuple[tuple[int, ...], str]], int]:
    """Pairwise steps contracting operands ``terms`` (index strings, one per operand, no index
    repeated within one) of ``shapes`` into ``output``.

    Returns ``(steps, largest)``: each step is ``(ids, equation)``, the operands it takes
    (ids count the inputs 0..n-1, then each step's result n, n+1, ... in order) and a one- or
    two-operand einsum equation; the last step's result is the answer.  ``largest`` is the
    number of elements of the largest result.  An index of size 1 in one operand and larger
    in another broadcasts."""
    size: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape) or len(set(term)) != len(term):
            raise ValueError(f"operand {term!r} does not match its shape {tuple(shape)}, or repeats an index")
        for c, d in zip(term, shape):
            size[c] = max(size.get(c, 1), d)
    keep = set(output)
    if not keep <= set(size):
        raise ValueError(f"output {output!r} holds an index no operand has")
    live: dict[int, str] = dict(enumerate(terms))
    held: dict[int, int] = {i: _cells(size, term) for i, term in live.items()}  # numbers in each factor
    where: dict[str, set[int]] = {c: set() for c in size}
    for i, term in live.items():
        for c in term:
            where[c].add(i)
    steps: list[tuple[tuple[int, ...], str]] = []
    largest = 0

    def merge(a: int, b: int, out: str | None = None) -> int:
        """One pairwise product; indices no other factor holds (and not in the output) are summed."""
        nonlocal largest
        ta, tb = live.pop(a), live.pop(b)
        del held[a], held[b]
        for c in ta:
            where[c].discard(a)
        for c in tb:
            where[c].discard(b)
        if out is None:
            out = "".join(c for c in dict.fromkeys(ta + tb) if c in keep or where[c])
        new = len(terms) + len(steps)
        for c in out:
            where[c].add(new)
        live[new] = out
        held[new] = _cells(size, out)
        steps.append(((a, b), f"{ta},{tb}->{out}"))
        largest = max(largest, held[new])
        return new

    def weight(c: str) -> int:
        return _cells(size, set().union(*[live[f] for f in where[c]]))

    cost = {c: weight(c) for c in size if c not in keep and len(where[c]) > 1}
    while cost:
        c = min(cost, key=cost.__getitem__)
        group = sorted(where[c], key=held.__getitem__)
        touched = set().union(*[live[f] for f in group])
        while len(group) > 1:
            new = merge(group[0], group[1])
            group = sorted([new, *group[2:]], key=held.__getitem__)
        for j in touched:
            if j in keep or len(where[j]) <= 1:
                cost.pop(j, None)
            else:
                cost[j] = weight(j)
    # What is left holds output indices (and indices of one factor each): multiply, smallest first.
    rest = sorted(live, key=held.__getitem__)
    while len(rest) > 2:
        new = merge(rest[0], rest[1])
        rest = sorted([new, *rest[2:]], key=held.__getitem__)
    if len(rest) == 2:
        merge(rest[0], rest[1], output)
    elif live[rest[0]] != output or not steps:
        term = live.pop(rest[0])
        steps.append(((rest[0],), f"{term}->{output}"))
        largest = max(largest, _cells(size, output))
    return steps, largest


def _cells(size: dict[str, int], indices) -> int:
    return math.prod(map(size.__getitem__, indices))
