"""Valid scenarios at real size, for timing sessions (``python -m bench.sessions``) and for the
tests that compare the session's fast paths with the slow ones.

``generated(seed, variables, facts)``: a random DAG in which each variable takes 0-3 parents from
the 8 variables before it, 2-4 states each; a 3-action decision (placed in the first half) feeds
2-4 later variables; the last 2-3 variables are the outcomes; facts (observations of variables
not downstream of the decision, mostly of those the outcomes depend on, reliabilities 0.6-0.95,
and counts of table rows) are split
between the parties, who also differ in some priors and in their values.

``from_bif(path, seed, facts)``: a bnlearn network made into a scenario the same way: a 3-action
decision added as a parent of 2-4 of its variables (each action shifting their rows), 2-3
outcomes downstream of it, the same kinds of facts and differences.

Both are deterministic in their arguments and pass ``crux validate``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import networkx as nx

from bench.constructions import _probs  # a random distribution, no state below a floor

STATE_NAMES = {2: ["lo", "hi"], 3: ["lo", "mid", "hi"], 4: ["s0", "s1", "s2", "s3"]}
ACTIONS = ["hold", "treat", "wait"]
WINDOW = 8
"""A variable's parents come from the variables this close before it."""


def _table(rng: random.Random, states: list[str], parents: list[str], variables: dict, alpha: float = 0.7) -> dict:
    rows = {", ".join(combo): _probs(rng, len(states), alpha) for combo in itertools.product(*(variables[p]["states"] for p in parents))}
    return {"states": list(states), "parents": list(parents), "table": rows}


def generated(seed: int, n_variables: int = 30, n_facts: int = 10) -> dict:
    """A random valid scenario with ``n_variables`` variables (the decision included) and
    ``n_facts`` facts."""
    if n_variables < 6:
        raise ValueError("a generated scenario needs at least 6 variables")
    rng = random.Random(f"session:{seed}:{n_variables}:{n_facts}")
    n_out = rng.choice((2, 3))
    names = [f"v{i + 1}" for i in range(n_variables - 1 - n_out)] + [f"o{i + 1}" for i in range(n_out)]
    at = rng.randint(2, max(2, len(names) // 2))  # the decision's place in the order
    order = names[:at] + ["act"] + names[at:]
    later = order[at + 1 :]
    fed = set(rng.sample(later[:-n_out], min(len(later) - n_out, rng.randint(0, 2))))
    fed |= set(rng.sample(names[-n_out:], rng.randint(1, n_out)))
    while len(fed) < 2:
        fed.add(rng.choice(later))
    variables: dict = {}
    for i, v in enumerate(order):
        if v == "act":
            variables[v] = {"states": list(ACTIONS)}
            continue
        k = rng.choice((2, 3)) if v.startswith("o") else rng.choice((2, 3, 4))
        states = ["good", "fair", "bad"][:k] if v.startswith("o") else STATE_NAMES[k]
        window = [u for u in order[max(0, i - WINDOW) : i] if u != "act"]
        parents = rng.sample(window, min(len(window), rng.randint(0, 3 if v.startswith("o") else 2)))
        if v.startswith("o") and not parents and window:
            parents = [window[-1]]
        if v in fed:
            parents.append("act")
        parents.sort(key=order.index)
        variables[v] = _table(rng, states, parents, variables) if parents else {"states": states, "prior": _probs(rng, k)}
    outcomes = names[-n_out:]
    # every outcome must depend on the decision: wire it in where the random graph did not
    graph = nx.DiGraph([(p, v) for v, spec in variables.items() for p in spec.get("parents", [])])
    graph.add_nodes_from(variables)
    for o in outcomes:
        if not nx.has_path(graph, "act", o):
            spec = variables[o]
            parents = sorted([*spec.get("parents", []), "act"], key=order.index)
            variables[o] = _table(rng, spec["states"], parents, variables, alpha=0.5)
            graph.add_edge("act", o)
    world = {"variables": variables, "decision": "act", "outcomes": outcomes}
    return _dress(rng, world, n_facts, f"generated-{n_variables}x{n_facts}-{seed}")


def from_bif(path: str, seed: int = 0, n_facts: int = 20) -> dict:
    """A bnlearn network (a ``.bif``/``.bif.gz`` Crux reads) as a scenario: a 3-action decision
    added as a parent of 2-4 variables, 2-3 outcomes downstream of them, facts and differences."""
    from crux.worldmodel.bif import read_bif

    network, beliefs, _ = read_bif(path)
    name = Path(path).name.split(".")[0]  # bnlearn's files all call their network "unknown"
    rng = random.Random(f"bif:{name}:{seed}:{n_facts}")
    variables: dict = {}
    for v in network.order:
        states = list(network.states[v])
        mean = beliefs.mean(v)
        parents = list(network.parents[v])
        if parents:
            table = {}
            for combo in itertools.product(*(range(network.card(p)) for p in parents)):
                key = ", ".join(network.states[p][i] for p, i in zip(parents, combo))
                table[key] = _rounded(mean[combo].tolist())
            variables[v] = {"states": states, "parents": parents, "table": table}
        else:
            variables[v] = {"states": states, "prior": _rounded(mean.tolist())}
    graph = network.graph
    # the decision feeds 2-4 variables that have descendants (so that something lies downstream)
    candidates = [v for v in network.order if len(nx.descendants(graph, v)) >= 2 and len(network.parents[v]) <= 3]
    fed = rng.sample(candidates, min(len(candidates), rng.randint(2, 4)))
    for v in fed:
        spec = variables[v]
        rows = {}
        for key, row in (spec.get("table") or {"": spec["prior"]}).items():
            for a in ACTIONS:
                shifted = _rounded(_mix(row, _probs(rng, len(row), 0.5), rng.uniform(0.2, 0.6)))
                rows[f"{key}, {a}" if key else a] = shifted
        variables[v] = {"states": spec["states"], "parents": [*spec.get("parents", []), "act"], "table": rows}
    variables["act"] = {"states": list(ACTIONS)}
    downstream = sorted(set().union(*(nx.descendants(graph, v) for v in fed)) - set(fed), key=network.order.index)
    outcomes = rng.sample(downstream, min(len(downstream), rng.choice((2, 3))))
    world = {"variables": variables, "decision": "act", "outcomes": sorted(outcomes, key=network.order.index)}
    return _dress(rng, world, n_facts, f"{name}-{seed}")


def _mix(a: Sequence[float], b: Sequence[float], w: float) -> list[float]:
    return [(1 - w) * x + w * y for x, y in zip(a, b)]


def _rounded(p: Sequence[float]) -> list[float]:
    """Rounded to 6 decimals, still summing to 1 (the largest entry takes the rest)."""
    q = [round(max(x, 1e-6), 6) for x in p]
    top = max(range(len(q)), key=q.__getitem__)
    q[top] = round(1.0 - sum(x for i, x in enumerate(q) if i != top), 6)
    return q


def _dress(rng: random.Random, world: dict, n_facts: int, name: str) -> dict:
    """Facts split between the parties, different priors on a few roots, different values."""
    variables = world["variables"]
    graph = nx.DiGraph([(p, v) for v, spec in variables.items() for p in spec.get("parents", [])])
    graph.add_nodes_from(variables)
    after = nx.descendants(graph, "act") | {"act"}
    observable = [v for v in variables if v not in after]
    behind = set().union(*(nx.ancestors(graph, o) for o in world["outcomes"]))
    telling = [v for v in observable if v in behind]  # what the outcomes depend on: facts that may matter
    tabled = [v for v in variables if v != "act"]
    facts = {}
    for i in range(n_facts):
        fid = f"f{i + 1}"
        if rng.random() < 0.7 and observable:
            var = rng.choice(telling if telling and rng.random() < 0.8 else observable)
            state = rng.choice(variables[var]["states"])
            facts[fid] = {
                "text": f"The {var} report reads {state}.",
                "source": f"{var} sensor",
                "reliability": rng.choice((0.6, 0.7, 0.8, 0.9, 0.95)),
                "observe": {var: state},
            }
        else:
            var = rng.choice(rng.sample(world["outcomes"], 1) + [rng.choice(tabled)])
            given = {p: rng.choice(variables[p]["states"]) for p in variables[var].get("parents", [])}
            states = variables[var]["states"]
            top = rng.choice(states)
            counts = {s: (rng.randint(10, 60) if s == top else rng.randint(0, 6)) for s in states}
            where = ", ".join(f"{p}={s}" for p, s in given.items()) or "in general"
            facts[fid] = {
                "text": f"Records of {var} ({where}): " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
                "source": "field records",
                "counts": {"variable": var, "given": given, "counts": counts},
            }
    agent_knows, human_knows = [], []
    for f in facts:
        (agent_knows if rng.random() < 0.5 else human_knows).append(f)
    if len(facts) >= 2 and not (agent_knows and human_knows):  # each party holds something to share
        more, none = (agent_knows, human_knows) if agent_knows else (human_knows, agent_knows)
        none.append(more.pop(rng.randrange(len(more))))
    roots = [v for v in variables if v != "act" and not variables[v].get("parents")]
    human_priors = {v: _probs(rng, len(variables[v]["states"]), 0.5) for v in rng.sample(roots, min(len(roots), 2))}
    agent_priors = {v: _probs(rng, len(variables[v]["states"]), 0.5) for v in rng.sample(roots, min(len(roots), 1))}

    def values() -> dict:
        while True:
            out = {o: {s: (0 if j == 0 else rng.randint(-100, 20)) for j, s in enumerate(variables[o]["states"])} for o in world["outcomes"]}
            if any(len(set(v.values())) > 1 for v in out.values()):
                return out

    return {
        "crux": 1,
        "name": name,
        "description": "A generated scenario at real size, for timing sessions.",
        "world": world,
        "facts": facts,
        "parties": {
            "agent": {"beliefs": {"priors": agent_priors, "knows": agent_knows}, "values": values()},
            "human": {"beliefs": {"priors": human_priors, "knows": human_knows}, "values": values()},
        },
    }
