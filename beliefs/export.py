"""A party's belief graph as a networkx graph, and as JSON, DOT or GraphML.

Nodes are the variables (with their marginals: one distribution upstream of
the decision, one per action downstream) and the facts (with source,
reliability, origin and status); edges are causes (parent -> child) and
``informs`` (fact -> variable).
"""

from __future__ import annotations

import io
import json

import networkx as nx

from crux.beliefs.diff import upstream_variables
from crux.beliefs.facts import informs
from crux.beliefs.graph import BeliefGraph
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query


def belief_graph(graph: BeliefGraph, oracle: Oracle) -> nx.DiGraph:
    net = graph.network
    out = nx.DiGraph(party=graph.party, scenario=graph.scenario.name)
    upstream = set(upstream_variables(graph))
    downstream = [v for v in net.order if v not in upstream and v != net.decision]
    actions = net.states[net.decision] if net.decision else ()
    queries = [Query(do={net.decision: actions[0]} if net.decision else {}, outcomes=[v for v in net.order if v in upstream])]
    queries += [Query(do={net.decision: a}, outcomes=downstream) for a in actions] if downstream else []
    means = oracle.posterior_means(queries, [graph.state] * len(queries))
    for var in net.order:
        attrs = {"kind": "variable", "states": list(net.states[var])}
        if var == net.decision:
            attrs["decision"] = True
        elif var in upstream:
            attrs["marginal"] = [round(x, 6) for x in means[0][var].tolist()]
        else:
            attrs["marginal_by_action"] = {a: [round(x, 6) for x in m[var].tolist()] for a, m in zip(actions, means[1:])}
        if var in graph.priors:
            attrs["own_priors"] = True
        out.add_node(var, **attrs)
        for parent in net.parents[var]:
            out.add_edge(parent, var, kind="causes")
    for record in graph.records:
        fact = graph.scenario.facts[record.fact]
        out.add_node(
            f"fact:{record.fact}",
            kind="fact",
            id=record.fact,
            text=fact.text,
            source=fact.source,
            reliability=record.reliability if record.reliability is not None else fact.weight,
            origin=record.origin,
            turn=record.turn,
            status=record.status,
        )
        for var in informs(fact):
            out.add_edge(f"fact:{record.fact}", var, kind="informs")
    return out


def to_json(g: nx.DiGraph) -> dict:
    return {
        "party": g.graph["party"],
        "scenario": g.graph["scenario"],
        "variables": {n: {k: v for k, v in d.items() if k != "kind"} for n, d in g.nodes(data=True) if d["kind"] == "variable"},
        "facts": {d["id"]: {k: v for k, v in d.items() if k not in ("kind", "id")} for _, d in g.nodes(data=True) if d["kind"] == "fact"},
        "edges": [{"from": a, "to": b, "kind": d["kind"]} for a, b, d in g.edges(data=True)],
    }


def to_graphml(g: nx.DiGraph) -> str:
    flat = nx.DiGraph(**{k: str(v) for k, v in g.graph.items()})
    for n, d in g.nodes(data=True):
        flat.add_node(n, **{k: v if isinstance(v, (str, int, float, bool)) else json.dumps(v) for k, v in d.items()})
    flat.add_edges_from(g.edges(data=True))
    buffer = io.BytesIO()
    nx.write_graphml(flat, buffer)
    return buffer.getvalue().decode()


def to_dot(g: nx.DiGraph) -> str:
    def q(text: str) -> str:
        escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'

    lines = [f"digraph {q(g.graph['party'] + ' beliefs')} {{", "  rankdir=LR;"]
    for n, d in g.nodes(data=True):
        if d["kind"] == "variable":
            detail = d.get("marginal") or ("decision" if d.get("decision") else "by action")
            label = f"{n}\n{detail}"
            lines.append(f"  {q(n)} [shape=ellipse, label={q(label)}];")
        else:
            label = f"{d['id']} ({d['status']})\n{d['source']}, r={d['reliability']:g}"
            lines.append(f"  {q(n)} [shape=note, label={q(label)}];")
    for a, b, d in g.edges(data=True):
        style = "dashed" if d["kind"] == "informs" else "solid"
        lines.append(f"  {q(a)} -> {q(b)} [style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
