"""Elicitation: the next question that pins a party's values down, until the decision is settled.

The values are uncertain: a cloud of particles of beta x utilities (the parametrisation of
:mod:`values.infer`), each outcome's reference state at 0.  Four kinds of question, in the order
decision analysis asks them (Chajewska, Koller and Parr 2000):

- **sign**: is a state better or worse than its outcome's reference?  Asked for every state whose
  sign is unknown (and matters) before any question of size.  A sign, given or stated in the
  scenario (``value_signs``), is a hard constraint: the particles' column is folded onto that
  sign (the prior is symmetric and independent per column, so folding is exactly conditioning on
  it), and no particle ever has the other sign.
- **lottery** (standard gamble): X for sure, or a p chance of Y (and otherwise the reference)?  p is
  set at quantiles of the posterior of u(X)/u(Y), so each answer splits what is still uncertain;
  a run of them bisects the ratio.
- **outcomes**: which of two states is worse?
- **actions**: which of two actions, as things stand (under the party's present beliefs: the
  decision itself) or in a concrete situation?

Answers other than signs are noisy-rational (the better option with probability sigmoid(beta x
difference)) and reweigh the particles.  The next question is the one with the largest expected
reduction in the probability of deciding wrongly; where no question reduces it (the decision
leans too far for one answer to turn it), the one that tells most about the decision (mutual
information).  The decision is settled when 95% of the posterior agrees on the best action.

Answers that cannot all hold (no utilities satisfy them all, noise aside: an ordering cycle, a
lottery against an earlier ordering) are found by a small linear programme; :meth:`conflicts`
names the fewest earlier answers that clash with the last one, for the person to withdraw one.

Some outcomes' utilities may be **stated** already.  They are held fixed within the same
parametrisation: the stated columns lie on the ray of the stated utilities (each particle keeps
the radius of its draw of those columns, so ``scale`` is beta in the stated units), and the other
columns are drawn as before.  Only the ratios of the stated utilities are fixed, not their size
against the unknown ones, which is what the questions find out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from crux.oracle.oracle import Oracle
from crux.oracle.predict import possible_situations
from crux.values.infer import INTERVAL, SCALED_SD, free_states, normalise, situation_features
from crux.values.utility import TIE_TOLERANCE
from crux.worldmodel.compile import BeliefState, Network

SETTLED = 0.95
"""The decision is settled when this much of the posterior agrees on the best action."""
NOTHING_TO_LEARN = 1e-9
"""A question whose answer is expected to tell less than this (nats) about the decision is not worth asking."""
QUANTILES = (0.2, 0.35, 0.5, 0.65, 0.8)
"""Where in the posterior of a ratio u(X)/u(Y) a lottery's chance is put: at these quantiles (each
splits what is uncertain), and at the middle of the span between the quantiles :data:`SPAN`, cut at
1 (a chance is at most 1: each such answer halves what is still plausible, and a run of them
bisects the ratio)."""
SPAN = (0.025, 0.975)
RATIONALITY = (1.0, 30.0)
"""Each particle's rationality (beta) is that of :mod:`values.infer`'s prior times a factor drawn
log-uniformly from this range: whether a person answers nearly at random or nearly without noise is
not known beforehand, and answers that keep agreeing should be able to say it (without the wide
range, a person who answers near ties consistently is taken for a noisy one, and the questions run
out before the decision settles: bench/findings/elicit_cpu_2core.txt)."""
MAGNITUDE = 10.0
"""Each state's utility is drawn, besides, times a factor log-uniform in [1/MAGNITUDE, MAGNITUDE]: the
sizes of different harms may differ by orders of magnitude (a cat against a squirrel), so the prior
does not presume them alike, and signs alone seldom settle a decision that turns on sizes."""
CHUNK = 256
"""Questions scored at once (particles x questions in memory)."""

Lottery = Mapping[str, Mapping[str, float]]
"""{outcome: {state: probability}}: what an option of a question leads to."""
WORSE, BETTER = "worse", "better"


@dataclass(frozen=True)
class Question:
    """One question and what its answers mean.

    ``features``: answering ``first`` has logit ``scaled @ features`` (for a sign, the answer
    ``worse`` means ``scaled @ features > 0``, held as certain)."""

    kind: str
    """"sign", "lottery", "outcomes" or "actions"."""
    first: str
    second: str
    given: Mapping[str, str]
    features: torch.Tensor
    predicted: Mapping[str, Lottery]
    """What each option leads to: an action's predictions in the situation; an outcome state, a
    sure thing or a lottery against the outcomes' reference states."""
    column: int | None = None
    """A sign question: the column of the state asked about."""
    text_: str = ""

    def text(self) -> str:
        return self.text_


def _situation(given: Mapping[str, str]) -> str:
    """``road is wet, animal is cat and oncoming is car``."""
    parts = [f"{v} is {s}" for v, s in given.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


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
        signs: Mapping[str, int] | None = None,
    ):
        net = oracle.model.network
        self.network = net
        self.actions = net.states[net.decision]
        self.states = free_states(net)
        self.stated = {o: dict(u) for o, u in (stated or {}).items()}
        """Outcomes whose utilities are known: {outcome: {state: utility}} (unlisted states 0)."""
        generator = torch.Generator().manual_seed(seed)
        draws = _prior(particles, len(self.states), generator)
        self._draws, self.scale, self.in_stated_units = _hold_stated(draws, self.states, self.stated, net)
        self.stated_signs = _stated_signs(self.states, self.stated, net)
        """Column -> sign (+1 better, -1 worse than the reference) of the stated states that are not 0."""
        names = {f"{o}={s}": j for j, (o, s) in enumerate(self.states)}
        self.given_signs = {names[name]: sign for name, sign in (signs or {}).items() if names.get(name) is not None}
        """Column -> sign the party stated without a number (``value_signs``)."""
        self.asked: list[tuple[Question, str]] = []
        self.scaled = self._draws
        self.log_weight = torch.zeros(particles, dtype=torch.float64)
        self._refold()
        upstream = situations if situations is not None else self._situations(oracle, beliefs)
        self.situations = [dict(s) for s in upstream]
        # the decision's situation ({}: what the party now believes) and the asked-about ones, in one call
        table = situation_features(oracle, beliefs, [{}] + self.situations).to("cpu", torch.float64)
        self.decision_features = table[0]  # (actions, states)
        self.questions = self._questions([{}] + self.situations, table)
        """The fixed questions (signs, orderings, situations); lotteries are made for the posterior as it stands."""

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
        act = {net.decision: net.states[net.decision][0]}  # roots are upstream: any action will do
        return possible_situations(oracle, beliefs, roots, do=act)

    # -- questions --------------------------------------------------------------------------

    def _name(self, j: int) -> str:
        o, s = self.states[j]
        return f"{o}={s}"

    def _reference(self, j: int) -> str:
        o = self.states[j][0]
        return f"{o}={self.network.reference(o)}"

    def _lottery(self, column: torch.Tensor) -> dict[str, dict[str, float]]:
        return _lottery(self.network, self.states, column)

    def _questions(self, situations: Sequence[Mapping[str, str]], table: torch.Tensor) -> list[Question]:
        """Every sign, ordering and situation question whose answer depends on an unstated utility."""
        free = torch.tensor([o not in self.stated for o, _ in self.states])
        eye = torch.eye(len(self.states), dtype=torch.float64)
        out = []
        for j in range(len(self.states)):
            if free[j]:
                name, ref = self._name(j), self._reference(j)
                predicted = {WORSE: self._lottery(eye[j]), BETTER: self._lottery(eye[j] * 0)}
                text = f"Is {name} better or worse than {ref}?"
                out.append(Question("sign", WORSE, BETTER, {}, -eye[j], predicted, column=j, text_=text))
        for (a, sa), (b, sb) in itertools.combinations(list(enumerate(self.states)), 2):
            if sa[0] in self.stated and sb[0] in self.stated:
                continue  # both stated: nothing to ask
            # "which is worse": answering `first` means u(first) < u(second)
            first, second = self._name(a), self._name(b)
            predicted = {first: self._lottery(eye[a]), second: self._lottery(eye[b])}
            text = f"Which would be worse: {first} or {second}?"
            out.append(Question("outcomes", first, second, {}, eye[b] - eye[a], predicted, text_=text))
        for g, rows in zip(situations, table):
            for i, j in itertools.combinations(range(len(self.actions)), 2):
                if (rows[i] - rows[j])[free].abs().max() > 1e-9:
                    a, b = self.actions[i], self.actions[j]
                    predicted = {a: self._lottery(rows[i]), b: self._lottery(rows[j])}
                    text = f"If {_situation(g)}, would you rather {a} or {b}?" if g else f"As things stand, would you rather {a} or {b}?"
                    out.append(Question("actions", a, b, g, rows[i] - rows[j], predicted, text_=text))
        return out

    def lotteries(self) -> list[Question]:
        """Standard gambles between two states of known, like sign (at most one of them stated):
        X for sure, or a p chance of Y, p at quantiles of the posterior of u(X)/u(Y)."""
        signs = self.signs()
        known = [j for j in range(len(self.states)) if j in signs]
        eye = torch.eye(len(self.states), dtype=torch.float64)
        rest = " and ".join(f"{o}={self.network.reference(o)}" for o in dict.fromkeys(o for o, _ in self.states))
        out = []
        for x, y in itertools.permutations(known, 2):
            if signs[x] != signs[y] or (self.states[x][0] in self.stated and self.states[y][0] in self.stated):
                continue
            chances = set()
            quantiles = self.ratio(x, y, (*QUANTILES, *SPAN))
            middle = (quantiles[-2] + min(quantiles[-1], 1.0)) / 2  # halves what is still plausible below 1
            for q in [*quantiles[: len(QUANTILES)], middle]:
                p = round(q, 2)
                if 0.02 <= p <= 0.98:  # a chance, not a certainty
                    chances.add(p)
            for p in sorted(chances):
                sure, gamble = f"{self._name(x)} for sure", f"a {100 * p:.0f}% chance of {self._name(y)}"
                predicted = {sure: self._lottery(eye[x]), gamble: self._lottery(p * eye[y])}
                text = f"Would you rather have {sure}, or {gamble} (and otherwise {rest})?"
                out.append(Question("lottery", sure, gamble, {}, eye[x] - p * eye[y], predicted, text_=text))
        return out

    def ratio(self, x: int, y: int, quantiles: Sequence[float] = (0.5,)) -> list[float]:
        """Quantiles of the posterior of u(X)/u(Y) (columns ``x``, ``y``)."""
        return _weighted_quantiles(self.scaled[:, x] / self.scaled[:, y], self.weights, quantiles)

    def candidates(self) -> list[Question]:
        """What may be asked now: the signs still unknown (while one of them could tell anything
        about the decision), else every question of size not asked yet."""
        return self._pool()[0]

    def _pool(self) -> tuple[list[Question], torch.Tensor, torch.Tensor]:
        """:meth:`candidates` with their scores (:meth:`_scores`), each question scored once."""
        signs = self.signs()
        pending = [q for q in self.questions if q.kind == "sign" and q.column not in signs]
        if pending:
            reduction, information = self._scores(pending)
            useful = information > NOTHING_TO_LEARN
            if bool(useful.any()):
                return [q for q, u in zip(pending, useful.tolist()) if u], reduction[useful], information[useful]
        asked = [q for q, _ in self.asked]
        taken = {(q.first, q.second) for q in asked}
        sizes = [q for q in self.questions if q.kind != "sign" and all(q is not a for a in asked)]
        sizes += [q for q in self.lotteries() if (q.first, q.second) not in taken]
        if not sizes:
            return [], torch.empty(0), torch.empty(0)
        return sizes, *self._scores(sizes)

    # -- the posterior ---------------------------------------------------------------------

    def signs(self) -> dict[int, int]:
        """Column -> sign known for certain: stated, given in the scenario, or answered."""
        out = {**self.stated_signs, **self.given_signs}
        for q, choice in self.asked:
            if q.kind == "sign":
                out[q.column] = -1 if choice == WORSE else 1  # type: ignore[index]
        return out

    def _refold(self) -> None:
        """Particles on the known signs, weighed by every other answer."""
        scaled = self._draws.clone()
        for j, sign in self.signs().items():
            if j not in self.stated_signs:  # the stated columns lie on their ray already
                scaled[:, j] = sign * scaled[:, j].abs()
        self.scaled = scaled
        log_weight = torch.zeros(len(scaled), dtype=torch.float64)
        for q, choice in self.asked:
            if q.kind != "sign":
                logit = scaled @ q.features
                log_weight += torch.nn.functional.logsigmoid(logit if choice == q.first else -logit)
        self.log_weight = log_weight

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
        return float(self._scores([question])[1][0])

    def _scores(self, questions: Sequence[Question]) -> tuple[torch.Tensor, torch.Tensor]:
        """For each question: the expected reduction in the probability of deciding wrongly, and
        the mutual information between its answer and the best action."""
        w = self.weights
        best = torch.nn.functional.one_hot(self._best(), len(self.actions)).to(w)  # (particles, actions)
        mass = w @ best
        wrong = 1 - mass.max()
        reductions, informations = [], []
        for start in range(0, len(questions), CHUNK):
            part = questions[start : start + CHUNK]
            logits = self.scaled @ torch.stack([q.features for q in part], dim=1)  # (particles, questions)
            certain = torch.tensor([q.kind == "sign" for q in part])
            p = torch.where(certain, (logits > 0).to(w), torch.sigmoid(logits))
            first = (w[:, None] * p).T @ best  # (questions, actions): mass on each best action with answer first
            second = mass - first
            reductions.append(first.max(-1).values + second.max(-1).values - (1 - wrong))
            p_first = first.sum(-1)
            informations.append(
                _entropy(p_first) - (_entropy(first / mass.clamp_min(1e-300)) * mass).sum(-1)
            )
        return torch.cat(reductions), torch.cat(informations)

    def next_question(self, asked: int, limit: int) -> tuple[tuple[Question, float] | None, str | None]:
        """The stop rule of every front end: ``((question, information), None)`` to ask next (see
        :meth:`most_informative`), or ``(None, why)`` when asking is over: ``settled`` (the
        decision no longer depends on the values), ``limit`` (``asked`` reached ``limit``) or
        ``exhausted`` (no question could tell more)."""
        if self.settled():
            return None, "settled"
        if asked >= limit:
            return None, "limit"
        best = self.most_informative()
        if best is None or best[1] <= NOTHING_TO_LEARN:
            return None, "exhausted"
        return best, None

    def best_question(self) -> Question | None:
        best = self.most_informative()
        return None if best is None else best[0]

    def most_informative(self) -> tuple[Question, float] | None:
        """The question to ask next and what its answer is expected to tell about the decision
        (nats): the largest expected reduction in the probability of deciding wrongly, or, where
        no answer could turn the decision, the most information about it."""
        remaining, reduction, information = self._pool()
        if not remaining:
            return None
        if float(reduction.max()) > 1e-6:
            score = reduction + 1e-3 * information  # ties: the one that tells more
        else:
            score = information
        i = int(score.argmax())
        return remaining[i], float(information[i])

    def answer(self, question: Question, choice: str) -> None:
        """Take an answer (``question.first`` or ``question.second``): a sign is certain from now
        on; any other answer reweighs the particles."""
        if choice not in (question.first, question.second):
            raise ValueError(f"answer {question.first!r} or {question.second!r}")
        self.asked.append((question, choice))
        if question.kind == "sign":
            self._refold()
        else:
            logit = self.scaled @ question.features
            self.log_weight += torch.nn.functional.logsigmoid(logit if choice == question.first else -logit)

    def withdraw(self, index: int) -> None:
        """Take an answer back (its index in :attr:`asked`); the posterior is as if it was never given."""
        del self.asked[index]
        self._refold()

    def conflicts(self) -> list[int]:
        """The fewest earlier answers (indices in :attr:`asked`) that cannot hold together with
        the last one, noise aside; empty when they can all hold."""
        if not self.asked:
            return []
        last = len(self.asked) - 1
        rows = [self._constraint(i) for i in range(len(self.asked))]
        fixed, equal = self._fixed()
        if _feasible(rows + fixed, equal):
            return []
        keep = list(range(last))
        for i in list(keep):  # deletion filter: drop every answer the clash does not need
            trial = [k for k in keep if k != i]
            if not _feasible([rows[k] for k in trial] + [rows[last]] + fixed, equal):
                keep = trial
        return keep

    def _constraint(self, i: int) -> torch.Tensor:
        """The answer as ``c @ scaled > 0``."""
        q, choice = self.asked[i]
        return q.features if choice == q.first else -q.features

    def _fixed(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """What holds before any answer, as constraints: the signs given in the scenario and the
        stated columns' ray (inequalities, equalities)."""
        eye = torch.eye(len(self.states), dtype=torch.float64)
        signs, equal = _ray(self.states, self.stated, self.network)
        return [sign * eye[j] for j, sign in self.given_signs.items()] + signs, equal

    def _over_range(self, every_state: bool) -> tuple[list[tuple[str, str]], torch.Tensor]:
        """Per particle, each state's utility over the range of the joint outcome: stated outcomes
        as written (their reference state need not be 0), the others from their reference at 0.
        Without ``every_state`` the reference states are left out."""
        u, span = normalise(self.scaled, self.states)
        names, columns = [], []
        for o in dict.fromkeys(o for o, _ in self.states):
            ref = self.network.reference(o)
            base = self.scale * self.stated.get(o, {}).get(ref, 0.0) / span
            if every_state:
                names.append((o, ref))
                columns.append(base)
            for j, (outcome, s) in enumerate(self.states):
                if outcome == o:
                    names.append((o, s))
                    columns.append(u[:, j] + base)
        return names, torch.stack(columns, dim=-1)

    def summary(self, every_state: bool = False) -> dict:
        """Posterior means and 90% intervals of the normalised utilities (weighted particles): each
        state's utility over the range, stated utilities as written, the others from each
        outcome's reference state at 0 (that state itself is listed with ``every_state``)."""
        names, x = self._over_range(every_state)
        w = self.weights
        out: dict = {}
        for j, (o, s) in enumerate(names):
            out.setdefault(o, {})[s] = {"mean": float(w @ x[:, j]), "interval": _weighted_quantiles(x[:, j], w, INTERVAL)}
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
        out = {o: dict(self.stated.get(o, {self.network.reference(o): 0.0})) for o, _ in self.states}
        for j, (o, s) in enumerate(self.states):
            if o not in self.stated:
                out[o][s] = float(mean[j])
        return out


def _prior(particles: int, states: int, generator: torch.Generator) -> torch.Tensor:
    """Draws of beta x utilities: independent normals (as in :mod:`values.infer`), each particle
    scaled by a log-uniform rationality factor (:data:`RATIONALITY`); symmetric about 0 in every
    column, so folding a column onto a sign is conditioning on it."""
    def log_uniform(shape: tuple[int, int], low: float, high: float) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))

    normal = torch.randn(particles, states, generator=generator, dtype=torch.float64) * SCALED_SD
    return normal * log_uniform((particles, 1), *RATIONALITY) * log_uniform((particles, states), 1 / MAGNITUDE, MAGNITUDE)


def _entropy(q: torch.Tensor) -> torch.Tensor:
    q = q.clamp(1e-12, 1 - 1e-12)
    return -(q * torch.log(q) + (1 - q) * torch.log(1 - q))


def _weighted_quantiles(x: torch.Tensor, w: torch.Tensor, qs: Sequence[float]) -> list[float]:
    order = x.argsort()
    cdf = w[order].cumsum(0)
    return [float(x[order[min(int((cdf < q).sum()), len(cdf) - 1)]]) for q in qs]


def _feasible(rows: Sequence[torch.Tensor], equal: Sequence[torch.Tensor] = ()) -> bool:
    """Whether some utilities satisfy every ``c @ x > 0`` and every ``e @ x = 0`` (homogeneous, so
    the strict inequalities may as well be ``c @ x >= 1``): a small linear programme."""
    a = torch.stack(list(rows)).numpy()
    a = a[np.abs(a).max(axis=1) > 1e-12]
    if not len(a):
        return True
    eq = {"A_eq": torch.stack(list(equal)).numpy(), "b_eq": np.zeros(len(equal))} if equal else {}
    result = linprog(np.zeros(a.shape[1]), A_ub=-a, b_ub=-np.ones(len(a)), bounds=(None, None), method="highs", **eq)
    return result.status != 2  # 2: infeasible


def _ray(
    states: list[tuple[str, str]], stated: Mapping[str, Mapping[str, float]], network: Network
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The stated columns on the ray of the stated utilities, as constraints: each non-zero one
    has its sign (``c @ x > 0``), a zero one stays 0, and all keep their ratios (``e @ x = 0``)."""
    eye = torch.eye(len(states), dtype=torch.float64)
    direction = _direction(states, stated, network)
    signs = [eye[j] * (1.0 if d > 0 else -1.0) for j, d in direction.items() if d != 0]
    equal = [eye[j] for j, d in direction.items() if d == 0]
    nonzero = [j for j, d in direction.items() if d != 0]
    equal += [eye[a] / direction[a] - eye[b] / direction[b] for a, b in zip(nonzero, nonzero[1:])]
    return signs, equal


def _direction(states: list[tuple[str, str]], stated: Mapping[str, Mapping[str, float]], network: Network) -> dict[int, float]:
    """Column -> the stated utility of its state less that of its outcome's reference (stated outcomes only)."""
    return {
        j: stated[o].get(s, 0.0) - stated[o].get(network.reference(o), 0.0) for j, (o, s) in enumerate(states) if o in stated
    }


def _stated_signs(states: list[tuple[str, str]], stated: Mapping[str, Mapping[str, float]], network: Network) -> dict[int, int]:
    return {j: 1 if d > 0 else -1 for j, d in _direction(states, stated, network).items() if d != 0}


def _hold_stated(
    scaled: torch.Tensor, states: list[tuple[str, str]], stated: Mapping[str, Mapping[str, float]], network: Network
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Particles drawn freely, with the stated columns moved onto the ray of the stated utilities
    (each outcome's from its reference state) at the radius they were drawn with.  Returns the
    particles, each one's scale (beta in the stated units) and whether the stated units exist
    (some stated utility is not 0; otherwise the stated columns are 0 and the scale is 1)."""
    scale = torch.ones(len(scaled), dtype=torch.float64)
    along = _direction(states, stated, network)
    fixed = list(along)
    if not fixed:
        return scaled, scale, False
    direction = torch.tensor([along[j] for j in fixed], dtype=torch.float64)
    length = direction.norm()
    scaled = scaled.clone()
    if length == 0:
        scaled[:, fixed] = 0.0
        return scaled, scale, False
    scale = scaled[:, fixed].norm(dim=-1) / length
    scaled[:, fixed] = scale[:, None] * direction
    return scaled, scale, True


def _lottery(network: Network, states: list[tuple[str, str]], column: torch.Tensor) -> dict[str, dict[str, float]]:
    """{outcome: {state: probability}} from the probabilities of the free states (each outcome's
    reference state has the rest)."""
    out: dict[str, dict[str, float]] = {}
    for j, (o, s) in enumerate(states):
        ref = network.reference(o)
        out.setdefault(o, {ref: 1.0})[s] = float(column[j])
        out[o][ref] -= float(column[j])
    return out


def preferred(kind: str, first: str, second: str, predicted: Mapping[str, Lottery], values: Lottery) -> str:
    """How a party with these utilities ({outcome: {state: utility}}, unlisted 0) answers, without
    noise: the option with the higher expected utility ("actions", "lottery"), or the worse one
    ("outcomes"; for a "sign", ``worse`` when the state is worse than the reference); ties go to
    the first option."""

    def expected(option: str) -> float:
        return sum(values.get(o, {}).get(s, 0.0) * p for o, dist in predicted[option].items() for s, p in dist.items())

    difference = expected(first) - expected(second)
    first_wins = difference >= -TIE_TOLERANCE if kind in ("actions", "lottery") else difference <= TIE_TOLERANCE
    return first if first_wins else second


def simulated_answer(question: Question, scaled_truth: torch.Tensor, generator: torch.Generator) -> str:
    """How a noisy-rational party with these (beta x) utilities answers (a sign without noise)."""
    logit = scaled_truth @ question.features
    if question.kind == "sign":
        return question.first if float(logit) >= 0 else question.second
    p = torch.sigmoid(logit)
    return question.first if float(torch.rand((), generator=generator, dtype=torch.float64)) < float(p) else question.second
