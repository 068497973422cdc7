"""Elicitation: the next question that pins a party's values down, until the decision is settled.

The values are uncertain: a cloud of weighted particles of beta x utilities (the
parametrisation of :mod:`values.infer`).  A question is either a choice between
two actions in a concrete situation, or a comparison of two outcome states; its
answer is noisy-rational (the better option with probability
sigmoid(beta x difference)).  The next question is the one whose answer carries
the most expected information about the decision; each answer reweighs the
particles.  Elicitation stops when the decision — the best action under the
party's beliefs — no longer depends on what is still uncertain (the same for
``settled`` of the posterior mass).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from oracle.oracle import Oracle
from values.infer import SCALED_SD, free_states, normalise, situation_features
from worldmodel.compile import BeliefState

SETTLED = 0.95


@dataclass(frozen=True)
class Question:
    """``kind`` "actions": in situation ``given``, ``first`` or ``second`` (actions)?
    ``kind`` "outcomes": which is worse, ``first`` or ``second`` (outcome=state)?"""

    kind: str
    first: str
    second: str
    given: Mapping[str, str]
    features: torch.Tensor
    """Difference of the two options' features: answer "first" has logit scaled @ features."""

    def text(self) -> str:
        if self.kind == "actions":
            seen = ", ".join(f"{v}={s}" for v, s in self.given.items()) or "nothing more"
            return f"Seeing {seen}: would you rather {self.first} or {self.second}?"
        return f"Which is worse: {self.first} or {self.second}?"


class Elicitor:
    """Particles over a party's values, the questions that can be asked, and the decision."""

    def __init__(
        self,
        oracle: Oracle,
        beliefs: BeliefState,
        situations: Sequence[Mapping[str, str]] | None = None,
        particles: int = 20000,
        seed: int = 0,
    ):
        net = oracle.model.network
        self.network = net
        self.actions = net.states[net.decision]
        self.states = free_states(net)
        generator = torch.Generator().manual_seed(seed)
        self.scaled = torch.randn(particles, len(self.states), generator=generator, dtype=torch.float64) * SCALED_SD
        self.log_weight = torch.zeros(particles, dtype=torch.float64)
        upstream = situations if situations is not None else self._situations(net)
        self.situations = [dict(s) for s in upstream]
        # the decision's situation ({}: what the party now believes) and the asked-about ones, in one call
        table = situation_features(oracle, beliefs, [{}] + self.situations)
        self.decision_features = table[0]  # (actions, states)
        self.questions = self._questions(table[1:])
        self.asked: list[tuple[Question, str]] = []

    @staticmethod
    def _situations(net) -> list[dict[str, str]]:
        """Every combination of the decision's non-descendant roots (small networks), else none."""
        roots = [v for v in net.order if not net.parents[v] and v != net.decision and v not in net.continuous]
        combos = 1
        for v in roots:
            combos *= net.card(v)
        if not roots or combos > 64:
            return []
        return [dict(zip(roots, c)) for c in itertools.product(*(net.states[v] for v in roots))]

    def _questions(self, table: torch.Tensor) -> list[Question]:
        out = []
        for g, rows in zip(self.situations, table):
            for i, j in itertools.combinations(range(len(self.actions)), 2):
                if (rows[i] - rows[j]).abs().max() > 1e-9:
                    out.append(Question("actions", self.actions[i], self.actions[j], g, rows[i] - rows[j]))
        eye = torch.eye(len(self.states), dtype=torch.float64)
        for (a, sa), (b, sb) in itertools.combinations(list(enumerate(self.states)), 2):
            # "which is worse": answering `first` means u(first) < u(second)
            out.append(Question("outcomes", f"{sa[0]}={sa[1]}", f"{sb[0]}={sb[1]}", {}, eye[b] - eye[a]))
        return out

    # -- the posterior ---------------------------------------------------------------------

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.log_weight, dim=0)

    def decision(self) -> tuple[str, float]:
        """The most probable best action, and the posterior mass that agrees on it."""
        best = (self.scaled @ self.decision_features.T).argmax(-1)
        mass = torch.zeros(len(self.actions), dtype=torch.float64).index_add_(0, best, self.weights)
        i = int(mass.argmax())
        return self.actions[i], float(mass[i])

    def settled(self, threshold: float = SETTLED) -> bool:
        return self.decision()[1] >= threshold

    def information(self, question: Question) -> float:
        """Expected information (nats) the answer gives about the decision: the mutual information
        between the answer and which action is best (questions that cannot change the decision
        are worth nothing, however much they say about the values)."""
        p = torch.sigmoid(self.scaled @ question.features)
        w = self.weights
        best = (self.scaled @ self.decision_features.T).argmax(-1)

        def entropy(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-12, 1 - 1e-12)
            return -(q * torch.log(q) + (1 - q) * torch.log(1 - q))

        mass = torch.zeros(len(self.actions), dtype=torch.float64).index_add_(0, best, w)
        yes = torch.zeros(len(self.actions), dtype=torch.float64).index_add_(0, best, w * p)
        given_best = yes / mass.clamp_min(1e-300)
        total = (w * p).sum()
        return float(entropy(total) - (mass * entropy(given_best)).sum())

    def best_question(self) -> Question | None:
        remaining = [q for q in self.questions if all(q is not asked for asked, _ in self.asked)]
        if not remaining:
            return None
        return max(remaining, key=self.information)

    def answer(self, question: Question, choice: str) -> None:
        """Reweigh the particles by the answer (``question.first`` or ``question.second``)."""
        if choice not in (question.first, question.second):
            raise ValueError(f"answer {question.first!r} or {question.second!r}")
        logit = self.scaled @ question.features
        self.log_weight += torch.nn.functional.logsigmoid(logit if choice == question.first else -logit)
        self.asked.append((question, choice))

    def summary(self) -> dict:
        """Posterior means and 90% intervals of the normalised utilities (weighted particles)."""
        u, _ = normalise(self.scaled, self.states)
        w = self.weights
        out: dict = {}
        for j, (o, s) in enumerate(self.states):
            order = u[:, j].argsort()
            cdf = w[order].cumsum(0)
            pick = lambda q: float(u[order[min(int((cdf < q).sum()), len(cdf) - 1)], j])  # noqa: E731
            out.setdefault(o, {})[s] = {"mean": float((w * u[:, j]).sum()), "interval": [pick(0.05), pick(0.95)]}
        return out


def simulated_answer(question: Question, scaled_truth: torch.Tensor, generator: torch.Generator) -> str:
    """How a noisy-rational party with these (beta x) utilities answers."""
    p = torch.sigmoid(scaled_truth @ question.features)
    return question.first if float(torch.rand((), generator=generator, dtype=torch.float64)) < float(p) else question.second
