"""Exact answers on normal variables whose means are linear in normal parents (closed form).

Such a set of variables is jointly normal: x = c + B x + e with e ~ N(0, diag(d)),
so x ~ N(A c, A diag(d) A^T) with A = (I - B)^-1.  An intervention cuts a
variable's row and fixes it; evidence conditions the joint normal (Schur
complement).  Used when every variable a query touches is continuous; mixed
queries are sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from crux.oracle.engine import Batch, Posterior, per_call
from crux.oracle.query import QueryError
from crux.worldmodel.compile import BeliefState, Network

Z90 = 1.6448536269514722
"""The standard normal's 95% quantile: mean +- Z90 * sd is the 90% interval."""


def gaussian_marginals(
    network: Network,
    beliefs: BeliefState,
    variables: Sequence[str],
    do: Mapping[str, float],
    given: Mapping[str, float],
    targets: Sequence[str],
) -> dict[str, tuple[float, float]]:
    """``{target: (mean, sd)}`` given interventions and evidence, over the normal ``variables``
    (closed under parents once cut at the interventions; a discrete parent must be set by
    ``do``, as a state index, and only shifts its children's means)."""
    names = [v for v in network.order if v in set(variables) and v in network.continuous]
    index = {v: i for i, v in enumerate(names)}
    n = len(names)
    B = torch.zeros(n, n, dtype=torch.float64)
    c = torch.zeros(n, dtype=torch.float64)
    d = torch.zeros(n, dtype=torch.float64)
    for v in names:
        i = index[v]
        if v in do:
            c[i] = do[v]
            continue
        law = beliefs.normal[v]
        c[i] = law.intercept
        d[i] = law.scale**2
        for parent, weight in law.weights.items():
            B[i, index[parent]] = weight
        for parent, offsets in law.offsets.items():  # a discrete parent, set by the query
            c[i] += offsets.get(network.states[parent][int(do[parent])], 0.0)
    A = torch.linalg.inv(torch.eye(n, dtype=torch.float64) - B)
    mean = A @ c
    cov = A @ torch.diag(d) @ A.T
    if given:
        g = [index[v] for v in given]
        values = torch.tensor([given[v] for v in given], dtype=torch.float64)
        cov_gg = cov[g][:, g]
        if torch.linalg.matrix_rank(cov_gg) < len(g):
            raise QueryError("the evidence fixes variables that cannot vary independently: drop one of them")
        gain = torch.linalg.solve(cov_gg, cov[g]).T  # (n, |g|)
        mean = mean + gain @ (values - mean[g])
        cov = cov - gain @ cov[g]
    return {t: (float(mean[index[t]]), float(cov[index[t], index[t]].clamp_min(0).sqrt())) for t in targets}


class Gaussian:
    """Closed-form answers behind :class:`oracle.engine.Engine`: a batch of one structure whose
    targets touch normal variables only (a set discrete variable may shift their means), one
    query at a time; each target's posterior is ``(1, B, 4)``: mean, sd and the 90% interval."""

    name = "gaussian"
    exact = True

    def holds(self, batch: Batch) -> bool:
        return batch.one_structure and batch.members is not None and all(batch.kind(t) == "normal" for t in batch.targets)

    def most(self, batch: Batch) -> int:
        return per_call(batch)

    def answer(self, batch: Batch) -> Posterior:
        net, states = batch.work.network, batch.states
        out = {t: torch.empty(1, batch.size, 4, dtype=torch.float64) for t in batch.targets}
        for b, r in enumerate(batch.members):  # type: ignore[arg-type]
            do, given = dict(r.do), dict(r.given)
            needed = batch.work.needed(r.outcomes, list(do), list(given))
            state = states[0] if len(states) == 1 else states[b]
            for t, (mean, sd) in gaussian_marginals(net, state, sorted(needed), do, given, r.outcomes).items():
                out[t][0, b] = torch.tensor([mean, sd, mean - Z90 * sd, mean + Z90 * sd], dtype=torch.float64)
        return Posterior(batch.size, out, None)  # a density is never 0: no evidence is impossible

    def clear(self) -> None:
        """Nothing is kept between calls."""
