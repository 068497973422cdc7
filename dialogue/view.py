"""What a front end shows of a live session, computed without any UI toolkit.

The terminal UI is a shell over this: it reads these views and sends the
engine messages; it decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from crux.beliefs.diff import Difference, differences
from crux.dialogue.diagnosis import Diagnosis
from crux.dialogue.elicitation import intervals
from crux.dialogue.protocol import (
    Answered,
    Asked,
    Concluded,
    Conflicted,
    Decided,
    Declined,
    Diagnosed,
    Elicited,
    Eliciting,
    Observed,
    Offered,
    Responded,
    Stated,
    Undone,
    ValuesChanged,
    Withdrawn,
)
from crux.dialogue.report import edits, given_text, named_numbers, share_note, stopped_text
from crux.dialogue.session import LiveSession
from crux.oracle.query import Distribution, Query
from crux.values.tradeoffs import ValueConflict, tradeoff, value_conflicts
from crux.worldmodel.spec import UNKNOWN


@dataclass(frozen=True)
class ActionView:
    """One action's predicted outcomes under each side's beliefs."""

    action: str
    agent: dict[str, Distribution]
    human: dict[str, Distribution]
    agent_utility: float | None
    """Expected utility by the agent's own values (None in predict-only)."""
    human_utility: float | None
    """Expected utility by the human's values (None while they are unknown)."""


class SessionView:
    """Read-only views of a :class:`LiveSession` for a front end."""

    def __init__(self, live: LiveSession):
        self.live = live

    @property
    def engine(self):
        return self.live.engine

    @property
    def predict_only(self) -> bool:
        return self.live.mode == "predict-only"

    @property
    def diagnosis(self) -> Diagnosis:
        assert self.engine.diagnosis is not None
        return self.engine.diagnosis

    @property
    def actions(self) -> tuple[str, ...]:
        return self.engine.actions

    def situation(self) -> list[ActionView]:
        """Every action's outcomes under the agent's and the human's current beliefs, with intervals."""
        engine = self.engine
        dec = engine.model.network.decision
        queries = [Query(do={dec: a}, as_=p) for p in ("agent", "human") for a in self.actions]
        answers = engine.oracle.ask_many(
            queries, {"agent": engine.graphs["agent"].state, "human": engine.graphs["human"].state}
        )
        n = len(self.actions)
        d = self.diagnosis
        mine, theirs = d.expected.get(("h", "h")), d.expected.get(("a", "a"))
        out = []
        for i, action in enumerate(self.actions):
            out.append(
                ActionView(
                    action=action,
                    agent=answers[i].outcomes,
                    human=answers[n + i].outcomes,
                    agent_utility=None if theirs is None else theirs[i],
                    human_utility=None if mine is None else mine[i],
                )
            )
        return out

    def available(self) -> set[str]:
        """What the person can do now (the names of the UI's actions); keys for anything else are
        hidden, so every key shown does something."""
        engine = self.engine
        if self.stated() is None:
            return {"position"}
        if engine.decided:
            return {"summary"}
        offer = engine.pending
        out = set()
        if offer is not None and offer.receiver == "human":
            out |= {"respond", "discount"} if offer.reliability is not None else {"respond"}
        if engine.exchanging:
            out.add("observe")
            if engine.shareable():
                out.add("share")
            out.add("edit_value")
        if engine.question is not None or engine.conflict is not None:
            out.add("answer_values")
        if engine.undoable is not None:
            out.add("undo")
        if engine.concluded:
            out.add("decide")
        return out

    def badge(self) -> str:
        """The diagnosis in a word or two; in predict-only mode it never implies an agent's choice."""
        kind = self.diagnosis.kind
        if self.predict_only:
            return {"agree": "YOUR CHOICE HOLDS", "belief": "FACTS CHANGE YOUR CHOICE"}.get(kind, "VALUES UNKNOWN")
        return _badge(kind)

    def stage(self) -> str:
        """Where the session is, and the key that moves it on."""
        engine = self.engine
        if self.stated() is None:
            return "state your position first: press p"
        if engine.decided:
            return "decided: press D for the summary"
        if engine.conflict is not None:
            return "answers that cannot all hold: press v"
        if engine.question is not None:
            return f"value question {engine.question.number}: press v to answer"
        if engine.concluded:
            return "exchange over: press D to decide"
        if engine.pending is not None and engine.pending.receiver == "human":
            return f"turn {engine.pending.turn}: a fact on offer to you"
        return f"turn {engine.turn}: exchanging facts"

    def sentence(self) -> str:
        """The diagnosis in one plain sentence, addressed to the human."""
        d = self.diagnosis
        if d.kind == "unknown":
            agent = "" if self.predict_only else f" The agent would choose {d.cells[('a', 'a')]}."
            return (
                "Your values are not known yet: once the facts are exchanged, a few questions will ask what "
                f"matters to you.{agent}"
            )
        mine, theirs_mine = d.cells[("h", "h")], d.cells[("a", "h")]
        if self.predict_only:
            if d.kind == "agree":
                return f"The agent's predictions would not change your choice: {mine}."
            return f"With the agent's predictions you would choose {theirs_mine}, not {mine}: this is about facts, not values."
        agent = d.cells[("a", "a")]
        if d.kind == "agree":
            return f"You and the agent agree: {mine}."
        if d.kind == "belief":
            return f"If you knew what the agent knows, you would choose {agent} too: this is about facts, not values."
        if d.kind == "value":
            return f"Even with the agent's beliefs you would still choose {mine}: this is about what matters to each of you."
        return (
            f"Partly facts, partly values: with the agent's beliefs you would choose {theirs_mine}; "
            f"the agent, with yours, would choose {d.cells[('h', 'a')]}."
        )

    def verdict(self) -> str:
        """The diagnosis as the decision window and the final screen state it."""
        return f"Final diagnosis: {self.badge().lower()}. {self.sentence()}"

    def share_note(self) -> str | None:
        """What a share below 0 means, when there is one (never in predict-only mode)."""
        return None if self.predict_only else share_note(self.diagnosis.to_json())

    def describe(self, event) -> str | None:
        """One event in words for the dialogue log, addressed to the person (None: not logged)."""
        who = {"human": "you", "agent": "the agent"}
        if isinstance(event, Offered):
            source = event.source + (f", reliability {event.reliability:g}" if event.reliability is not None else "")
            if event.shared:
                return f"turn {event.turn}: you share {event.fact} ({source}) with the agent: {event.why}"
            if event.sender == "human":
                return f"turn {event.turn}: your fact {event.fact} ({source}) goes to the agent: {event.why}"
            return f"turn {event.turn}: the agent offers {event.fact} ({source}): {event.why}"
        if isinstance(event, Responded):
            trust = f" at reliability {event.reliability:g}" if event.reliability is not None else ""
            return f"   {who[event.by]} {event.response} {event.fact}{trust}"
        if isinstance(event, Diagnosed) and event.stage == "initial":
            return "at the start " + self._choices(event)
        if isinstance(event, Diagnosed) and event.stage == "turn":
            return "   now " + self._choices(event)
        if isinstance(event, Stated):
            implied = "" if event.implied is None or event.matches else (
                f" (the beliefs and values on record for you imply {event.implied})"
            )
            return f"you prefer {event.action}{implied}"
        if isinstance(event, ValuesChanged):
            return f"you changed your values: {edits(event.changed) or 'nothing changed'}"
        if isinstance(event, Observed):
            return f"you observed {event.variable}={event.state} ({event.source}, reliability {event.reliability:g})"
        if isinstance(event, Undone):
            return f"you took back {event.text}"
        if isinstance(event, Concluded):
            return f"The exchange is over: {event.why}." if event.why else "The exchange is over."
        if isinstance(event, Diagnosed):
            return "final diagnosis: " + self._choices(event)
        if isinstance(event, Decided):
            return f"your decision: {event.action}" + (f" ({event.reasons})" if event.reasons else "")
        if isinstance(event, Eliciting):
            return f"the facts are exchanged; now a few questions about your values of {', '.join(event.unknown)}"
        if isinstance(event, Asked):
            return f"value question {event.number}: {event.text}"
        if isinstance(event, Answered):
            return f"   you answered {event.answer}"
        if isinstance(event, Conflicted):
            return "   these answers cannot all hold: " + "; ".join(f"{a['number']}. {a['answer']}" for a in event.answers)
        if isinstance(event, Withdrawn):
            return f"   you withdrew your answer to question {event.number}"
        if isinstance(event, Declined):
            return "   you declined further questions"
        if isinstance(event, Elicited):
            said = {"stopped": event.stopped, "decision": event.decision, "agreement": event.agreement}
            return f"your values: {stopped_text(said, who='you')}"
        return None

    def _choices(self, event: Diagnosed) -> str:
        """The choices a diagnosis event records, in words."""
        mine = event.choices.get("human")
        if self.predict_only:
            if mine is None:
                return "your values are not known yet"
            other = event.cells.get("agent beliefs, human values")
            change = "would not change it" if other == mine else f"would make it {other}"
            return f"you would choose {mine}; the agent's predictions {change}"
        agent = event.choices.get("agent")
        yours = "your values are not known yet" if mine is None else f"you would choose {mine}"
        return f"the agent would choose {agent}, {yours} ({_badge(event.kind).lower()})"

    def belief_rows(self) -> list[tuple[str, str, str, str, str]]:
        """Each difference of belief as text: (belief, the agent's numbers, yours, the facts behind
        each), every number with its state's name."""
        states = self.engine.model.network.states
        rows = []
        for diff, behind_agent, behind_human in self.differences():
            name = diff.variable if diff.row is None else f"{diff.variable} | {given_text(diff.row)}"
            names = list(states[diff.variable])
            rows.append(
                (
                    name,
                    named_numbers(names, diff.a, ", "),
                    named_numbers(names, diff.b, ", "),
                    ", ".join(behind_agent) or "—",
                    ", ".join(behind_human) or "—",
                )
            )
        return rows

    def differences(self) -> list[tuple[Difference, list[str], list[str]]]:
        """Where the two sides' beliefs differ, each with the facts behind it on each side."""
        agent, human = self.engine.graphs["agent"], self.engine.graphs["human"]
        behind_a, behind_h = agent.informing(), human.informing()
        return [
            (d, behind_a.get(d.variable, []), behind_h.get(d.variable, []))
            for d in differences(self.engine.oracle, agent, human)
        ]

    def conflicts(self) -> tuple[list[ValueConflict], str | None]:
        """Value conflicts and the main trade-off in words (none in predict-only, none while the
        human's values are unknown); with the human's 90% intervals once they were asked."""
        ua, uh = self.engine.utilities["agent"], self.engine.utilities["human"]
        if ua is None or uh is None:
            return [], None
        asked = intervals(self.engine.elicited) if self.engine.elicited is not None else None
        found = value_conflicts(ua, uh, dict(self.engine.model.network.states), human_intervals=asked)
        choices = self.diagnosis.choices
        differ = "human" in choices and choices.get("agent") != choices["human"]
        return found, tradeoff(found) if differ else None  # a trade-off only where the choices differ

    def human_values(self) -> list[tuple[str, str, float | None, float | None]]:
        """(outcome, state, the human's utility or None while unknown, the agent's or None) for every
        outcome state."""
        net = self.engine.model.network
        mine = self.engine.values["human"] or {}
        theirs = self.engine.values["agent"]

        def utility(values: dict, o: str, s: str) -> float | None:
            stated = values.get(o, {})
            return None if stated == UNKNOWN else float(stated.get(s, 0.0))

        return [
            (o, s, utility(mine, o, s), None if theirs is None else utility(theirs, o, s))
            for o in net.outcomes
            for s in net.states[o]
        ]

    def human_values_with(self, outcome: str, state: str, utility: float) -> dict:
        """The human's values as written, with one utility stated (an outcome that was unknown
        becomes stated: its other states 0)."""
        values = {o: v if v == UNKNOWN else dict(v) for o, v in (self.engine.values["human"] or {}).items()}
        before = values.get(outcome)
        values[outcome] = {**(before if isinstance(before, dict) else {}), state: utility}
        return values

    def question(self) -> Asked | None:
        """The value question waiting for the human's answer, if any."""
        return self.engine.question

    def stated(self) -> str | None:
        """The position the human stated, if any."""
        return next((e.action for e in self.live.events if isinstance(e, Stated)), None)


def _badge(kind: str) -> str:
    """A diagnosis kind as the status badge shows it (full sessions)."""
    return "VALUES UNKNOWN" if kind == "unknown" else kind.upper()
