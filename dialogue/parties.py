"""The parties of a session, interchangeable behind one small interface.

A party answers offers; the human also answers value questions (when their
values are unknown) and decides.  The agent accepts every fact at its own
reliability; the scripted human follows the scenario's ``responds`` and
decides by its final choice; the person at the terminal is a third
implementation (``dialogue/tui``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from crux.dialogue.protocol import Asked, Conflicted, Decide, Diagnosed, Offered, Respond, ValueAnswer, Withdraw
from crux.values.elicit import preferred
from crux.values.utility import split_values
from crux.worldmodel.compile import Network
from crux.worldmodel.errors import CruxError
from crux.worldmodel.spec import Responds, Scenario


class Party(Protocol):
    def respond(self, offer: Offered) -> Respond: ...


class Human(Party, Protocol):
    def answer(self, question: Asked) -> ValueAnswer: ...

    def resolve(self, conflict: Conflicted) -> Withdraw: ...

    def decide(self, final: Diagnosed) -> Decide: ...


class Agent:
    """Takes every fact, weighted by its reliability (DESIGN.md: evidence, not conclusions)."""

    def respond(self, offer: Offered) -> Respond:
        return Respond(fact=offer.fact, accepted=True)


class ScriptedHuman:
    """The scenario's human: accepts or rejects by ``responds``; answers value questions by the
    values it holds (the stated ones and ``responds.values`` for the unknown ones); decides by
    its own final choice."""

    def __init__(self, scenario: Scenario, network: Network, source: str | Path = "the scenario"):
        self.scenario = scenario
        self.rules: Responds = scenario.parties.human.responds
        stated, unknown = split_values(scenario.parties.human.values, network)
        missing = [o for o in unknown if o not in self.rules.values]
        if missing:
            raise CruxError(
                f"{source}: parties.human.responds.values: the human's values of {', '.join(missing)} are unknown, so "
                "a scripted human needs the utilities it answers value questions with: add "
                f"responds.values.{missing[0]}: {{state: utility}} (one entry per unknown outcome), "
                "or run the session without --headless and answer them yourself"
            )
        self.values = {**stated, **self.rules.values}
        self._asked: dict[int, Asked] = {}

    def respond(self, offer: Offered) -> Respond:
        fact = self.scenario.facts[offer.fact]
        rejected = (
            offer.fact in self.rules.rejects
            or fact.source in self.rules.rejects_sources
            or (fact.observe is not None and fact.weight < self.rules.accept_min_reliability)
        )
        return Respond(fact=offer.fact, accepted=not rejected)

    def answer(self, question: Asked) -> ValueAnswer:
        """The option better under the values it holds, without noise; ties go to the first."""
        self._asked[question.number] = question
        choice = preferred(question.kind, question.first, question.second, question.predicted, self.values)
        return ValueAnswer(question=question.number, choice=choice)

    def resolve(self, conflict: Conflicted) -> Withdraw:
        """Withdraw the clashing answer its values disagree with now (answers given without noise
        never clash; a resumed session may hold another's), else the latest."""
        for n in conflict.numbers:
            q = self._asked.get(n)
            given = next(a["answer"] for a in conflict.answers if a["number"] == n)
            if q is not None and preferred(q.kind, q.first, q.second, q.predicted, self.values) != given:
                return Withdraw(question=n)
        return Withdraw(question=conflict.numbers[-1])

    def decide(self, final: Diagnosed) -> Decide:
        action = final.choices["human"]
        return Decide(action=action, reasons="the choice that follows from my beliefs and values after the exchange")
