"""A slow, obviously correct oracle: enumerate every joint state in plain Python.

Every faster path (the batched einsum, parameter samples, later the sampler and
the GPU) is tested against this.  It reads the scenario itself and shares no
code with :mod:`worldmodel.compile` or :mod:`oracle`, so the two can only agree
by both being right.  Exponential in the number of variables: for tests only.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence

from crux.worldmodel.spec import Scenario

IMPOSSIBLE = sys.float_info.min / sys.float_info.epsilon
"""Evidence weighing this or less is impossible: below it a float64 probability is subnormal
(or close), its precision gone, so nothing can be concluded from it.  The oracle draws the
same line."""

Row = list[float]
Tables = dict[str, dict[tuple[str, ...], Row]]
"""``tables[var][parent states] = P(var | parents)``; roots use the key ``()``."""


def _key(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def party_numbers(scenario: Scenario, party: str) -> tuple[Tables, dict[str, Row]]:
    """Posterior-mean tables and soft-evidence likelihoods of ``party`` (or ``"world"``).

    Row p with strength s has Dirichlet concentration s * p; counts add to it; the
    mean is the concentration over its sum.  An observe fact of reliability r on a
    variable with k states has likelihood r for its state and (1 - r)/(k - 1) else.
    """
    world = scenario.world
    spec = None if party == "world" else getattr(scenario.parties, party)
    overrides = spec.beliefs.priors if spec else {}
    known = [scenario.facts[f] for f in spec.beliefs.knows] if spec else []
    alphas: dict[str, dict[tuple[str, ...], Row]] = {}
    for var, v in world.variables.items():
        if var == world.decision:
            continue
        rows: dict[tuple[str, ...], Row] = {}
        if v.parents:
            for key, row in (v.table or {}).items():
                rows[_key(key)] = list(row)
            for key, row in dict(overrides.get(var, {})).items():
                rows[_key(key)] = list(row)
        else:
            rows[()] = list(overrides.get(var, v.prior))
        strengths = {_key(k) if v.parents else (): n for k, n in v.row_strength.items()}
        alphas[var] = {k: [strengths.get(k, v.strength) * p for p in row] for k, row in rows.items()}
    likelihood: dict[str, Row] = {}
    for fact in known:
        if fact.counts is not None:
            var = fact.counts.variable
            key = tuple(fact.counts.given[p] for p in world.variables[var].parents)
            states = world.variables[var].states
            for state, n in fact.counts.counts.items():
                alphas[var][key][states.index(state)] += n
        for var, state in (fact.observe or {}).items():
            states = world.variables[var].states
            r = 1.0 if fact.reliability is None else fact.reliability
            vec = [r if s == state else (1 - r) / (len(states) - 1) for s in states]
            old = likelihood.get(var, [1.0] * len(states))
            likelihood[var] = [a * b for a, b in zip(old, vec)]
    tables = {var: {k: [a / sum(row) for a in row] for k, row in rows.items()} for var, rows in alphas.items()}
    return tables, likelihood


def marginals(
    scenario: Scenario,
    tables: Tables,
    likelihood: Mapping[str, Row],
    do: Mapping[str, str],
    given: Mapping[str, str],
    outcomes: Sequence[str],
) -> dict[str, list[float]]:
    """P(outcome | do, given, soft evidence) in a scenario's world (see :func:`enumerate_marginals`).
    An unset decision is summed with weight 1, so callers set it when it matters."""
    world = scenario.world
    return enumerate_marginals(
        {v: spec.states for v, spec in world.variables.items()},
        {v: spec.parents for v, spec in world.variables.items()},
        tables, likelihood, do, given, outcomes, unmodelled={world.decision},
    )


def enumerate_marginals(
    states: Mapping[str, Sequence[str]],
    parents: Mapping[str, Sequence[str]],
    tables: Tables,
    likelihood: Mapping[str, Row],
    do: Mapping[str, str],
    given: Mapping[str, str],
    outcomes: Sequence[str],
    unmodelled: set[str] | frozenset[str] = frozenset(),
) -> dict[str, list[float]]:
    """P(outcome | do, given, soft evidence) by summing the joint over every assignment.

    ``do`` cuts a variable from its parents and fixes it; ``given`` is hard
    evidence; soft evidence on an intervened variable has no effect (the
    intervention, not the world, sets it).  Variables in ``unmodelled`` (a
    decision) have no table: unless set, they are summed with weight 1.
    """
    names = list(states)
    totals = {o: [0.0] * len(states[o]) for o in outcomes}
    for values in itertools.product(*(states[n] for n in names)):
        x = dict(zip(names, values))
        weight = 1.0
        for var in names:
            if var in do:
                weight *= 1.0 if x[var] == do[var] else 0.0
                continue
            if var in unmodelled:
                continue
            key = tuple(x[p] for p in parents[var])
            weight *= tables[var][key][list(states[var]).index(x[var])]
            if var in likelihood:
                weight *= likelihood[var][list(states[var]).index(x[var])]
            if var in given and x[var] != given[var]:
                weight = 0.0
            if weight == 0.0:
                break
        if weight == 0.0:
            continue
        for o in outcomes:
            totals[o][list(states[o]).index(x[o])] += weight
    out = {}
    for o, row in totals.items():
        z = sum(row)
        if z <= IMPOSSIBLE:
            raise ZeroDivisionError("the evidence has probability 0 (or one too small to divide by)")
        out[o] = [p / z for p in row]
    return out


def ask(
    scenario: Scenario,
    party: str,
    do: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
    outcomes: Sequence[str] | None = None,
) -> dict[str, list[float]]:
    """The party's posterior-mean answer to one query."""
    tables, likelihood = party_numbers(scenario, party)
    return marginals(scenario, tables, likelihood, do or {}, given or {}, outcomes or scenario.world.outcomes)
