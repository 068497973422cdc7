"""The value step of a session: the human's unknown values, asked after the exchange.

When the human's values are unknown (all of them, or some outcomes'), the
engine asks for them once the exchange is over, under the human's beliefs as
the exchange left them.  A :class:`values.elicit.Elicitor`, seeded, holds the
stated utilities fixed and offers the question whose answer tells most about
the decision, until the decision is settled, the limit of questions is
reached, or no question is left that could tell more.  Replaying the answers
into a fresh step rebuilds it exactly, so a session resumes mid-question.
The human's values then become one point (:meth:`values.elicit.Elicitor.values`),
and the 90% intervals go with the value conflicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dialogue.protocol import Answered, Asked, Elicited, Eliciting
from oracle.oracle import Oracle
from values.elicit import Elicitor, Question
from worldmodel.compile import BeliefState

NOTHING_TO_LEARN = 1e-12
"""A question whose answer is expected to tell less than this (nats) is not worth asking."""


@dataclass(frozen=True)
class Elicitation:
    """How the value step runs (recorded in the transcript, so a resumed session runs the same)."""

    particles: int = 20000
    max_questions: int = 12
    seed: int = 0


class ValueStep:
    """The questions for one human, one at a time."""

    def __init__(
        self,
        oracle: Oracle,
        beliefs: BeliefState,
        stated: Mapping[str, Mapping[str, float]],
        unknown: Sequence[str],
        settings: Elicitation,
    ):
        self._made = (oracle, beliefs, stated, unknown, settings)
        self.settings = settings
        self.unknown = list(unknown)
        self.stated = {o: dict(u) for o, u in stated.items()}
        self.elicitor = Elicitor(oracle, beliefs, particles=settings.particles, seed=settings.seed, stated=stated)
        self.pending: Asked | None = None
        self._question: Question | None = None
        self.stopped: str | None = None
        self.answers: list[str] = []
        """The answers so far, in order."""

    def started(self) -> Eliciting:
        s = self.settings
        return Eliciting(
            unknown=self.unknown, stated=self.stated, particles=s.particles, seed=s.seed, max_questions=s.max_questions
        )

    def next(self) -> Asked | None:
        """The next question, or None when the step is over (``stopped`` says why)."""
        e = self.elicitor
        question = None
        if e.settled():
            self.stopped = "settled"
        elif len(e.asked) >= self.settings.max_questions:
            self.stopped = "limit"
        else:
            question, information = e.most_informative() or (None, 0.0)
            if question is None or information <= NOTHING_TO_LEARN:
                self.stopped, question = "exhausted", None
        self._question = question
        if question is None:
            self.pending = None
            return None
        leaning, agreement = e.decision()
        self.pending = Asked(
            number=len(e.asked) + 1,
            kind=question.kind,  # type: ignore[arg-type]
            first=question.first,
            second=question.second,
            given=dict(question.given),
            text=question.text(),
            predicted={o: {v: {s: round(p, 6) for s, p in d.items()} for v, d in lot.items()} for o, lot in question.predicted.items()},
            information=round(information, 6),
            leaning=leaning,
            agreement=round(agreement, 6),
        )
        return self.pending

    def answer(self, choice: str) -> Answered:
        """Take the answer to the pending question (the caller has checked it is one of its options)."""
        assert self.pending is not None and self._question is not None
        self.elicitor.answer(self._question, choice)
        self.answers.append(choice)
        answered = Answered(number=self.pending.number, answer=choice)
        self.pending = self._question = None
        return answered

    def rewound(self, answers: int) -> ValueStep:
        """The step as it was after its first ``answers`` answers, asking its next question again
        (the elicitor is seeded, so replaying the answers rebuilds it exactly)."""
        step = ValueStep(*self._made)
        for choice in self.answers[:answers]:
            step.next()
            step.answer(choice)
        step.next()
        return step

    def result(self) -> Elicited:
        """The human's values as asked: one point, and every state's utility / range with its interval."""
        e = self.elicitor
        decision, agreement = e.decision()
        summary = e.summary(every_state=True)
        return Elicited(
            questions=len(e.asked),
            stopped=self.stopped,  # type: ignore[arg-type]
            decision=decision,
            agreement=round(agreement, 6),
            values=e.values(),
            utilities={
                o: {s: {"mean": round(x["mean"], 6), "interval": [round(v, 6) for v in x["interval"]]} for s, x in states.items()}
                for o, states in summary.items()
            },
        )



def intervals(elicited: Elicited) -> dict[tuple[str, str], list[float]]:
    """(outcome, state) -> the 90% interval of its utility / range."""
    return {(o, s): x["interval"] for o, states in elicited.utilities.items() for s, x in states.items()}
