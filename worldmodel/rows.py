"""Table row keys: ``"wet, swerve, car"`` <-> parent states, and probability rows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence

from crux.worldmodel.errors import shown

SUM_TOLERANCE = 1e-6


def split_key(key: str) -> tuple[str, ...]:
    """Parent states of a row key, trimmed of white space around each name."""
    return tuple(part.strip() for part in key.split(","))


def join_key(states: Sequence[str]) -> str:
    return ", ".join(states)


def all_keys(parent_states: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """Every parent combination, first parent slowest (the order of a table).  Lists them all:
    check :func:`table_size` against the limits first."""
    return list(itertools.product(*parent_states))


def table_size(parent_cards: Sequence[int], card: int) -> tuple[int, int]:
    """(rows, numbers) of a table from the cardinalities alone: nothing is listed."""
    rows = math.prod(parent_cards)
    return rows, rows * card


def missing_keys(
    parent_states: Sequence[Sequence[str]], present: Collection[tuple[str, ...]], first: int
) -> tuple[int, list[tuple[str, ...]]]:
    """How many parent combinations are not in ``present`` (combinations of these states, each
    once), and the first ``first`` of them in table order; without listing the others."""
    unique = [list(dict.fromkeys(states)) for states in parent_states]
    count = math.prod(len(states) for states in unique) - len(present)
    if count <= 0:
        return 0, []
    gaps = (key for key in itertools.product(*unique) if key not in present)
    return count, list(itertools.islice(gaps, first))


def row_problems(row: Sequence[float], states: Sequence[str]) -> list[str]:
    """What is wrong with a probability row for a variable with these states."""
    if len(row) != len(states):
        return [
            f"has {len(row)} probabilit{'y' if len(row) == 1 else 'ies'} for {len(states)} states "
            f"({shown(states)}): give one per state, in that order"
        ]
    problems = []
    for i, p in enumerate(row):
        if not math.isfinite(p):
            problems.append(f"probability {p} for state {states[i]!r} is not a finite number")
        elif p < 0:
            problems.append(f"probability {p} for state {states[i]!r} is negative")
    if not problems and abs(sum(row) - 1.0) > SUM_TOLERANCE:
        problems.append(f"sums to {sum(row):.10g}, not 1 (tolerance {SUM_TOLERANCE:g})")
    return problems
