"""Random scenarios whose diagnosis is known by construction.

Every generated case is a scenario dict, valid under the scenario format
(``shared/spec/SCENARIO.md``), and what the construction guarantees about the
session on it.  The models are small (4-8 variables, 2-3 states, one decision
with 2-3 actions, two outcomes), so that every subset of the exchangeable
facts can be tried by brute force.

The world::

    u1..u3   upstream roots (the case at hand), 2-3 states
    w        optional signal, child of u1 (observing it informs u1)
    act      the decision, 2-3 actions
    o1, o2   the outcomes, children of act and of some u's
    z1, z2   optional inert variables (z2 child of z1), ancestors of nothing that matters

What is known by construction, and why.  Write ``B*`` for the beliefs each
party has once every unshared fact it would accept is shared ("the pool"),
and ``key`` for the four swap-test choices.  The stop rule (SCENARIO.md,
Exchange) ends a session only where sharing the rest of the unshared,
unrejected facts pooled changes no choice; sharing the rest pooled gives
``B*``, so **the final swap-test choices are those of B\\***, whatever the
order of offers.  Hence:

``facts``
    Same priors, same values, the parties differ only in the facts they hold.
    In ``B*`` both hold every fact: equal beliefs, equal values, so the final
    kind is ``agree``.  Regenerated (a bounded number of times) until the
    initial choices differ.
``values``
    Same priors, facts known to both (or none), different values.  Beliefs
    are equal, so ``c(Ba, V) == c(Bh, V)`` for both V: the kind is ``value``
    when the choices differ, which is regenerated until true.  Nothing is
    exchanged.
``both``
    Unshared facts and different values.  ``B*`` gives equal beliefs, so the
    final kind is ``agree`` or ``value``; it is regenerated until the pool's
    kind (computed with :class:`dialogue.evaluate.Evaluator` on
    :meth:`beliefs.graph.BeliefGraph.with_facts` graphs) is ``value`` and
    the initial kind is ``both`` or ``belief`` (the facts matter at first).
    The initial kind is recorded as computed, not as a construction claim.
``priors``
    Same values; the human's prior on one upstream variable ``X`` differs;
    no fact observes ``X`` or a descendant of it.  With equal values the kind
    is ``agree`` or ``belief``; it is regenerated until the pool's choices
    differ, so the final kind is ``belief``.  ``X`` is an unresolved belief:
    its marginal differs and (checked) observing it has value of information
    in the pool.  Equal values give no value conflict.
``rejects``
    Same priors and values; the agent alone holds an observe fact ``F`` on
    ``X`` from a source the human's ``responds.rejects_sources`` lists.  Until
    ``F`` is offered it is unrejected, so it belongs to the stop rule's pool:
    a session could end before offering it, in a state whose choices equal
    the full pool's (everything, ``F`` included: equal beliefs, so ``agree``)
    and that no single fact changes.  The construction rules that out by
    brute force: no subset of the other shareable facts gives such a state
    (regenerated otherwise; see ``bench/findings/rejects_masked_pool.json``
    for a scenario where it happens).  So ``F`` is offered and rejected, and
    from then on the pool is the one without ``F``, which is regenerated
    until its choices differ: the final kind is ``belief`` and ``X`` is an
    unresolved belief (checked: observing it has value of information).
``inert``
    A ``facts`` case with 1-3 more facts about ``z1``/``z2`` only.  Those are
    not ancestors of the outcomes, so no expected utility depends on them:
    they change no choice alone or in any pool and must never be offered.
    (Inert facts are also added, with probability 0.3, to ``facts``,
    ``both``, ``priors`` and ``rejects`` cases; :attr:`Case.inert_facts`
    lists them.)

Facts are observations of ``u``'s and ``w`` (soft, reliability 0.6-0.95)
and counts on a row of an outcome's table; a case sometimes gets a *chorus*
of 2-3 weak reports of the same state, which tend to matter only together
(the pooled branch of the stop rule).

Near ties are avoided: every cell of the initial and the pooled swap test
has a best action ahead of the next by at least :data:`MARGIN`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from crux.beliefs.graph import BeliefGraph
from crux.dialogue.cruxes import unshared
from crux.dialogue.diagnosis import FULL_CELLS, Diagnosis
from crux.dialogue.evaluate import Evaluator
from crux.oracle.oracle import Oracle
from crux.values.information import observation_value
from crux.values.utility import Utility
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model
from crux.worldmodel.spec import Scenario

KINDS = ("facts", "values", "both", "priors", "rejects", "inert")
EXPECTED_KIND = {
    "facts": "agree",
    "values": "value",
    "both": "value",
    "priors": "belief",
    "rejects": "belief",
    "inert": "agree",
}
MARGIN = 1e-6
"""Each swap-test cell's best action leads the next by at least this (no near ties)."""
VOI_MIN = 1e-6
"""The unresolved variable's value of information in the pool is at least this."""
MAX_TRIES = 400
"""Hard requirements (e.g. a value disagreement in the pool) fail the generator after this many tries."""
SOFT_TRIES = 80
"""Soft requirements (the initial choices differ, for facts/inert) are dropped after this many."""
INERT_RATE = 0.3
CHORUS_RATE = 0.3
"""How often a case gets a chorus of weak reports that may matter only together."""
MAX_RELEVANT = 6
REJECTED_SOURCE = "anonymous tip line"
CELL_NAMES = {("a", "a"): "aa", ("a", "h"): "ah", ("h", "a"): "ha", ("h", "h"): "hh"}

STATES = {2: ["lo", "hi"], 3: ["lo", "mid", "hi"]}
OUTCOME_STATES = {2: ["good", "bad"], 3: ["good", "fair", "bad"]}
ACTIONS = ["stay", "go", "switch"]

Move = tuple[str, str, str]
"""(fact, sender, receiver)."""


# -- cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A generated scenario and what is known about its session by construction."""

    kind: str
    seed: int
    scenario: dict
    expected_kind: str
    """The final diagnosis kind."""
    expected_cells: dict[str, str]
    """The final swap-test choices (``aa`` = agent beliefs, agent values, ...): the pool's."""
    initial_kind: str
    """The initial diagnosis as computed (recorded, not a construction claim)."""
    initial_disagrees: bool
    inert_facts: tuple[str, ...] = ()
    """Facts that change no choice, alone or in any pool: never to be offered."""
    unresolved_variable: str | None = None
    """priors/rejects: the variable that must be an unresolved belief, never a value conflict."""
    rejected_fact: str | None = None
    """rejects: the fact the human rejects (it must be offered, and rejected)."""
    tries: int = 1
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.scenario["name"]


def generate(kind: str, seed: int) -> Case:
    """One case of ``kind``, reproducible from ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    rng = random.Random(f"{kind}:{seed}")
    fallback: Case | None = None
    for attempt in range(1, MAX_TRIES + 1):
        data, meta = _BUILDERS[kind](rng)
        data["name"] = f"{kind}-{seed}"
        case, soft_ok = _verify(kind, seed, data, meta, attempt)
        if case is None:
            continue
        if soft_ok:
            return case
        fallback = fallback or case
        if attempt >= SOFT_TRIES:
            return fallback
    if fallback is not None:
        return fallback
    raise RuntimeError(f"no {kind} case for seed {seed} in {MAX_TRIES} tries")


def generate_cases(n: int, seed: int = 0, kinds: Sequence[str] = KINDS) -> list[Case]:
    """``n`` cases, the kinds in turn, each from its own seed."""
    return [generate(kinds[i % len(kinds)], seed * 1_000_003 + i) for i in range(n)]


# -- the engine's math on a scenario -------------------------------------------------------


@dataclass
class Context:
    """A scenario compiled once: the model, a CPU oracle, the evaluator and the initial graphs."""

    scenario: Scenario
    model: Model
    oracle: Oracle
    evaluator: Evaluator
    graphs: dict[str, BeliefGraph]

    @classmethod
    def of(cls, data: Mapping) -> Context:
        scenario, problems = validate_data(data)
        if scenario is None:
            raise ValueError("invalid scenario: " + "; ".join(str(p) for p in problems))
        model = Model.from_scenario(scenario)
        oracle = Oracle(model, device="cpu")
        net = model.network
        utilities = {p: Utility.from_values(getattr(scenario.parties, p).values, net) for p in ("agent", "human")}
        evaluator = Evaluator(oracle, utilities, net.states[net.decision])
        graphs = {p: BeliefGraph.initial(scenario, net, p) for p in ("agent", "human")}
        return cls(scenario, model, oracle, evaluator, graphs)

    def accepts(self, move: Move) -> bool:
        """Whether the receiver takes the fact: the agent always; the human by ``responds``."""
        fact_id, _, receiver = move
        if receiver == "agent":
            return True
        rules = self.scenario.parties.human.responds
        fact = self.scenario.facts[fact_id]
        return not (
            fact_id in rules.rejects
            or fact.source in rules.rejects_sources
            or (fact.observe is not None and fact.weight < rules.accept_min_reliability)
        )

    def moves(self, graphs: Mapping[str, BeliefGraph] | None = None) -> list[Move]:
        """Every unshared fact not yet seen by its receiver (``dialogue.cruxes.unshared``)."""
        return unshared(graphs or self.graphs)

    def shareable(self) -> list[Move]:
        """The initial unshared facts that the receiver would accept."""
        return [m for m in self.moves() if self.accepts(m)]

    def share(self, moves: Iterable[Move], graphs: Mapping[str, BeliefGraph] | None = None) -> tuple[BeliefGraph, BeliefGraph]:
        """(agent, human) beliefs if every move were accepted at the fact's own reliability."""
        graphs = dict(graphs or self.graphs)
        moves = list(moves)
        for party, sender in (("agent", "human"), ("human", "agent")):
            facts = [f for f, _, r in moves if r == party]
            if facts:
                graphs[party] = graphs[party].with_facts(facts, origin=sender, turn=0)
        return graphs["agent"], graphs["human"]

    def diagnose(self, pairs: Sequence[tuple[BeliefGraph, BeliefGraph]]) -> list[Diagnosis]:
        return self.evaluator.diagnose(pairs)

    def subset_diagnoses(self, moves: Sequence[Move]) -> dict[frozenset[int], Diagnosis]:
        """The diagnosis after sharing each subset of ``moves`` (by index), in one batched call."""
        n = len(moves)
        cache: dict[tuple[str, frozenset], BeliefGraph] = {}

        def graph(party: str, got: frozenset) -> BeliefGraph:
            if (party, got) not in cache:
                base = self.graphs[party]
                cache[(party, got)] = base.with_facts(sorted(got), origin="other", turn=0) if got else base
            return cache[(party, got)]

        subsets = [frozenset(i for i in range(n) if mask >> i & 1) for mask in range(1 << n)]
        pairs = []
        for s in subsets:
            to = {p: frozenset(moves[i][0] for i in s if moves[i][2] == p) for p in ("agent", "human")}
            pairs.append((graph("agent", to["agent"]), graph("human", to["human"])))
        return dict(zip(subsets, self.diagnose(pairs)))

    def value_of_observing(self, pair: tuple[BeliefGraph, BeliefGraph], variable: str) -> float:
        """The value of information of observing ``variable``, over the four cells (as the final report computes it)."""
        states = {"a": pair[0].state, "h": pair[1].state}
        ev = self.evaluator
        cells = [(states[b], ev.utilities[ev.value_keys.index(v)]) for b, v in ev.cells]
        return observation_value(self.oracle, cells, [variable])[variable]


def cells_of(d: Diagnosis) -> dict[str, str]:
    return {CELL_NAMES[c]: d.cells[c] for c in FULL_CELLS}


def margin(d: Diagnosis) -> float:
    """The smallest lead of a cell's best action over its next."""
    lead = float("inf")
    for eu in d.expected.values():
        top = sorted(eu, reverse=True)
        lead = min(lead, top[0] - top[1])
    return lead


def _verify(kind: str, seed: int, data: dict, meta: dict, attempt: int) -> tuple[Case | None, bool]:
    """The case if the construction's claims hold on the engine's math; and whether soft wishes hold."""
    ctx = Context.of(data)
    inert = list(meta.get("inert", ()))
    rejected = meta.get("rejected")
    pool = ctx.shareable()
    if rejected is not None:
        assert (rejected, "agent", "human") in ctx.moves() and (rejected, "agent", "human") not in pool
    base = (ctx.graphs["agent"], ctx.graphs["human"])
    pairs = [base, ctx.share(pool)]
    if inert:
        # inert facts given to both parties change no expected utility at all
        pairs.append(ctx.share([m for m in ctx.moves() if m[0] in inert]))
    found = ctx.diagnose(pairs)
    initial, pooled = found[0], found[1]
    if min(margin(initial), margin(pooled)) < MARGIN:
        return None, False
    if inert:
        for cell, eu in found[2].expected.items():
            if max(abs(x - y) for x, y in zip(eu, initial.expected[cell])) > 1e-12:
                raise AssertionError(f"{kind}-{seed}: an inert fact moved an expected utility")
    expected = EXPECTED_KIND[kind]
    disagrees = initial.kind != "agree"
    soft_ok = True
    unresolved = meta.get("unresolved")
    if kind in ("facts", "inert"):
        # equal priors, equal values, every fact in the pool: equal beliefs, so agree
        assert pooled.kind == "agree", f"{kind}-{seed}: pool with equal beliefs and values is {pooled.kind}"
        soft_ok = disagrees
    elif kind == "values":
        assert initial.key() == pooled.key() and pooled.kind in ("agree", "value")
        if pooled.kind != "value":
            return None, False
    elif kind == "both":
        assert pooled.kind in ("agree", "value")
        if pooled.kind != "value" or initial.kind not in ("both", "belief"):
            return None, False
    elif kind in ("priors", "rejects"):
        assert pooled.kind in ("agree", "belief")
        if pooled.kind != "belief":
            return None, False
        if rejected is not None and _may_stop_before(ctx, pool, (rejected, "agent", "human")):
            return None, False
        if ctx.value_of_observing(pairs[1], unresolved) < VOI_MIN:
            return None, False
    case = Case(
        kind=kind,
        seed=seed,
        scenario=data,
        expected_kind=expected,
        expected_cells=cells_of(pooled),
        initial_kind=initial.kind,
        initial_disagrees=disagrees,
        inert_facts=tuple(inert),
        unresolved_variable=unresolved,
        rejected_fact=rejected,
        tries=attempt,
    )
    return case, soft_ok


def _may_stop_before(ctx: Context, others: list[Move], doomed: Move) -> bool:
    """Whether some state reached by sharing a subset of ``others`` (with ``doomed`` still
    unoffered) meets the stop rule: no unshared fact alone, nor all pooled (``doomed``
    included), changes a swap-test choice."""
    moves = [*others, doomed]
    table = ctx.subset_diagnoses(moves)
    everything = frozenset(range(len(moves)))
    last = len(moves) - 1
    for t, d in table.items():
        if last in t:
            continue
        key = d.key()
        if key == table[everything].key() and all(table[t | {i}].key() == key for i in everything - t):
            return True
    return False


# -- random worlds -------------------------------------------------------------------------


def _probs(rng: random.Random, k: int, alpha: float = 1.0, floor: float = 0.02) -> list[float]:
    """A random distribution over ``k`` states, rounded to 4 decimals, no state below ``floor``."""
    g = [rng.gammavariate(alpha, 1.0) for _ in range(k)]
    total = sum(g)
    p = [floor + (1.0 - k * floor) * x / total for x in g]
    q = [round(x, 4) for x in p[:-1]]
    q.append(round(1.0 - sum(q), 4))
    return q


def _far_probs(rng: random.Random, old: Sequence[float], min_l1: float = 0.5) -> list[float]:
    """A distribution at least ``min_l1`` away from ``old`` (L1)."""
    for _ in range(100):
        p = _probs(rng, len(old), alpha=0.5)
        if sum(abs(a - b) for a, b in zip(p, old)) >= min_l1:
            return p
    return list(reversed(old))


@dataclass
class _World:
    variables: dict
    upstream: list[str]
    signal: str | None
    inert: list[str]
    outcomes: list[str]

    def states(self, var: str) -> list[str]:
        return self.variables[var]["states"]

    def parents(self, var: str) -> list[str]:
        return self.variables[var].get("parents", [])


def _world(rng: random.Random, n_upstream: int, signal: bool, n_inert: int) -> _World:
    variables: dict = {}
    upstream = [f"u{i + 1}" for i in range(n_upstream)]
    for u in upstream:
        k = rng.choice((2, 3))
        variables[u] = {"states": STATES[k], "prior": _probs(rng, k)}
    sig = None
    if signal:
        sig = "w"
        k = rng.choice((2, 3))
        parent = upstream[0]
        variables[sig] = _table_var(rng, STATES[k], [parent], variables, alpha=0.4)
    n_actions = rng.choice((2, 3))
    variables["act"] = {"states": ACTIONS[:n_actions]}
    outcomes = ["o1", "o2"]
    for i, o in enumerate(outcomes):
        low = 1 if i == 0 else 0
        ups = rng.sample(upstream, rng.randint(low, min(2, len(upstream))))
        k = rng.choice((2, 3))
        variables[o] = _table_var(rng, OUTCOME_STATES[k], sorted(ups) + ["act"], variables, alpha=0.5)
        if rng.random() < 0.3:
            variables[o]["strength"] = rng.choice((5, 20))
    inert = []
    if n_inert >= 1:
        inert.append("z1")
        variables["z1"] = {"states": STATES[2], "prior": _probs(rng, 2)}
    if n_inert >= 2:
        inert.append("z2")
        variables["z2"] = _table_var(rng, STATES[rng.choice((2, 3))], ["z1"], variables, alpha=0.7)
    return _World(variables, upstream, sig, inert, outcomes)


def _table_var(rng: random.Random, states: list[str], parents: list[str], variables: dict, alpha: float) -> dict:
    rows = {}
    for combo in itertools.product(*(variables[p]["states"] for p in parents)):
        rows[", ".join(combo)] = _probs(rng, len(states), alpha=alpha)
    return {"states": list(states), "parents": list(parents), "table": rows}


def _observe(rng: random.Random, world: _World, var: str, source: str | None = None) -> dict:
    state = rng.choice(world.states(var))
    return {
        "text": f"The {var} report reads {state}.",
        "source": source or f"{var} sensor",
        "reliability": rng.choice((0.7, 0.8, 0.9, 0.95)),
        "observe": {var: state},
    }


def _counts(rng: random.Random, world: _World, var: str, source: str = "field records") -> dict:
    given = {p: rng.choice(world.states(p)) for p in world.parents(var)}
    states = world.states(var)
    top = rng.choice(states)
    counts = {s: (rng.randint(15, 60) if s == top else rng.randint(0, 5)) for s in states}
    where = ", ".join(f"{p}={s}" for p, s in given.items()) or "in general"
    return {
        "text": f"Records of {var} ({where}): " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
        "source": source,
        "counts": {"variable": var, "given": given, "counts": counts},
    }


def _relevant_facts(rng: random.Random, world: _World, n: int, avoid: Sequence[str] = ()) -> dict:
    """``n`` facts that may matter: observations of u's and w, counts on outcome rows; and,
    with probability :data:`CHORUS_RATE`, a chorus of 2-3 weak reports of the same state
    (at most :data:`MAX_RELEVANT` facts in all)."""
    observable = [v for v in [*world.upstream, *([world.signal] if world.signal else [])] if v not in avoid]
    facts = {}
    for i in range(n):
        if observable and rng.random() < 0.65:
            facts[f"f{i + 1}"] = _observe(rng, world, rng.choice(observable))
        else:
            facts[f"f{i + 1}"] = _counts(rng, world, rng.choice(world.outcomes))
    if observable and rng.random() < CHORUS_RATE:
        var = rng.choice(observable)
        state = rng.choice(world.states(var))
        for j in range(rng.randint(2, 3)):
            if len(facts) >= MAX_RELEVANT:
                break
            facts[f"f{len(facts) + 1}"] = {
                "text": f"Witness {j + 1} says {var} looked {state}.",
                "source": f"witness {j + 1}",
                "reliability": rng.choice((0.6, 0.65, 0.7)),
                "observe": {var: state},
            }
    return facts


def _inert_facts(rng: random.Random, world: _World, n: int) -> dict:
    facts = {}
    for i in range(n):
        var = rng.choice(world.inert)
        if rng.random() < 0.6:
            facts[f"z_f{i + 1}"] = _observe(rng, world, var, source="z sensor")
        else:
            facts[f"z_f{i + 1}"] = _counts(rng, world, var, source="z records")
    return facts


def _split(rng: random.Random, ids: Sequence[str], both: float = 0.1) -> tuple[list[str], list[str]]:
    """Who holds each fact: the agent, the human, or (rarely) both; at least one unshared."""
    while True:
        agent, human = [], []
        for f in ids:
            r = rng.random()
            if r < both:
                agent.append(f)
                human.append(f)
            elif r < both + (1 - both) / 2:
                agent.append(f)
            else:
                human.append(f)
        if not ids or set(agent) != set(human):
            return agent, human


def _values(rng: random.Random, world: _World) -> dict:
    while True:
        values = {o: {s: rng.randint(-100, 0) for s in world.states(o)} for o in world.outcomes}
        if any(len(set(v.values())) > 1 for v in values.values()):
            return values


def _scenario(world: _World, facts: dict, agent: dict, human: dict, description: str) -> dict:
    return {
        "crux": 1,
        "name": "",
        "description": description,
        "world": {"variables": world.variables, "decision": "act", "outcomes": list(world.outcomes)},
        "facts": facts,
        "parties": {"agent": agent, "human": human},
    }


def _party(priors: dict, knows: list[str], values: dict, responds: dict | None = None) -> dict:
    out: dict = {"beliefs": {"priors": priors, "knows": list(knows)}, "values": values}
    if responds is not None:
        out["responds"] = responds
    return out


def _shape(rng: random.Random, n_inert: int) -> tuple[int, bool, int]:
    """(upstream count, signal, inert count) with at most 8 variables in all."""
    n_up = rng.randint(1, 3)
    signal = rng.random() < 0.5
    while n_up + signal + 3 + n_inert > 8:
        if signal:
            signal = False
        else:
            n_up -= 1
    return n_up, signal, n_inert


def _maybe_inert(rng: random.Random, always: bool = False) -> int:
    if always:
        return rng.randint(1, 2)
    return rng.randint(1, 2) if rng.random() < INERT_RATE else 0


# -- builders: (scenario dict, meta) ----------------------------------------------------------


def _build_facts(rng: random.Random, inert_always: bool = False) -> tuple[dict, dict]:
    n_up, signal, n_inert = _shape(rng, _maybe_inert(rng, inert_always))
    world = _world(rng, n_up, signal, n_inert)
    facts = _relevant_facts(rng, world, rng.randint(2, 5))
    inert = _inert_facts(rng, world, rng.randint(1, 3)) if world.inert else {}
    agent_knows, human_knows = _split(rng, list(facts))
    for f in inert:  # inert facts: one party only, so there is something not to offer
        (agent_knows if rng.random() < 0.5 else human_knows).append(f)
    values = _values(rng, world)
    data = _scenario(
        world,
        {**facts, **inert},
        _party({}, agent_knows, values),
        _party({}, human_knows, values),
        "Equal priors and values; the parties hold different facts.",
    )
    return data, {"inert": list(inert)}


def _build_inert(rng: random.Random) -> tuple[dict, dict]:
    data, meta = _build_facts(rng, inert_always=True)
    data["description"] = "Equal priors and values; different facts, some about variables no choice depends on."
    return data, meta


def _build_values(rng: random.Random) -> tuple[dict, dict]:
    n_up, signal, _ = _shape(rng, 0)
    world = _world(rng, n_up, signal, 0)
    facts = _relevant_facts(rng, world, rng.randint(0, 3))
    both = list(facts)
    data = _scenario(
        world,
        facts,
        _party({}, both, _values(rng, world)),
        _party({}, both, _values(rng, world)),
        "Equal priors and facts; different values.",
    )
    return data, {}


def _build_both(rng: random.Random) -> tuple[dict, dict]:
    n_up, signal, n_inert = _shape(rng, _maybe_inert(rng))
    world = _world(rng, n_up, signal, n_inert)
    facts = _relevant_facts(rng, world, rng.randint(2, 5))
    inert = _inert_facts(rng, world, rng.randint(1, 2)) if world.inert else {}
    agent_knows, human_knows = _split(rng, list(facts))
    for f in inert:
        (agent_knows if rng.random() < 0.5 else human_knows).append(f)
    data = _scenario(
        world,
        {**facts, **inert},
        _party({}, agent_knows, _values(rng, world)),
        _party({}, human_knows, _values(rng, world)),
        "Equal priors; different facts and different values.",
    )
    return data, {"inert": list(inert)}


def _build_priors(rng: random.Random) -> tuple[dict, dict]:
    n_up, signal, n_inert = _shape(rng, _maybe_inert(rng))
    world = _world(rng, n_up, signal, n_inert)
    # X must be a parent of an outcome, so that its prior can matter
    candidates = sorted({p for o in world.outcomes for p in world.parents(o) if p in world.upstream})
    x = rng.choice(candidates)
    avoid = [x] + ([world.signal] if world.signal and world.parents(world.signal) == [x] else [])
    facts = _relevant_facts(rng, world, rng.randint(0, 3), avoid=avoid)
    inert = _inert_facts(rng, world, rng.randint(1, 2)) if world.inert else {}
    agent_knows, human_knows = _split(rng, list(facts), both=0.3) if facts else ([], [])
    for f in inert:
        (agent_knows if rng.random() < 0.5 else human_knows).append(f)
    values = _values(rng, world)
    prior = _far_probs(rng, world.variables[x]["prior"])
    data = _scenario(
        world,
        {**facts, **inert},
        _party({}, agent_knows, values),
        _party({x: prior}, human_knows, values),
        f"Equal values; the human's prior on {x} differs and no fact bears on it.",
    )
    return data, {"inert": list(inert), "unresolved": x}


def _build_rejects(rng: random.Random) -> tuple[dict, dict]:
    n_up, signal, n_inert = _shape(rng, _maybe_inert(rng))
    world = _world(rng, n_up, signal, n_inert)
    observable = [*world.upstream, *([world.signal] if world.signal else [])]
    x = rng.choice(observable)
    facts = _relevant_facts(rng, world, rng.randint(0, 3))
    rejected = {"r1": _observe(rng, world, x, source=REJECTED_SOURCE)}
    inert = _inert_facts(rng, world, rng.randint(1, 2)) if world.inert else {}
    agent_knows, human_knows = _split(rng, list(facts), both=0.3) if facts else ([], [])
    agent_knows.append("r1")
    for f in inert:
        (agent_knows if rng.random() < 0.5 else human_knows).append(f)
    values = _values(rng, world)
    data = _scenario(
        world,
        {**facts, **rejected, **inert},
        _party({}, agent_knows, values),
        _party({}, human_knows, values, {"rejects_sources": [REJECTED_SOURCE]}),
        f"Equal priors and values; the agent holds a fact about {x} from a source the human rejects.",
    )
    return data, {"inert": list(inert), "unresolved": x, "rejected": "r1"}


_BUILDERS = {
    "facts": _build_facts,
    "values": _build_values,
    "both": _build_both,
    "priors": _build_priors,
    "rejects": _build_rejects,
    "inert": _build_inert,
}


# -- a bigger model, for timing ---------------------------------------------------------------


def large_scenario(seed: int = 0, n_variables: int = 30, n_facts: int = 20) -> dict:
    """A valid scenario with ``n_variables`` variables and ``n_facts`` facts split between the
    parties (for timing one engine step; its diagnosis is not known by construction)."""
    rng = random.Random(f"large:{seed}")
    variables: dict = {}
    n_up = n_variables - 3  # upstream variables, then act, o1, o2
    names = [f"v{i + 1}" for i in range(n_up)]
    for i, v in enumerate(names):
        k = rng.choice((2, 3))
        parents = sorted(rng.sample(names[max(0, i - 6) : i], min(i, rng.randint(0, 2))), key=names.index)
        if parents:
            variables[v] = _table_var(rng, STATES[k], parents, variables, alpha=0.6)
        else:
            variables[v] = {"states": STATES[k], "prior": _probs(rng, k)}
    variables["act"] = {"states": ACTIONS[:3]}
    for o in ("o1", "o2"):
        ups = sorted(rng.sample(names[-10:], 2), key=names.index)
        variables[o] = _table_var(rng, OUTCOME_STATES[3], ups + ["act"], variables, alpha=0.5)
    world = _World(variables, names, None, [], ["o1", "o2"])
    facts = {}
    for i in range(n_facts):
        if rng.random() < 0.7:
            facts[f"f{i + 1}"] = _observe(rng, world, rng.choice(names))
        else:
            facts[f"f{i + 1}"] = _counts(rng, world, rng.choice(world.outcomes))
    agent_knows, human_knows = _split(rng, list(facts), both=0.0)
    data = _scenario(
        world,
        facts,
        _party({}, agent_knows, _values(rng, world)),
        _party({}, human_knows, _values(rng, world)),
        "A bigger random model, for timing.",
    )
    data["name"] = f"large-{seed}"
    return data
