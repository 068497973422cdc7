"""The dialogue engine: a pure state machine, messages in, events out.

It knows nothing of terminals, files or HTTP.  A session is: ``start()``, then
for each offered fact the receiver's :class:`Respond`, until the engine
concludes (final diagnosis, unresolved beliefs, value conflicts); then the
human's :class:`Decide`.  Along the way the human may state a position, share
a fact they hold, state a new observation, or restate their values.  Parties
(agent, scripted human, person at the terminal) are interchangeable behind
:mod:`dialogue.parties`.

When the human's values are unknown (all, or some outcomes'), the diagnosis
says so (kind ``unknown``: no human choice, no shares) until they are known;
the exchange shares every fact that changes a prediction (with some values it
changes the human's choice); and once it is over, the engine asks the human
value questions (:mod:`dialogue.elicitation`), each answered by a
:class:`ValueAnswer`, before the final diagnosis.

Every act of the human (a response to an offer, a share, an observation, a
value edit, a value answer) is an event, never a rewrite: the engine
re-diagnoses and applies the stop rule afresh.  :class:`Undo` takes the last
such act back as a new event: the engine returns to where it was before it
(turn numbers keep counting, so every turn in the record stays as it was).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from crux.beliefs.graph import BeliefGraph, FactRecord
from crux.dialogue.cruxes import Crux, rank_cruxes, unshared
from crux.dialogue.diagnosis import Diagnosis
from crux.dialogue.elicitation import Elicitation, ValueStep, intervals
from crux.dialogue.evaluate import Evaluator
from crux.dialogue.final import conclude
from crux.dialogue.protocol import (
    OBSERVATION_PREFIX,
    Asked,
    Conflicted,
    Decide,
    Decided,
    Decline,
    Diagnosed,
    Elicited,
    Message,
    Mode,
    Observe,
    Observed,
    Offered,
    Respond,
    Responded,
    SetValues,
    Share,
    State,
    Stated,
    Undo,
    Undone,
    ValueAnswer,
    ValuesChanged,
    Withdraw,
)
from crux.oracle.oracle import Oracle
from crux.values.utility import Utility, split_values
from crux.worldmodel.errors import CruxError, unknown
from crux.worldmodel.model import Model
from crux.worldmodel.spec import UNKNOWN, Fact

CELL_NAMES = {
    ("a", "a"): "agent beliefs, agent values",
    ("a", "h"): "agent beliefs, human values",
    ("h", "a"): "human beliefs, agent values",
    ("h", "h"): "human beliefs, human values",
}


class EngineError(CruxError):
    """A message the engine cannot take in its current state."""


_RESTORED = (
    "scenario", "graphs", "utilities", "values", "unknown", "evaluator", "value_step", "elicited",
    "pending", "pending_crux", "diagnosis", "final", "concluded",
)
"""What an undo restores; the turn and observation counters keep counting."""


@dataclass(frozen=True)
class _Snapshot:
    """The engine before one act of the human, and that act in words."""

    state: dict
    answers: int
    """How long the value step's log was (the value step is rebuilt by replaying it)."""
    undid: str
    text: str


@dataclass
class Engine:
    """One belief-reconciliation session between the agent and the human."""

    model: Model
    oracle: Oracle
    mode: Mode = "full"
    elicitation: Elicitation = field(default_factory=Elicitation)

    def __post_init__(self) -> None:
        scenario = self.model.scenario
        if scenario is None or self.model.network.decision is None:
            raise EngineError("a session needs a scenario with a decision (a BIF network has none)")
        net = self.model.network
        self.scenario = scenario
        self.actions = net.states[net.decision]
        self.graphs = {p: BeliefGraph.initial(scenario, net, p) for p in ("agent", "human")}
        self.utilities: dict[str, Utility | None] = {"agent": None, "human": None}
        self.values: dict[str, dict | None] = {"agent": None, "human": None}
        """Each party's values as written: {outcome: {state: utility}, or "unknown" (the human's only)}."""
        self.unknown: list[str] = []
        """The outcomes whose utilities the human has not stated (asked after the exchange)."""
        if self.mode != "predict-only":
            self._take_values("agent", scenario.parties.agent.values)  # type: ignore[arg-type]
        human = scenario.parties.human.values
        self._take_values("human", {o: UNKNOWN for o in split_values(human, net)[1]} if human == UNKNOWN else human)  # type: ignore[arg-type]
        self.value_step: ValueStep | None = None
        self.elicited: Elicited | None = None
        self.turn = 0
        self.pending: Offered | None = None
        self.pending_crux: Crux | None = None
        self.diagnosis: Diagnosis | None = None
        self.final = None
        self.concluded = False
        self.decided = False
        self.started = False
        self._acts: list[_Snapshot] = []
        """One snapshot per act of the human, the last on top: what :class:`Undo` returns to."""
        self._reuse: int | None = None
        """The number of an offer withdrawn unanswered: the next offer takes it, so turns have no gaps."""
        self._observations = 0

    # -- messages ----------------------------------------------------------------------

    def start(self) -> list:
        if self.started:
            raise EngineError("the session has already started")
        self.started = True
        self._rediagnose()
        return [self._diagnosed("initial"), *self._advance()]

    def handle(self, message: Message) -> list:
        """Take one message; return the events it causes, in order."""
        if not self.started:
            raise EngineError("start the session first")
        handlers = {
            Respond: self._respond,
            Decide: self._decide,
            State: self._state,
            Share: self._share,
            Observe: self._observe,
            SetValues: self._set_values,
            ValueAnswer: self._answer,
            Withdraw: self._withdraw_answer,
            Decline: self._decline,
            Undo: self._undo,
        }
        act = self._act(message)
        snapshot = None if act is None else self._snapshot(*act)
        events = handlers[type(message)](message)  # type: ignore[operator]
        if snapshot is not None:
            self._acts.append(snapshot)
        return events

    def implied_choice(self, party: str = "human") -> str | None:
        """What a party's own beliefs and values choose now (None while its values are unknown)."""
        assert self.diagnosis is not None
        return self.diagnosis.choices.get(party)

    @property
    def question(self) -> Asked | None:
        """The value question waiting for the human's answer, if any."""
        return self.value_step.pending if self.value_step is not None else None

    @property
    def conflict(self) -> Conflicted | None:
        """Answers that cannot all hold, waiting for the human to withdraw one, if any."""
        return self.value_step.conflict if self.value_step is not None else None

    @property
    def exchanging(self) -> bool:
        """Whether facts can still be exchanged (not once the value questions or the conclusion came)."""
        return not self.concluded and self.value_step is None

    def shareable(self) -> list[str]:
        """Facts the human holds that the agent has not seen."""
        return [f for f in self.scenario.facts if self.graphs["human"].holds(f) and not self.graphs["agent"].seen(f)]

    @property
    def undoable(self) -> str | None:
        """The human's last act in words, if one can be taken back (none once decided)."""
        return None if self.decided or not self._acts else self._acts[-1].text

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
        self._rediagnose()
        responded = Responded(
            turn=offer.turn,
            fact=offer.fact,
            by=receiver,
            response=record.status,  # type: ignore[arg-type]
            reliability=message.reliability,
        )
        return [responded, self._diagnosed("turn"), *self._advance()]

    def _state(self, message: State) -> list:
        self._check_action(message.action)
        implied = self.implied_choice("human")
        matches = None if implied is None else message.action == implied
        return [Stated(action=message.action, implied=implied, matches=matches)]

    def _share(self, message: Share) -> list:
        """The human shares a fact they hold; it goes on offer to the agent in place of any crux."""
        if not self.exchanging:
            raise EngineError("the exchange has concluded")
        if message.fact not in self.scenario.facts:
            raise EngineError(unknown("fact", message.fact, self.scenario.facts))
        human, agent = self.graphs["human"], self.graphs["agent"]
        if not human.holds(message.fact):
            raise EngineError(f"the human does not hold {message.fact!r}, so cannot share it")
        if agent.seen(message.fact):
            raise EngineError(f"the agent already has {message.fact!r}")
        self._withdraw()
        turn = self._new_turn()
        after = self.evaluator.diagnose([(agent.with_facts([message.fact], "human", turn), human)])[0]
        assert self.diagnosis is not None
        effect = "it changes no choice"
        if after.key() != self.diagnosis.key():
            effect = "it changes the swap test"
        elif after.differs(self.diagnosis):
            effect = "it changes how the actions compare in the agent's predictions"
        self.pending = self._offer(turn, message.fact, "human", "agent", f"shared by the human; {effect}", after, shared=True)
        return [self.pending]

    def _observe(self, message: Observe) -> list:
        """A new observation from the human: a fact they hold from now on, shared with the agent."""
        if not self.exchanging:
            raise EngineError("the exchange has concluded")
        net = self.model.network
        if message.variable not in net.order or message.variable == net.decision:
            raise EngineError(unknown("variable", message.variable, [v for v in net.order if v != net.decision]))
        if message.state not in net.states[message.variable]:
            raise EngineError(unknown(f"state of {message.variable}", message.state, net.states[message.variable]))
        if not 0.0 <= message.reliability <= 1.0:
            raise EngineError(f"reliability {message.reliability} is out of range: use a probability in [0, 1]")
        self._observations += 1  # counts on through undos, so an id names one observation
        fact_id = f"{OBSERVATION_PREFIX}{self._observations}"
        text = message.text or f"{message.source} reports {message.variable} = {message.state}."
        fact = Fact(text=text, source=message.source, reliability=message.reliability, observe={message.variable: message.state})
        self.scenario = self.scenario.model_copy(update={"facts": {**self.scenario.facts, fact_id: fact}})
        self.graphs = {p: replace(g, scenario=self.scenario) for p, g in self.graphs.items()}
        self.graphs["human"] = self.graphs["human"].with_record(FactRecord(fact_id, "own", self.turn, "held"))
        self._withdraw()
        self._rediagnose()
        observed = Observed(
            fact=fact_id, variable=message.variable, state=message.state,
            reliability=message.reliability, source=message.source, text=text,
        )
        return [observed, self._diagnosed("turn"), *self._share(Share(fact=fact_id))]

    def _set_values(self, message: SetValues) -> list:
        """A party restates its values: the diagnosis and the stop rule are applied afresh (the offer
        on the table is withdrawn; the top fact under the new values is offered, or the exchange ends)."""
        if self.concluded:
            raise EngineError("the exchange has concluded; values can no longer change (undo to go back into it)")
        if self.value_step is not None:
            raise EngineError("the human's values are being asked: answer the question on offer")
        if message.party == "agent" and self.mode == "predict-only":
            raise EngineError("in predict-only mode the agent holds no values")
        net = self.model.network
        for outcome, states in message.values.items():
            if outcome not in net.outcomes:
                raise EngineError(unknown("outcome", outcome, net.outcomes))
            if states == UNKNOWN:
                if message.party != "human":
                    raise EngineError(f"only the human's values may be unknown: state the agent's utilities of {outcome}")
                continue
            for state in states:
                if state not in net.states[outcome]:
                    raise EngineError(unknown(f"state of {outcome}", state, net.states[outcome]))
        before = self.values[message.party] or {}
        self._take_values(message.party, message.values)
        self._withdraw()
        self._rediagnose()
        changed = ValuesChanged(party=message.party, values=message.values, changed=_changes(net, before, message.values))
        return [changed, self._diagnosed("turn"), *self._advance()]

    def _answer(self, message: ValueAnswer) -> list:
        """The human answers the value question on offer; the next question, or the conclusion, follows."""
        asked = self.question
        if asked is None:
            raise EngineError("no value question is on offer")
        if message.question != asked.number:
            raise EngineError(f"got an answer to question {message.question}, expected one to question {asked.number}")
        if message.choice not in (asked.first, asked.second):
            raise EngineError(f"answer {asked.first!r} or {asked.second!r} to question {asked.number}, not {message.choice!r}")
        assert self.value_step is not None
        events = self.value_step.answer(message.choice)
        if self.value_step.conflict is not None:
            return events  # the human withdraws one of the clashing answers first
        return [*events, *self._next_question()]

    def _withdraw_answer(self, message: Withdraw) -> list:
        """The human withdraws one of the answers that cannot all hold; the questions go on."""
        conflict = self.conflict
        if conflict is None:
            raise EngineError("no answers clash: nothing to withdraw (undo takes back the last answer)")
        if message.question not in conflict.numbers:
            listed = ", ".join(str(n) for n in conflict.numbers)
            raise EngineError(f"withdraw the answer to one of the clashing questions ({listed}), not {message.question}")
        assert self.value_step is not None
        return [self.value_step.withdraw(message.question), *self._next_question()]

    def _decline(self, message: Decline) -> list:
        """The human answers no more value questions: their values are what the answers so far say."""
        if self.question is None:
            raise EngineError("no value question is on offer to decline")
        assert self.value_step is not None
        return [self.value_step.decline(), *self._next_question()]

    def _undo(self, message: Undo) -> list:
        """Take back the human's last act: the engine returns to where it was before it, and offers
        again what was on offer then (as a new turn) or asks again the question it answered."""
        if self.decided:
            raise EngineError("the decision has been taken: nothing can be undone")
        if not self._acts:
            raise EngineError("there is nothing of yours to undo yet")
        snapshot = self._acts.pop()
        self._withdraw()
        for name, value in snapshot.state.items():
            setattr(self, name, value)
        if self.value_step is not None:
            self.value_step = self.value_step.rewound(snapshot.answers)
        events: list = [Undone(undid=snapshot.undid, text=snapshot.text), self._diagnosed("turn")]
        if self.conflict is not None:
            events.append(self.conflict)
        elif self.question is not None:
            events.append(self.question)
        elif self.pending is not None:
            self.pending = self.pending.model_copy(update={"turn": self._new_turn()})
            events.append(self.pending)
        return events

    def _decide(self, message: Decide) -> list:
        if not self.concluded:
            raise EngineError("the human decides only after the final diagnosis")
        if self.decided:
            raise EngineError("the decision has already been taken")
        self._check_action(message.action)
        self.decided = True
        assert self.diagnosis is not None
        follows = {p: message.action == c for p, c in self.diagnosis.choices.items()}
        return [Decided(action=message.action, by="human", reasons=message.reasons, follows=follows)]

    # -- helpers -------------------------------------------------------------------------

    def _check_action(self, action: str) -> None:
        if action not in self.actions:
            raise EngineError(unknown("action", action, self.actions))

    def _take_values(self, party: str, values: Mapping) -> None:
        """A party's values as written; the evaluator follows (without the human's while unknown)."""
        net = self.model.network
        stated, unknown_outcomes = split_values(values, net)
        self.values[party] = dict(values)
        self.utilities[party] = None if unknown_outcomes else Utility.from_values(stated, net)
        if party == "human":
            self.unknown = unknown_outcomes
        self.evaluator = Evaluator(self.oracle, self.utilities, self.actions)

    def _act(self, message: Message) -> tuple[str, str] | None:
        """(kind, words) when the message is an act of the human that :class:`Undo` can take back."""
        if isinstance(message, Respond) and self.pending is not None and self.pending.receiver == "human":
            how = "rejected" if not message.accepted else (
                "accepted" if message.reliability is None else f"accepted at reliability {message.reliability:g}"
            )
            return "response", f"your response to turn {self.pending.turn} ({how} {message.fact})"
        if isinstance(message, Share):
            return "share", f"sharing {message.fact}"
        if isinstance(message, Observe):
            return "observation", f"your observation {message.variable}={message.state}"
        if isinstance(message, SetValues) and message.party == "human":
            return "values", "your value edit"
        if isinstance(message, ValueAnswer):
            return "answer", f"your answer to value question {message.question} ({message.choice})"
        if isinstance(message, Withdraw):
            return "withdraw", f"withdrawing your answer to value question {message.question}"
        if isinstance(message, Decline):
            return "decline", "declining further value questions"
        return None

    def _snapshot(self, undid: str, text: str) -> _Snapshot:
        state = {}
        for name in _RESTORED:
            value = getattr(self, name)
            state[name] = dict(value) if isinstance(value, dict) else value  # the engine sets their items in place
        answers = len(self.value_step.log) if self.value_step is not None else 0
        return _Snapshot(state=state, answers=answers, undid=undid, text=text)

    def _withdraw(self) -> None:
        """Take the offer on the table back unanswered; the next offer takes its turn number."""
        if self.pending is not None:
            self._reuse = self.pending.turn
        self.pending = self.pending_crux = None

    def _new_turn(self) -> int:
        if self._reuse is not None:
            turn, self._reuse = self._reuse, None
            return turn
        self.turn += 1
        return self.turn

    def _rediagnose(self) -> None:
        self.diagnosis = self.evaluator.diagnose([(self.graphs["agent"], self.graphs["human"])])[0]

    def _advance(self) -> list:
        """Offer the top crux; when no unshared fact could change a swap-test choice (or, while the
        human's values are unknown, a prediction), ask the human's values, then conclude."""
        assert self.diagnosis is not None
        cruxes = rank_cruxes(self.evaluator, self.graphs, self.diagnosis)
        if not cruxes and self.unknown:
            stated = split_values(self.values["human"] or {}, self.model.network)[0]
            signs = self.scenario.parties.human.value_signs.signs()
            self.value_step = ValueStep(self.oracle, self.graphs["human"].state, stated, self.unknown, self.elicitation, signs)
            return [self.value_step.started(), *self._next_question()]
        if not cruxes:
            self.concluded = True
            known = intervals(self.elicited) if self.elicited is not None else None
            self.final = conclude(self.evaluator, self.graphs, self.diagnosis, known).model_copy(update={"why": self._why_over()})
            return [self._diagnosed("final"), self.final]
        top = cruxes[0]
        self.pending_crux = top
        why = top.why(self.diagnosis, self.mode)
        self.pending = self._offer(self._new_turn(), top.fact, top.sender, top.receiver, why, top.alone)
        return [self.pending]

    def _why_over(self) -> str:
        """Why the exchange ended, in words (SCENARIO.md's stop rule)."""
        left = sorted({fact for fact, _, _ in unshared(self.graphs)})
        rejected = sorted({r.fact for g in self.graphs.values() for r in g.records if r.status == "rejected"})
        if self.mode == "predict-only":
            test = "would change your choice under either side's predictions"
        else:
            test = "would change any of the four choices of the swap test"
        if left:
            why = f"no unshared fact ({', '.join(left)}), alone or pooled with the others, {test}"
        else:
            why = "every fact has been exchanged"
        if rejected:
            why += f"; rejected facts ({', '.join(rejected)}) stay unresolved beliefs"
        return why

    def _next_question(self) -> list:
        """The next value question, or, when there is none, the human's values as asked and what follows."""
        assert self.value_step is not None
        asked = self.value_step.next()
        if asked is not None:
            return [asked]
        self.elicited = self.value_step.result()
        self._take_values("human", self.elicited.values)
        self._rediagnose()
        return [self.elicited, *self._advance()]

    def _offer(
        self, turn: int, fact_id: str, sender: str, receiver: str, why: str, after: Diagnosis, shared: bool = False
    ) -> Offered:
        fact = self.scenario.facts[fact_id]
        return Offered(
            turn=turn,
            fact=fact_id,
            sender=sender,  # type: ignore[arg-type]
            receiver=receiver,  # type: ignore[arg-type]
            text=fact.text,
            source=fact.source,
            reliability=fact.reliability if fact.observe is not None else None,
            why=why,
            if_accepted={CELL_NAMES[c]: a for c, a in after.cells.items()},
            shared=shared,
        )

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
            expected_utility={CELL_NAMES[c]: dict(zip(self.actions, eu)) for c, eu in d.expected.items()},
        )


def _changes(net, before: Mapping, after: Mapping) -> list[dict]:
    """Each outcome state whose utility differs between two sets of values as written (None: unknown)."""

    def utility(values: Mapping, outcome: str, state: str) -> float | None:
        stated = values.get(outcome, {})
        return None if stated == UNKNOWN else float(stated.get(state, 0.0))

    out = []
    for outcome in net.outcomes:
        for state in net.states[outcome]:
            old, new = utility(before, outcome, state), utility(after, outcome, state)
            if old != new:
                out.append({"outcome": outcome, "state": state, "before": old, "after": new})
    return out
