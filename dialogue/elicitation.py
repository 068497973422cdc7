"""The value step of a session: the human's unknown values, asked after the exchange.

When the human's values are unknown (all of them, or some outcomes'), the
engine asks for them once the exchange is over, under the human's beliefs as
the exchange left them.  A :class:`values.elicit.Elicitor`, seeded, holds the
stated utilities fixed and offers the question whose answer tells most about
the decision, until the decision is settled, the limit of questions is
reached, the human declines more, or no question of any kind could tell more.
Answers that cannot all hold are shown to the human, who withdraws one.
Replaying the answers into a fresh step rebuilds it exactly, so a session
resumes mid-question.
The human's values then become one point (:meth:`values.elicit.Elicitor.values`),
and the 90% intervals go with the value conflicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crux.dialogue.protocol import Answered, Asked, Conflicted, Declined, Elicited, Eliciting, Withdrawn
from crux.oracle.oracle import Oracle
from crux.values.elicit import Elicitor, Question
from crux.worldmodel.compile import BeliefState


@dataclass(frozen=True)
class Elicitation:
    """How the value step runs (recorded in the transcript, so a resumed session runs the same)."""

    particles: int = 20000
    max_questions: int = 12
    seed: int = 0


class ValueStep:
    """The questions for one human, one at a time.

    Everything the human does here is kept in :attr:`log` (answers, withdrawals, declining), so the
    step as it was after any number of those is rebuilt by replaying them (:meth:`rewound`)."""

    def __init__(
        self,
        oracle: Oracle,
        beliefs: BeliefState,
        stated: Mapping[str, Mapping[str, float]],
        unknown: Sequence[str],
        settings: Elicitation,
        signs: Mapping[str, int] | None = None,
    ):
        self._made = (oracle, beliefs, stated, unknown, settings, signs)
        self.settings = settings
        self.unknown = list(unknown)
        self.stated = {o: dict(u) for o, u in stated.items()}
        self.elicitor = Elicitor(
            oracle, beliefs, particles=settings.particles, seed=settings.seed, stated=stated, signs=signs
        )
        self.pending: Asked | None = None
        self._question: Question | None = None
        self.stopped: str | None = None
        self.conflict: Conflicted | None = None
        """Answers that cannot all hold, waiting for the human to withdraw one."""
        self.log: list[tuple[str, object]] = []
        """("answer", choice), ("withdraw", number) or ("decline", number), in order."""
        self.numbers: list[int] = []
        """The question number of each answer the elicitor holds (``elicitor.asked``)."""
        self.texts: dict[int, tuple[str, str]] = {}
        """Each question asked, by number: its text and the answer given."""
        self.count = 0
        """Questions asked so far (withdrawn answers included)."""

    def started(self) -> Eliciting:
        s = self.settings
        return Eliciting(
            unknown=self.unknown, stated=self.stated, particles=s.particles, seed=s.seed, max_questions=s.max_questions
        )

    def next(self) -> Asked | None:
        """The next question, or None when the step is over (``stopped`` says why)."""
        e = self.elicitor
        best = None
        if self.stopped is None:
            best, self.stopped = e.next_question(self.count, self.settings.max_questions)
        question, information = best if best is not None else (None, 0.0)
        self._question = question
        if question is None:
            self.pending = None
            return None
        leaning, agreement = e.decision()
        self.count += 1
        self.pending = Asked(
            number=self.count,
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

    def answer(self, choice: str) -> list:
        """Take the answer to the pending question (the caller has checked it is one of its options);
        the answer, and the answers it clashes with when they cannot all hold."""
        assert self.pending is not None and self._question is not None
        self.elicitor.answer(self._question, choice)
        self.log.append(("answer", choice))
        number = self.pending.number
        self.numbers.append(number)
        self.texts[number] = (self.pending.text, choice)
        self.pending = self._question = None
        out: list = [Answered(number=number, answer=choice)]
        clash = self.elicitor.conflicts()
        if clash:
            numbers = [self.numbers[i] for i in clash] + [number]
            self.conflict = Conflicted(
                numbers=numbers,
                answers=[{"number": n, "question": self.texts[n][0], "answer": self.texts[n][1]} for n in numbers],
            )
            out.append(self.conflict)
        return out

    def withdraw(self, number: int) -> Withdrawn:
        """Take back one answer of the clash (the caller has checked it is one of them)."""
        index = self.numbers.index(number)
        self.elicitor.withdraw(index)
        del self.numbers[index]
        self.log.append(("withdraw", number))
        self.conflict = None
        return Withdrawn(number=number)

    def decline(self) -> Declined:
        """The human answers no more questions: the step ends with what is known."""
        assert self.pending is not None
        number = self.pending.number
        self.log.append(("decline", number))
        self.stopped = "declined"
        self.pending = self._question = None
        return Declined(number=number)

    def rewound(self, entries: int) -> ValueStep:
        """The step as it was after the first ``entries`` entries of its log, waiting for what it
        waited for then (the elicitor is seeded, so replaying rebuilds it exactly)."""
        step = ValueStep(*self._made)
        for kind, arg in self.log[:entries]:
            if kind == "withdraw":
                step.withdraw(arg)  # type: ignore[arg-type]
                continue
            if step.pending is None:  # the question this answer (or declining) was about
                step.next()
            if kind == "answer":
                step.answer(arg)  # type: ignore[arg-type]
            else:
                step.decline()
        if step.conflict is None and step.pending is None and step.stopped is None:
            step.next()
        return step

    def result(self) -> Elicited:
        """The human's values as asked: one point, and every state's utility / range with its interval."""
        e = self.elicitor
        decision, agreement = e.decision()
        summary = e.summary(every_state=True)
        return Elicited(
            questions=self.count,
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
