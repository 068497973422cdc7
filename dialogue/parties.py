"""The parties of a session, interchangeable behind one small interface.

A party answers offers and (the human) decides.  The agent accepts every fact
at its own reliability; the scripted human follows the scenario's ``responds``
and decides by its final choice; the person at the terminal is a third
implementation (``dialogue/tui``).
"""

from __future__ import annotations

from typing import Protocol

from dialogue.protocol import Decide, Diagnosed, Offered, Respond
from worldmodel.spec import Responds, Scenario


class Party(Protocol):
    def respond(self, offer: Offered) -> Respond: ...


class Decider(Party, Protocol):
    def decide(self, final: Diagnosed) -> Decide: ...


class Agent:
    """Takes every fact, weighted by its reliability (DESIGN.md: evidence, not conclusions)."""

    def respond(self, offer: Offered) -> Respond:
        return Respond(fact=offer.fact, accepted=True)


class ScriptedHuman:
    """The scenario's human: accepts or rejects by ``responds``; decides by its own final choice."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.rules: Responds = scenario.parties.human.responds

    def respond(self, offer: Offered) -> Respond:
        fact = self.scenario.facts[offer.fact]
        rejected = (
            offer.fact in self.rules.rejects
            or fact.source in self.rules.rejects_sources
            or (fact.observe is not None and fact.weight < self.rules.accept_min_reliability)
        )
        return Respond(fact=offer.fact, accepted=not rejected)

    def decide(self, final: Diagnosed) -> Decide:
        action = final.choices["human"]
        return Decide(action=action, reasons="the choice that follows from my beliefs and values after the exchange")
