"""The dialogue engine: a pure state machine, messages in, events out.

It knows nothing of terminals, files or HTTP.  A session is: ``start()``, then
for each offered fact the receiver's :class:`Respond`, until the engine
concludes (final diagnosis, unresolved beliefs, value conflicts); then the
human's :class:`Decide`.  Parties (agent, scripted human, person at the
terminal) are interchangeable behind :mod:`dialogue.parties`.
"""

from __future__ import annotations

from dataclasses import dataclass

from beliefs.graph import BeliefGraph, FactRecord
from dialogue.cruxes import Crux, rank_cruxes
from dialogue.diagnosis import Diagnosis
from dialogue.evaluate import Evaluator
from dialogue.final import conclude
from dialogue.protocol import Concluded, Decide, Decided, Diagnosed, Mode, Offered, Respond, Responded
from oracle.oracle import Oracle
from values.utility import Utility
from worldmodel.errors import CruxError
from worldmodel.model import Model

CELL_NAMES = {
    ("a", "a"): "agent beliefs, agent values",
    ("a", "h"): "agent beliefs, human values",
    ("h", "a"): "human beliefs, agent values",
    ("h", "h"): "human beliefs, human values",
}
OTHER = {"agent": "human", "human": "agent"}


class EngineError(CruxError):
    """A message the engine cannot take in its current state."""


@dataclass
class Engine:
    """One belief-reconciliation session between the agent and the human."""

    model: Model
    oracle: Oracle
    mode: Mode = "full"

    def __post_init__(self) -> None:
        scenario = self.model.scenario
        if scenario is None or self.model.network.decision is None:
            raise EngineError("a session needs a scenario with a decision (a BIF network has none)")
        net = self.model.network
        self.actions = net.states[net.decision]
        self.graphs = {p: BeliefGraph.initial(scenario, net, p) for p in ("agent", "human")}
        self.utilities: dict[str, Utility | None] = {
            "agent": None if self.mode == "predict-only" else Utility.from_values(scenario.parties.agent.values, net),
            "human": Utility.from_values(scenario.parties.human.values, net),
        }
        self.evaluator = Evaluator(self.oracle, self.utilities, self.actions)
        self.turn = 0
        self.pending: Offered | None = None
        self.pending_crux: Crux | None = None
        self.diagnosis: Diagnosis | None = None
        self.concluded = False
        self.decided = False
        self.started = False

    # -- messages ----------------------------------------------------------------------

    def start(self) -> list:
        if self.started:
            raise EngineError("the session has already started")
        self.started = True
        self.diagnosis = self.evaluator.diagnose([(self.graphs["agent"], self.graphs["human"])])[0]
        return [self._diagnosed("initial"), *self._advance()]

    def handle(self, message: Respond | Decide) -> list:
        if not self.started:
            raise EngineError("start the session first")
        if isinstance(message, Respond):
            return self._respond(message)
        return self._decide(message)

    def set_values(self, party: str, utility: Utility) -> list:
        """A party restates its values (the TUI's value editor); the diagnosis and the offer follow."""
        if self.concluded:
            raise EngineError("the session has concluded; values can no longer change")
        if party == "agent" and self.mode == "predict-only":
            raise EngineError("in predict-only mode the agent holds no values")
        self.utilities[party] = utility
        self.evaluator = Evaluator(self.oracle, self.utilities, self.actions)
        self.diagnosis = self.evaluator.diagnose([(self.graphs["agent"], self.graphs["human"])])[0]
        self.pending = self.pending_crux = None
        return [self._diagnosed("turn"), *self._advance(new_turn=False)]

    # -- steps -------------------------------------------------------------------------

    def _respond(self, message: Respond) -> list:
        offer = self.pending
        if offer is None or message.fact != offer.fact:
            expected = f"a response to {offer.fact}" if offer else "no response (nothing is on offer)"
            raise EngineError(f"got a response to {message.fact!r}, expected {expected}")
        if message.reliability is not None and not 0.0 <= message.reliability <= 1.0:
            raise EngineError(f"reliability {message.reliability} is out of range: use a probability in [0, 1]")
        receiver = offer.receiver
        record = FactRecord(
            fact=offer.fact,
            origin=offer.sender,
            turn=offer.turn,
            status="accepted" if message.accepted else "rejected",
            reliability=message.reliability,
        )
        self.graphs[receiver] = self.graphs[receiver].with_record(record)
        self.pending = self.pending_crux = None
        self.diagnosis = self.evaluator.diagnose([(self.graphs["agent"], self.graphs["human"])])[0]
        responded = Responded(
            turn=offer.turn,
            fact=offer.fact,
            by=receiver,
            response=record.status,  # type: ignore[arg-type]
            reliability=message.reliability,
        )
        return [responded, self._diagnosed("turn"), *self._advance()]

    def _decide(self, message: Decide) -> list:
        if not self.concluded:
            raise EngineError("the human decides only after the final diagnosis")
        if self.decided:
            raise EngineError("the decision has already been taken")
        if message.action not in self.actions:
            raise EngineError(f"unknown action {message.action!r} (actions: {', '.join(self.actions)})")
        self.decided = True
        assert self.diagnosis is not None
        follows = {p: message.action == c for p, c in self.diagnosis.choices.items()}
        return [Decided(action=message.action, by="human", reasons=message.reasons, follows=follows)]

    def _advance(self, new_turn: bool = True) -> list:
        """Offer the top crux, or conclude when no unshared fact could change a swap-test choice."""
        assert self.diagnosis is not None
        cruxes = rank_cruxes(self.evaluator, self.graphs, self.diagnosis)
        if not cruxes:
            self.concluded = True
            final = conclude(self.evaluator, self.graphs, self.diagnosis)
            return [self._diagnosed("final"), final]
        top = cruxes[0]
        if new_turn or self.pending is None:
            self.turn += 1
        fact = self.model.scenario.facts[top.fact]  # type: ignore[union-attr]
        self.pending_crux = top
        self.pending = Offered(
            turn=self.turn,
            fact=top.fact,
            sender=top.sender,
            receiver=top.receiver,
            text=fact.text,
            source=fact.source,
            reliability=fact.reliability if fact.observe is not None else None,
            why=top.why(self.diagnosis, self.mode),
            if_accepted={CELL_NAMES[c]: a for c, a in top.alone.cells.items()},
        )
        return [self.pending]

    def _diagnosed(self, stage: str) -> Diagnosed:
        d = self.diagnosis
        assert d is not None
        return Diagnosed(
            stage=stage,  # type: ignore[arg-type]
            turn=self.turn,
            choices=d.choices,
            cells={CELL_NAMES[c]: a for c, a in d.cells.items()},
            kind=d.kind,
            belief_share=d.belief_share,
            value_share=d.value_share,
            expected_utility={
                CELL_NAMES[c]: dict(zip(self.actions, eu)) for c, eu in d.expected.items()
            },
        )


__all__ = ["Engine", "EngineError", "CELL_NAMES", "Concluded"]
