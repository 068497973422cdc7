"""The prediction oracle: "what happens if I do X, given Y?" with credible intervals.

The oracle predicts; it never ranks or recommends actions (deciding lives in
``dialogue/``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from oracle.device import resolve_device
from oracle.exact import ExactEngine, ImpossibleEvidence
from oracle.params import draw_tables
from oracle.query import Answer, Distribution, Query, QueryError, Resolved, resolve
from worldmodel.compile import BeliefState
from worldmodel.model import Model

INTERVAL = (0.05, 0.95)
"""Quantiles of the 90% credible interval."""

_CELLS_PER_CALL = 1 << 22
"""Bound on (draws x queries) contracted at once, to keep memory flat on big batches."""


class Oracle:
    """Answers queries on a model, exactly, on a device.

    ``samples`` draws of the Dirichlet rows give each probability its 90%
    credible interval; ``seed`` makes the draws reproducible.
    """

    def __init__(
        self,
        model: Model,
        *,
        device: str | torch.device = "auto",
        samples: int = 1000,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ):
        if samples < 2:
            raise QueryError(f"samples must be at least 2 to give an interval (got {samples})")
        self.model = model
        self.device = resolve_device(device)
        self.samples = samples
        self.seed = seed
        self.dtype = dtype
        self._engine = ExactEngine(model.network)
        self._tables: dict[str, dict[str, torch.Tensor]] = {}

    def ask(self, query: Query, beliefs: BeliefState | None = None) -> Answer:
        """One query; see :meth:`ask_many`."""
        return self.ask_many([query], beliefs)[0]

    def ask_many(self, queries: Sequence[Query], beliefs: BeliefState | None = None) -> list[Answer]:
        """Answer queries in order, running those of equal structure as one batched contraction.

        Each query is answered in the beliefs its ``as`` names, or in ``beliefs``
        when given (a belief state built by the caller, e.g. after an exchange of facts).
        """
        net = self.model.network
        resolved = [resolve(q, net, self.model.parties, self.model.default_party) for q in queries]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(resolved):
            groups.setdefault(r.structure, []).append(i)
        answers: list[Answer | None] = [None] * len(queries)
        for indices in groups.values():
            members = [resolved[i] for i in indices]
            state = beliefs if beliefs is not None else self.model.beliefs(members[0].party)
            tables = self._tables_for(members[0].party if beliefs is None else None, state)
            step = max(1, _CELLS_PER_CALL // (self.samples + 1))
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                try:
                    group_answers = self._answer_group(chunk, tables, state)
                except ImpossibleEvidence as err:
                    if len(queries) == 1:
                        raise
                    raise QueryError(f"query {indices[start + err.index] + 1}: {err}") from None
                for i, answer in zip(indices[start:], group_answers):
                    answers[i] = answer
        return answers  # type: ignore[return-value]

    def _tables_for(self, party: str | None, beliefs: BeliefState) -> dict[str, torch.Tensor]:
        """Mean and draws of every table, on the device (cached per party)."""
        if party is not None and party in self._tables:
            return self._tables[party]
        tables = {v: t.to(self.device, self.dtype) for v, t in draw_tables(beliefs, self.samples, self.seed).items()}
        if party is not None:
            self._tables[party] = tables
        return tables

    def _answer_group(
        self, members: list[Resolved], tables: dict[str, torch.Tensor], beliefs: BeliefState
    ) -> list[Answer]:
        first = members[0]
        do_vars = [v for v, _ in first.do]
        given_vars = [v for v, _ in first.given]

        def states(rows: list[tuple[tuple[str, int], ...]]) -> torch.Tensor:
            indices = [[i for _, i in row] for row in rows]
            return torch.tensor(indices, dtype=torch.long, device=self.device).reshape(len(rows), -1)

        likelihood = {v: t.to(self.device, self.dtype) for v, t in beliefs.likelihood.items()}
        posts = self._engine.marginals(
            tables,
            likelihood,
            do_vars,
            states([r.do for r in members]),
            given_vars,
            states([r.given for r in members]),
            first.outcomes,
        )
        summary = {}
        for target, post in posts.items():
            bounds = torch.quantile(post[1:], torch.tensor(INTERVAL, dtype=post.dtype, device=post.device), dim=0)
            summary[target] = (post[0].cpu().tolist(), bounds.permute(1, 2, 0).cpu().tolist())
        net = self.model.network
        return [
            Answer(
                query=r.query,
                method="exact",
                device=self.device.type,
                outcomes={
                    t: Distribution(states=list(net.states[t]), p=summary[t][0][b], interval=summary[t][1][b])
                    for t in r.outcomes
                },
            )
            for b, r in enumerate(members)
        ]
