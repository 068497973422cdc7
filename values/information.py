"""Expected value of information: how much observing a variable, or learning a table row,
is worth to a decision maker with given beliefs and values.

Both are in units of normalised utility and never negative; zero means no
answer could change the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crux.oracle.oracle import Oracle
from crux.oracle.params import dirichlet_draws
from crux.oracle.predict import action_marginals
from crux.oracle.query import Query
from crux.values.utility import Utility
from crux.worldmodel.compile import BeliefState

Cell = tuple[BeliefState, Utility]
_ZERO = 1e-12


def observation_value(oracle: Oracle, cells: Sequence[Cell], variables: Sequence[str]) -> dict[str, float]:
    """For each variable (not downstream of the decision), the largest over ``cells`` of
    E_v[max_a EU(a | V=v)] - max_a EU(a): the value of seeing it before deciding."""
    net = oracle.model.network
    dec = net.decision
    actions = net.states[dec]
    if not variables or not cells:
        return {}
    priors = oracle.posterior_means([Query(do={dec: actions[0]}, outcomes=list(variables))] * len(cells), [s for s, _ in cells])
    states, situations, index = [], [], []
    for k, (state, _) in enumerate(cells):
        states.append(state)
        situations.append({})
        index.append((k, None, None))
        for var in variables:
            for v, p in enumerate(priors[k][var].tolist()):
                if p > _ZERO:
                    states.append(state)
                    situations.append({var: net.states[var][v]})
                    index.append((k, var, p))
    predicted = action_marginals(oracle, states, situations)
    best_now: dict[int, float] = {}
    informed: dict[tuple[int, str], float] = {}
    for marginals, (k, var, p) in zip(predicted, index):
        best = float(cells[k][1].expected(marginals).max())
        if var is None:
            best_now[k] = best
        else:
            informed[(k, var)] = informed.get((k, var), 0.0) + p * best
    return {
        var: max(max(0.0, informed[(k, var)] - best_now[k]) for k in range(len(cells)))
        for var in variables
    }


def row_value(
    oracle: Oracle, cells: Sequence[Cell], var: str, row: tuple[int, ...], samples: int = 64, seed: int = 0
) -> float:
    """Value of learning one row of ``var``'s table exactly: over ``cells``, the largest
    E_theta[max_a EU(a; theta)] - max_a E_theta[EU(a; theta)], theta drawn from that
    party's Dirichlet for the row."""
    return row_values(oracle, cells, [(var, row)], samples, seed)[0]


def row_values(
    oracle: Oracle, cells: Sequence[Cell], rows: Sequence[tuple[str, tuple[int, ...]]], samples: int = 64, seed: int = 0
) -> list[float]:
    """:func:`row_value` of each ``(var, row)``, in one oracle call per cell and variable: the
    hypothetical beliefs of a cell differ from it only in that variable's table (one per row and
    draw), so each call stacks that one table and shares every other."""
    out = [0.0] * len(rows)
    by_var: dict[str, list[int]] = {}
    for j, (var, _) in enumerate(rows):
        by_var.setdefault(var, []).append(j)
    for k, (state, utility) in enumerate(cells):
        for var, members in by_var.items():
            hypothetical = []
            for j in members:
                row = rows[j][1]
                for draw in dirichlet_draws(state.concentration[var][row], samples, seed + k):
                    table = state.concentration[var].clone()
                    table[row] = draw  # the mean of a row is its normalised concentration: this row is now ``draw``
                    hypothetical.append(BeliefState({**state.concentration, var: table}, state.likelihood, state.normal))
            marginals = action_marginals(oracle, hypothetical)
            for n, j in enumerate(members):
                eu = torch.stack([utility.expected(m) for m in marginals[n * samples : (n + 1) * samples]])
                out[j] = max(out[j], float(eu.max(dim=1).values.mean() - eu.mean(dim=0).max()))
    return out
