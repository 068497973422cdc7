"""Compile a scenario to tensors: the network's structure and a party's numbers.

A :class:`Network` is the shared structure (variables in topological order,
states, parents, the decision and the outcomes).  A :class:`BeliefState` is one
party's numbers over it: a Dirichlet concentration per table (priors and rows,
with that party's overrides and the counts facts it holds) and a likelihood
vector per variable from the observe facts it holds.  Tensors are float64 on
the CPU; the oracle moves them to its device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import torch

from crux.worldmodel.rows import split_key
from crux.worldmodel.spec import Believer, Fact, Normal, PriorOverride, Scenario


@dataclass(frozen=True)
class Network:
    """The structure of a world: what the parties share."""

    order: tuple[str, ...]
    states: Mapping[str, tuple[str, ...]]
    """A discrete variable's states; () for a continuous one."""
    parents: Mapping[str, tuple[str, ...]]
    decision: str | None = None
    outcomes: tuple[str, ...] = ()
    continuous: frozenset[str] = frozenset()
    references: Mapping[str, str] = field(default_factory=dict)
    """Outcomes whose reference state (utility 0) is not their first (``world.reference``)."""

    def reference(self, outcome: str) -> str:
        """The outcome's reference state: utility 0, the zero that signs and sizes are measured from."""
        return self.references.get(outcome, self.states[outcome][0])

    @classmethod
    def build(
        cls,
        states: Mapping[str, Sequence[str]],
        parents: Mapping[str, Sequence[str]],
        decision: str | None = None,
        outcomes: Sequence[str] = (),
        continuous: Sequence[str] = (),
        references: Mapping[str, str] | None = None,
    ) -> Network:
        graph = nx.DiGraph()
        graph.add_nodes_from(states)
        graph.add_edges_from((p, v) for v, ps in parents.items() for p in ps)
        position = {v: i for i, v in enumerate(states)}
        order = tuple(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
        return cls(
            order=order,
            states={v: tuple(states[v]) for v in order},
            parents={v: tuple(parents.get(v, ())) for v in order},
            decision=decision,
            outcomes=tuple(outcomes),
            continuous=frozenset(continuous),
            references=dict(references or {}),
        )

    @cached_property
    def position(self) -> dict[str, int]:
        """Each variable's place in the topological order."""
        return {v: i for i, v in enumerate(self.order)}

    @cached_property
    def state_index(self) -> dict[str, dict[str, int]]:
        """Each variable's states by name: ``state_index[var][state]`` is the state's index
        ({} for a continuous variable)."""
        return {v: {s: i for i, s in enumerate(self.states[v])} for v in self.order}

    def card(self, var: str) -> int:
        return len(self.states[var])

    def shape(self, var: str) -> tuple[int, ...]:
        """Shape of a variable's table: one axis per parent, then the variable's own."""
        return (*(self.card(p) for p in self.parents[var]), self.card(var))

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The causal graph: an edge parent -> child for every parent."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.order)
        graph.add_edges_from((p, v) for v in self.order for p in self.parents[v])
        return graph

    def row_index(self, var: str, key: str | Mapping[str, str]) -> tuple[int, ...]:
        """Index of a table row, from a row key ``"wet, swerve"`` or ``{parent: state}``."""
        parents = self.parents[var]
        states = split_key(key) if isinstance(key, str) else tuple(key[p] for p in parents)
        return tuple(self.states[p].index(s) for p, s in zip(parents, states))


@dataclass(frozen=True)
class BeliefState:
    """One party's numbers over a network (CPU float64 tensors).

    ``concentration[v]`` has the shape of ``v``'s table (parents' axes, then
    ``v``'s): the Dirichlet concentration of each row, whose normalised value is
    the posterior mean.  ``likelihood[v]`` is the product of the soft evidence
    about ``v``.  The decision has no entry in either.
    """

    concentration: Mapping[str, torch.Tensor]
    likelihood: Mapping[str, torch.Tensor] = field(default_factory=dict)
    normal: Mapping[str, Normal] = field(default_factory=dict)
    """Continuous variables' laws (normal, mean linear in the parents)."""
    certain: bool = False
    """Numbers stated without uncertainty (a BIF network): every draw is the mean."""

    def mean(self, var: str) -> torch.Tensor:
        alpha = self.concentration[var]
        return alpha / alpha.sum(-1, keepdim=True)


def network_of(scenario: Scenario) -> Network:
    world = scenario.world
    return Network.build(
        states={v: spec.states or () for v, spec in world.variables.items()},
        parents={v: spec.parents for v, spec in world.variables.items()},
        decision=world.decision,
        outcomes=world.outcomes,
        continuous=[v for v, spec in world.variables.items() if spec.normal is not None],
        references=world.reference,
    )


def soft_likelihood(card: int, index: int, reliability: float) -> torch.Tensor:
    """Virtual evidence of an observe fact: r for the reported state, (1 - r)/(k - 1) elsewhere."""
    vec = torch.full((card,), (1.0 - reliability) / (card - 1), dtype=torch.float64)
    vec[index] = reliability
    return vec


def compile_beliefs(
    scenario: Scenario,
    network: Network,
    priors: Mapping[str, PriorOverride] | None = None,
    facts: Iterable[Fact] = (),
) -> BeliefState:
    """The world's tables with a party's overrides, plus the facts it holds.

    Each row ``p`` of strength ``s`` becomes the concentration ``s * p``; a
    counts fact adds its counts to the concentration of its row; observe facts
    multiply into the likelihood of their variables, weighted by reliability.
    """
    concentration: dict[str, torch.Tensor] = {}
    normal: dict[str, Normal] = {}
    for var in network.order:
        spec = scenario.world.variables[var]
        if var == network.decision:
            continue
        if spec.normal is not None:
            normal[var] = spec.normal
            continue
        override = (priors or {}).get(var)
        strength = torch.full(network.shape(var)[:-1] + (1,), float(spec.strength), dtype=torch.float64)
        for key, n in spec.row_strength.items():
            strength[network.row_index(var, key) if spec.parents else ()] = float(n)
        if spec.parents:
            table = torch.empty(network.shape(var), dtype=torch.float64)
            rows = dict(spec.table or {})
            rows.update(override if isinstance(override, Mapping) else {})
            for key, row in rows.items():
                table[network.row_index(var, key)] = torch.tensor(row, dtype=torch.float64)
        else:
            row = override if isinstance(override, list) else spec.prior
            table = torch.tensor(row, dtype=torch.float64)
        concentration[var] = strength * table
    likelihood: dict[str, torch.Tensor] = {}
    for fact in facts:
        _add(network, fact, concentration, likelihood)
    return BeliefState(concentration=concentration, likelihood=likelihood, normal=normal)


def with_fact(state: BeliefState, network: Network, fact: Fact) -> BeliefState:
    """``state`` with one more fact in force: exactly what :func:`compile_beliefs` gives with
    the fact appended to the facts (the same numbers, bit for bit), made without recompiling.
    Only the one table or likelihood the fact touches is new; every other tensor is shared
    with ``state``, so the oracle prepares and stacks only what differs."""
    concentration, likelihood = dict(state.concentration), dict(state.likelihood)
    _add(network, fact, concentration, likelihood)
    return BeliefState(concentration=concentration, likelihood=likelihood, normal=state.normal, certain=state.certain)


def _add(network: Network, fact: Fact, concentration: dict[str, torch.Tensor], likelihood: dict[str, torch.Tensor]) -> None:
    """Put a fact into a party's numbers: a counts fact adds its counts to its row (in a new
    tensor: the old one may be shared), observe facts multiply into their variables' likelihoods."""
    if fact.counts is not None:
        c = fact.counts
        idx = network.row_index(c.variable, c.given)
        table = concentration[c.variable] = concentration[c.variable].clone()
        for state, n in c.counts.items():
            table[(*idx, network.states[c.variable].index(state))] += n
    for var, state in (fact.observe or {}).items():
        vec = soft_likelihood(network.card(var), network.states[var].index(state), fact.weight)
        likelihood[var] = likelihood[var] * vec if var in likelihood else vec


def party_beliefs(scenario: Scenario, network: Network, party: Believer) -> BeliefState:
    """A party's beliefs at the start: the world plus its priors and the facts it knows."""
    if party == "world":
        return compile_beliefs(scenario, network)
    spec = getattr(scenario.parties, party)
    facts = [scenario.facts[f] for f in spec.beliefs.knows]
    return compile_beliefs(scenario, network, spec.beliefs.priors, facts)
