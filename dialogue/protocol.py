"""Messages of a session: what parties send the engine, and the events it records.

Events are the transcript: one JSON line each, in order.  A report is a
function of the events alone (``dialogue.report``), so replaying a transcript
gives exactly the report the session printed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PartyName = Literal["agent", "human"]
Mode = Literal["full", "predict-only"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- what parties send ------------------------------------------------------------------


class Respond(_Message):
    """The receiver's answer to the offered fact."""

    fact: str
    accepted: bool
    reliability: float | None = Field(
        default=None, description="The reliability the receiver trusts (a discount); None: the fact's own."
    )


class Decide(_Message):
    """The human's decision, after the final diagnosis."""

    action: str
    reasons: str = ""


class State(_Message):
    """The human states the action they prefer, before seeing any diagnosis."""

    action: str


class Share(_Message):
    """The human shares a fact they hold, unprompted; the agent then answers it like an offer."""

    fact: str


class Observe(_Message):
    """The human states a new observation; it becomes a fact the human holds and shares."""

    variable: str
    state: str
    reliability: float = 1.0
    source: str = "the human"
    text: str = ""


OutcomeValues = dict[str, float] | Literal["unknown"]
"""One outcome's utilities {state: utility}, or ``unknown`` (the human's only: asked after the exchange)."""


class SetValues(_Message):
    """A party restates its utilities {outcome: {state: utility}} (the human may leave outcomes ``unknown``)."""

    party: PartyName
    values: dict[str, OutcomeValues]


class ValueAnswer(_Message):
    """The human's answer to the value question on offer: one of its two options."""

    question: int = Field(description="The number of the question answered.")
    choice: str


class Withdraw(_Message):
    """The human withdraws one of the answers that cannot all hold."""

    question: int = Field(description="The number of the question whose answer is withdrawn.")


class Decline(_Message):
    """The human answers no more value questions: the values are taken as the answers so far leave them."""


class Undo(_Message):
    """The human takes back their last act (a response to an offer, a share, an observation, a value
    edit or a value answer); the engine goes on from where it was before it."""


# -- what the engine records -------------------------------------------------------------


class Started(_Message):
    type: Literal["start"] = "start"
    scenario: str
    mode: Mode
    model: str = Field(description="The model file the session ran on.")
    sha256: str = Field(description="Hash of that file's bytes: a transcript resumes only on the same model.")


class Diagnosed(_Message):
    type: Literal["diagnosis"] = "diagnosis"
    stage: Literal["initial", "turn", "final"]
    turn: int
    choices: dict[str, str]
    cells: dict[str, str] = Field(description='Swap-test choices, keyed "agent beliefs, human values" etc.')
    kind: Literal["agree", "belief", "value", "both", "unknown"] = Field(
        description='"unknown" while the human\'s values are unknown: the value side cannot be told yet.'
    )
    belief_share: float | None
    value_share: float | None
    expected_utility: dict[str, dict[str, float]] = Field(description="Per cell, each action's expected utility.")


class Offered(_Message):
    type: Literal["offer"] = "offer"
    turn: int
    fact: str
    sender: PartyName = Field(alias="from")
    receiver: PartyName = Field(alias="to")
    text: str
    source: str
    reliability: float | None
    why: str = Field(description="What accepting it would change, in words.")
    if_accepted: dict[str, str] = Field(description="The swap-test choices if the receiver accepts it.")
    shared: bool = Field(default=False, description="Shared by its holder unprompted, not offered as a crux.")


class Stated(_Message):
    type: Literal["stated"] = "stated"
    action: str
    implied: str | None = Field(
        description="The action the human's own beliefs and values imply (None while their values are unknown)."
    )
    matches: bool | None


class Observed(_Message):
    type: Literal["observed"] = "observed"
    fact: str
    variable: str
    state: str
    reliability: float
    source: str
    text: str


class ValuesChanged(_Message):
    type: Literal["values"] = "values"
    party: PartyName
    values: dict[str, OutcomeValues]
    changed: list[dict] = Field(
        default_factory=list,
        description='Each utility that changed: {"outcome", "state", "before", "after"} (None: unknown).',
    )


class Eliciting(_Message):
    """The exchange is over and the human's values are (partly) unknown: the value questions begin."""

    type: Literal["eliciting"] = "eliciting"
    unknown: list[str] = Field(description="The outcomes whose utilities are asked.")
    stated: dict[str, dict[str, float]] = Field(description="The human's stated utilities, held fixed.")
    particles: int
    seed: int
    max_questions: int


class Asked(_Message):
    """A value question to the human: which of two options."""

    type: Literal["question"] = "question"
    number: int
    kind: Literal["actions", "outcomes", "sign", "lottery"] = Field(
        description='"actions": which action, in the situation `given`; "outcomes": which outcome state is worse; '
        '"sign": is a state worse or better than its outcome\'s reference state; "lottery": a state for sure, or a '
        "chance of another (and otherwise the references)."
    )
    first: str
    second: str
    given: dict[str, str]
    text: str
    predicted: dict[str, dict[str, dict[str, float]]] = Field(
        description="Each option's outcomes {outcome: {state: probability}}: under the human's beliefs for an "
        "action; otherwise the state, the sure thing or the lottery, every other outcome at its reference state."
    )
    information: float = Field(description="What the answer is expected to tell about the decision (nats).")
    leaning: str = Field(description="The action the human's values point to so far.")
    agreement: float = Field(description="The share of the remaining uncertainty that agrees on it.")


class Answered(_Message):
    type: Literal["answer"] = "answer"
    number: int
    answer: str


class Elicited(_Message):
    """The value questions are over: the human's values as asked, with their uncertainty."""

    type: Literal["elicited"] = "elicited"
    questions: int
    stopped: Literal["settled", "limit", "exhausted", "declined"] = Field(
        description="settled: 95% of what is uncertain agrees on the decision; limit: the most questions were "
        "asked; exhausted: no question of any kind could tell more about the decision; declined: the human "
        "answered no more."
    )
    decision: str = Field(description="The action the elicited values point to.")
    agreement: float = Field(description="The share of the remaining uncertainty that agrees on it.")
    values: dict[str, dict[str, float]] = Field(
        description="The human's utilities from now on: stated ones as stated, asked ones the posterior mean "
        "(in the stated units; utility / range when nothing was stated)."
    )
    utilities: dict[str, dict[str, dict]] = Field(
        description="Every outcome state's utility / range: posterior mean and 90% interval."
    )


class Conflicted(_Message):
    """Answers that cannot all hold (noise aside): the human withdraws one before the questions go on."""

    type: Literal["conflict"] = "conflict"
    numbers: list[int] = Field(description="The clashing answers' question numbers, the last answer last.")
    answers: list[dict] = Field(description='Each of them: {"number", "question", "answer"}.')


class Withdrawn(_Message):
    type: Literal["withdrawn"] = "withdrawn"
    number: int = Field(description="The question whose answer was withdrawn.")


class Declined(_Message):
    type: Literal["declined"] = "declined"
    number: int = Field(description="The question the human declined, and every one after it.")


class Responded(_Message):
    type: Literal["response"] = "response"
    turn: int
    fact: str
    by: PartyName
    response: Literal["accepted", "rejected"]
    reliability: float | None = None


class Concluded(_Message):
    type: Literal["final"] = "final"
    unresolved_beliefs: list[dict]
    value_conflicts: list[dict]
    tradeoff: str | None = None
    why: str = Field(default="", description="Why the exchange ended, in words.")


class Undone(_Message):
    """The human took back their last act; the events it caused no longer hold."""

    type: Literal["undo"] = "undo"
    undid: str = Field(description='What was taken back: "response", "share", "observation", "values" or "answer".')
    text: str = Field(description="What was taken back, in words.")


class Decided(_Message):
    type: Literal["decision"] = "decision"
    action: str
    by: PartyName
    reasons: str = ""
    follows: dict[str, bool] = Field(
        default_factory=dict, description="Whether the action is each party's final choice."
    )


Event = Annotated[
    Started
    | Diagnosed
    | Offered
    | Responded
    | Concluded
    | Decided
    | Stated
    | Observed
    | ValuesChanged
    | Eliciting
    | Asked
    | Answered
    | Elicited
    | Conflicted
    | Withdrawn
    | Declined
    | Undone,
    Field(discriminator="type"),
]
Message = Respond | Decide | State | Share | Observe | SetValues | ValueAnswer | Withdraw | Decline | Undo


def message_of(event: BaseModel) -> Message | None:
    """The message that made the engine emit this event (None for events it emits on its own):
    how a transcript is replayed into a fresh engine."""
    if isinstance(event, Responded):
        return Respond(fact=event.fact, accepted=event.response == "accepted", reliability=event.reliability)
    if isinstance(event, Decided):
        return Decide(action=event.action, reasons=event.reasons)
    if isinstance(event, Stated):
        return State(action=event.action)
    if isinstance(event, Offered) and event.shared and not event.fact.startswith(OBSERVATION_PREFIX):
        return Share(fact=event.fact)
    if isinstance(event, Observed):
        return Observe(
            variable=event.variable, state=event.state, reliability=event.reliability, source=event.source, text=event.text
        )
    if isinstance(event, ValuesChanged):
        return SetValues(party=event.party, values=event.values)
    if isinstance(event, Answered):
        return ValueAnswer(question=event.number, choice=event.answer)
    if isinstance(event, Withdrawn):
        return Withdraw(question=event.number)
    if isinstance(event, Declined):
        return Decline()
    if isinstance(event, Undone):
        return Undo()
    return None


def human_act(event: BaseModel) -> bool:
    """Whether the event records an act of the human that :class:`Undo` can take back (the engine
    keeps one snapshot per such act, in the same order)."""
    return (
        (isinstance(event, Responded) and event.by == "human")
        or (isinstance(event, Offered) and event.shared and not event.fact.startswith(OBSERVATION_PREFIX))
        or isinstance(event, (Observed, Answered, Withdrawn, Declined))
        or (isinstance(event, ValuesChanged) and event.party == "human")
    )


OBSERVATION_PREFIX = "observation-"
"""Ids of facts the human states during a session: observation-1, observation-2, ..."""
EVENT = TypeAdapter(Event)


def dump(event: BaseModel) -> dict:
    return event.model_dump(by_alias=True, mode="json")
