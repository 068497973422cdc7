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

Some outcomes' utilities may be **stated** already (a party whose values are
only partly known).  They are held fixed within the same parametrisation: the
prior is the free one (independent normals for every beta x utility),
conditioned on the stated columns lying on the ray of the stated utilities.
Each particle keeps the radius of its draw of those columns, so the stated
columns are ``scale x stated`` with ``scale`` (beta in the units of the stated
utilities) of the chi law that radius has, and the other columns are drawn as
before.  Only the ratios of the stated utilities are fixed, not their size
against the unknown ones, which is what the questions find out.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from oracle.oracle import Oracle
from oracle.query import Query
from values.infer import INTERVAL, SCALED_SD, free_states, normalise, situation_features
from values.utility import TIE_TOLERANCE
from worldmodel.compile import BeliefState, Network

SETTLED = 0.95
POSSIBLE = 1e-12
"""A situation less probable than this under the party's beliefs is not asked about."""

Lottery = Mapping[str, Mapping[str, float]]
"""{outcome: {state: probability}}: what an option of a question leads to."""


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
    predicted: Mapping[str, Lottery]
    """Each option's outcomes: an action's predictions in the situation, or for "which is worse"
    the outcome state against its outcome's first state (harm=cat against harm=none)."""

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
        stated: Mapping[str, Mapping[str, float]] | None = None,
    ):
        net = oracle.model.network
        self.network = net
        self.actions = net.states[net.decision]
        self.states = free_states(net)
        self.stated = {o: dict(u) for o, u in (stated or {}).items()}
        """Outcomes whose utilities are known: {outcome: {state: utility}} (unlisted states 0)."""
        generator = torch.Generator().manual_seed(seed)
        draws = torch.randn(particles, len(self.states), generator=generator, dtype=torch.float64)
        self.scaled, self.scale, self.in_stated_units = _hold_stated(draws * SCALED_SD, self.states, self.stated, net)
        self.log_weight = torch.zeros(particles, dtype=torch.float64)
        upstream = situations if situations is not None else self._situations(oracle, beliefs)
        self.situations = [dict(s) for s in upstream]
        # the decision's situation ({}: what the party now believes) and the asked-about ones, in one call
        table = situation_features(oracle, beliefs, [{}] + self.situations).to("cpu", torch.float64)
        self.decision_features = table[0]  # (actions, states)
        self.questions = self._questions(table[1:])
        self.asked: list[tuple[Question, str]] = []

    @staticmethod
    def _situations(oracle: Oracle, beliefs: BeliefState) -> list[dict[str, str]]:
        """Every combination of the decision's non-descendant roots (small networks), else none;
        only those possible under the beliefs (a fact held for certain rules its other states out),
        built one root at a time, each given the ones before."""
        net = oracle.model.network
        roots = [v for v in net.order if not net.parents[v] and v != net.decision and v not in net.continuous]
        combos = 1
        for v in roots:
            combos *= net.card(v)
        if not roots or combos > 64:
            return []
        situations: list[dict[str, str]] = [{}]
        act = {net.decision: net.states[net.decision][0]}  # roots are upstream: any action will do
        for root in roots:
            queries = [Query(do=act, given=s, outcomes=[root]) for s in situations]
            answers = oracle.posterior_means(queries, [beliefs] * len(queries))
            situations = [
                {**s, root: state}
                for s, answer in zip(situations, answers)
                for state, p in zip(net.states[root], answer[root].tolist())
                if p > POSSIBLE
            ]
        return situations

    def _questions(self, table: torch.Tensor) -> list[Question]:
        """Every question whose answer depends on an unstated utility."""
        free = torch.tensor([o not in self.stated for o, _ in self.states])
        out = []
        for g, rows in zip(self.situations, table):
            for i, j in itertools.combinations(range(len(self.actions)), 2):
                if (rows[i] - rows[j])[free].abs().max() > 1e-9:
                    a, b = self.actions[i], self.actions[j]
                    predicted = {a: _lottery(self.network, self.states, rows[i]), b: _lottery(self.network, self.states, rows[j])}
                    out.append(Question("actions", a, b, g, rows[i] - rows[j], predicted))
        eye = torch.eye(len(self.states), dtype=torch.float64)
        for (a, sa), (b, sb) in itertools.combinations(list(enumerate(self.states)), 2):
            if sa[0] in self.stated and sb[0] in self.stated:
                continue  # both stated: nothing to ask
            # "which is worse": answering `first` means u(first) < u(second)
            first, second = f"{sa[0]}={sa[1]}", f"{sb[0]}={sb[1]}"
            predicted = {first: _lottery(self.network, self.states, eye[a]), second: _lottery(self.network, self.states, eye[b])}
            out.append(Question("outcomes", first, second, {}, eye[b] - eye[a], predicted))
        return out

    # -- the posterior ---------------------------------------------------------------------

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.log_weight, dim=0)

    def _best(self) -> torch.Tensor:
        """Each particle's best action (index) in the decision's situation."""
        return (self.scaled @ self.decision_features.T).argmax(-1)

    def decision(self) -> tuple[str, float]:
        """The most probable best action, and the posterior mass that agrees on it."""
        mass = torch.zeros(len(self.actions), dtype=torch.float64).index_add_(0, self._best(), self.weights)
        i = int(mass.argmax())
        return self.actions[i], float(mass[i])

    def settled(self, threshold: float = SETTLED) -> bool:
        return self.decision()[1] >= threshold

    def information(self, question: Question) -> float:
        """Expected information (nats) the answer gives about the decision: the mutual information
        between the answer and which action is best (questions that cannot change the decision
        are worth nothing, however much they say about the values)."""
        return float(self._information([question])[0])

    def _information(self, questions: Sequence[Question]) -> torch.Tensor:
        """:meth:`information` of many questions at once."""
        p = torch.sigmoid(self.scaled @ torch.stack([q.features for q in questions], dim=1))  # (particles, questions)
        w = self.weights
        best = torch.nn.functional.one_hot(self._best(), len(self.actions)).to(w)  # (particles, actions)

        def entropy(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-12, 1 - 1e-12)
            return -(q * torch.log(q) + (1 - q) * torch.log(1 - q))

        mass = w @ best
        given_best = ((w[:, None] * p).T @ best) / mass.clamp_min(1e-300)  # (questions, actions)
        return entropy(w @ p) - (entropy(given_best) * mass).sum(-1)

    def best_question(self) -> Question | None:
        best = self.most_informative()
        return None if best is None else best[0]

    def most_informative(self) -> tuple[Question, float] | None:
        """The question not asked yet whose answer tells most about the decision, and how much."""
        remaining = [q for q in self.questions if all(q is not asked for asked, _ in self.asked)]
        if not remaining:
            return None
        information = self._information(remaining)
        i = int(information.argmax())
        return remaining[i], float(information[i])

    def answer(self, question: Question, choice: str) -> None:
        """Reweigh the particles by the answer (``question.first`` or ``question.second``)."""
        if choice not in (question.first, question.second):
            raise ValueError(f"answer {question.first!r} or {question.second!r}")
        logit = self.scaled @ question.features
        self.log_weight += torch.nn.functional.logsigmoid(logit if choice == question.first else -logit)
        self.asked.append((question, choice))

    def _over_range(self, every_state: bool) -> tuple[list[tuple[str, str]], torch.Tensor]:
        """Per particle, each state's utility over the range of the joint outcome: stated outcomes
        as written (their first state need not be 0), the others from their first state at 0.
        Without ``every_state`` the first states of the outcomes are left out."""
        u, span = normalise(self.scaled, self.states)
        names, columns = [], []
        for o in dict.fromkeys(o for o, _ in self.states):
            first = self.network.states[o][0]
            base = self.scale * self.stated.get(o, {}).get(first, 0.0) / span
            if every_state:
                names.append((o, first))
                columns.append(base)
            for j, (outcome, s) in enumerate(self.states):
                if outcome == o:
                    names.append((o, s))
                    columns.append(u[:, j] + base)
        return names, torch.stack(columns, dim=-1)

    def summary(self, every_state: bool = False) -> dict:
        """Posterior means and 90% intervals of the normalised utilities (weighted particles): each
        state's utility over the range, stated utilities as written, the others from each
        outcome's first state at 0 (that state itself is listed with ``every_state``)."""
        names, x = self._over_range(every_state)
        w = self.weights
        out: dict = {}
        for j, (o, s) in enumerate(names):
            order = x[:, j].argsort()
            cdf = w[order].cumsum(0)
            pick = lambda q: float(x[order[min(int((cdf < q).sum()), len(cdf) - 1)], j])  # noqa: E731
            out.setdefault(o, {})[s] = {"mean": float(w @ x[:, j]), "interval": [pick(q) for q in INTERVAL]}
        return out

    def values(self) -> dict[str, dict[str, float]]:
        """The party's utilities as one point: the stated ones as stated, the others the posterior
        mean of their normalised utility, put in the units of the stated ones (the posterior mean
        of beta x utility over the range divided by that of beta over the range, so the whole is a
        positive multiple of the posterior mean of the normalised utilities and chooses as it
        does); when nothing non-zero is stated, the normalised means themselves."""
        u, span = normalise(self.scaled, self.states)
        w = self.weights
        per_unit = float(w @ (self.scale / span)) if self.in_stated_units else 1.0
        mean = (w @ u) / per_unit
        out = {o: dict(self.stated.get(o, {self.network.states[o][0]: 0.0})) for o, _ in self.states}
        for j, (o, s) in enumerate(self.states):
            if o not in self.stated:
                out[o][s] = float(mean[j])
        return out


def _hold_stated(
    scaled: torch.Tensor, states: list[tuple[str, str]], stated: Mapping[str, Mapping[str, float]], network: Network
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Particles drawn freely, with the stated columns moved onto the ray of the stated utilities
    (each outcome's from its first state) at the radius they were drawn with.  Returns the
    particles, each one's scale (beta in the stated units) and whether the stated units exist
    (some stated utility is not 0; otherwise the stated columns are 0 and the scale is 1)."""
    scale = torch.ones(len(scaled), dtype=torch.float64)
    fixed = [j for j, (o, _) in enumerate(states) if o in stated]
    if not fixed:
        return scaled, scale, False
    direction = torch.tensor(
        [stated[o].get(s, 0.0) - stated[o].get(network.states[o][0], 0.0) for o, s in (states[j] for j in fixed)],
        dtype=torch.float64,
    )
    length = direction.norm()
    scaled = scaled.clone()
    if length == 0:
        scaled[:, fixed] = 0.0
        return scaled, scale, False
    scale = scaled[:, fixed].norm(dim=-1) / length
    scaled[:, fixed] = scale[:, None] * direction
    return scaled, scale, True


def _lottery(network: Network, states: list[tuple[str, str]], column: torch.Tensor) -> dict[str, dict[str, float]]:
    """{outcome: {state: probability}} from the probabilities of the free states (each
    outcome's first state has the rest)."""
    out: dict[str, dict[str, float]] = {}
    for j, (o, s) in enumerate(states):
        out.setdefault(o, {network.states[o][0]: 1.0})[s] = float(column[j])
        out[o][network.states[o][0]] -= float(column[j])
    return out


def preferred(kind: str, first: str, second: str, predicted: Mapping[str, Lottery], values: Lottery) -> str:
    """How a party with these utilities ({outcome: {state: utility}}, unlisted 0) answers, without
    noise: the action with the higher expected utility, or the worse of two outcome states; ties
    go to the first option."""

    def expected(option: str) -> float:
        return sum(values.get(o, {}).get(s, 0.0) * p for o, dist in predicted[option].items() for s, p in dist.items())

    difference = expected(first) - expected(second)
    first_wins = difference >= -TIE_TOLERANCE if kind == "actions" else difference <= TIE_TOLERANCE
    return first if first_wins else second


def simulated_answer(question: Question, scaled_truth: torch.Tensor, generator: torch.Generator) -> str:
    """How a noisy-rational party with these (beta x) utilities answers."""
    p = torch.sigmoid(scaled_truth @ question.features)
    return question.first if float(torch.rand((), generator=generator, dtype=torch.float64)) < float(p) else question.second
