"""Elimination paths (oracle/paths.py) give the same numbers as one direct einsum."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crux.oracle import exact
from crux.oracle.paths import elimination_path

LETTERS = "abcdefgh"


def run(steps, operands):
    values = list(operands)
    for ids, step in steps:
        values.append(torch.einsum(step, *[values[i] for i in ids]))
    return values[-1]


@st.composite
def equations(draw):
    """Random operands over up to 8 indices (some of size 1 in one operand, broadcasting), and
    an output of some of them in any order."""
    sizes = {c: draw(st.integers(1, 3)) for c in LETTERS[: draw(st.integers(1, 8))]}
    names = list(sizes)
    terms = [
        "".join(draw(st.permutations(names))[: draw(st.integers(0, min(4, len(names))))])
        for _ in range(draw(st.integers(1, 6)))
    ]
    used = sorted(set("".join(terms)))
    output = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))])
    shapes = [tuple(1 if draw(st.integers(0, 5)) == 0 else sizes[c] for c in term) for term in terms]
    return terms, shapes, output


@settings(max_examples=300, deadline=None)
@given(equations(), st.integers(0, 2**31 - 1))
def test_elimination_path_equals_one_einsum(case, seed):
    terms, shapes, output = case
    generator = torch.Generator().manual_seed(seed)
    operands = [torch.rand(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    expected = torch.einsum(",".join(terms) + "->" + output, *operands)
    steps, largest = elimination_path(terms, shapes, output)
    assert all(len(ids) in (1, 2) for ids, _ in steps)
    got = run(steps, operands)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert largest >= math.prod(expected.shape)


def test_every_index_summed_once_no_other_factor_holds_it():
    """A chain a-b-c-d asked about d: each step keeps only what later steps or the output need."""
    steps, largest = elimination_path(["a", "ab", "bc", "cd"], [(2,), (2, 3), (3, 4), (4, 5)], "d")
    assert [step for _, step in steps] == ["a,ab->b", "b,bc->c", "c,cd->d"]
    assert largest == 5
    # the smallest table first: summing b (a-b-c: 200 numbers) before c (b-c-d: 5,000) never
    # makes the 2,500-number b-d table
    steps, largest = elimination_path(["ab", "bc", "cd"], [(2, 50), (50, 2), (2, 50)], "ad")
    assert [step for _, step in steps] == ["ab,bc->ac", "ac,cd->ad"] and largest == 100


def test_single_operand_and_bad_input():
    steps, _ = elimination_path(["ab"], [(2, 3)], "ba")
    assert steps == [((0,), "ab->ba")]
    with pytest.raises(ValueError, match="repeats an index"):
        elimination_path(["aa"], [(2, 2)], "a")
    with pytest.raises(ValueError, match="no operand has"):
        elimination_path(["ab"], [(2, 2)], "c")


@pytest.mark.parametrize("search", [False, True])
def test_plan_runs_either_path(monkeypatch, search):
    """The engine's plan gives the direct einsum's numbers whether it keeps the elimination path or
    opt_einsum's (forced by a search threshold of 0)."""
    exact._plan.cache_clear()
    monkeypatch.setattr(exact, "_SEARCH_CELLS", 0 if search else 1 << 40)
    generator = torch.Generator().manual_seed(1)
    terms = ["ab", "bcd", "de", "ea", "cf", "f"]
    shapes = [(2, 3), (3, 4, 2), (2, 3), (3, 2), (4, 5), (5,)]
    operands = [torch.rand(s, generator=generator, dtype=torch.float64) for s in shapes]
    equation = ",".join(terms) + "->ac"
    contract, largest = exact._plan(equation, tuple(shapes))
    torch.testing.assert_close(contract(*operands), torch.einsum(equation, *operands), rtol=1e-12, atol=1e-12)
    assert largest >= 8
    exact._plan.cache_clear()
