"""bench/oracle.py's account of the work d-separation pruning saves (and what it skips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import opt_einsum
import pytest

from bench.oracle import children_of, make_queries, probe_semantics, requisite
from crux.oracle.exact import relevant
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.worldmodel.model import load_model

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["asia", "alarm", "insurance"])
def test_requisite_tables_alone_give_the_answer(name):
    """Contracting only the tables Bayes-ball keeps (with the set and seen states fixed) gives the
    oracle's answer to every query with possible evidence, and on some queries it keeps fewer
    tables than Crux's ancestral pruning (so the count the bench prints is not Crux's own)."""
    model = load_model(DATA / f"{name}.bif.gz")
    net, world = model.network, model.beliefs("world")
    tables = {v: world.mean(v).numpy() for v in net.order}
    oracle = Oracle(model, device="cpu", method="exact")
    symbol = {v: opt_einsum.get_symbol(i) for i, v in enumerate(net.order)}
    fewer = 0
    children = children_of(net)
    for kind in ("same", "mixed"):
        for target, x, xi, evidence in make_queries(net, tables, 40, kind, np.random.default_rng(1)):
            seen = dict(evidence)
            kept = requisite(net, children, target, x, seen)
            assert target in kept and x not in kept
            assert kept <= relevant(net, [target], [x], list(seen))
            fewer += len(kept) < len(relevant(net, [target], [x], list(seen)) - {x})
            operands, terms = [], []
            for v in kept:
                operands.append(tables[v])
                terms.append("".join(symbol[u] for u in (*net.parents[v], v)))
            scope = set("".join(terms))
            for v, state in [(x, xi), *seen.items()]:
                if symbol[v] in scope:
                    operands.append(np.eye(net.card(v))[state])
                    terms.append(symbol[v])
            joint = opt_einsum.contract(",".join(terms) + "->" + symbol[target], *operands)
            query = Query(do={x: net.states[x][xi]}, given={e: net.states[e][i] for e, i in seen.items()}, outcomes=[target])
            want = oracle.posterior_means([query])[0][target].numpy()
            assert np.allclose(joint / joint.sum(), want, atol=1e-12), (target, x, seen)
    assert fewer > 0


def test_probe_shows_who_weighs_evidence_that_d_separation_hides():
    said = probe_semantics()
    assert said["crux"].startswith("refuses")
    assert said["pyAgrum targeted"] == "answers 0.60, 0.40"  # P(A=a1) = 0, yet C's row given B
