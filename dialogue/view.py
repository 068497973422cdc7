"""What a front end shows of a live session, computed without any UI toolkit.

The terminal UI is a shell over this: it reads these views and sends the
engine messages; it decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from beliefs.diff import Difference, differences
from dialogue.diagnosis import Diagnosis
from dialogue.elicitation import intervals
from dialogue.protocol import Asked, Stated
from dialogue.session import LiveSession
from oracle.query import Distribution, Query
from values.tradeoffs import ValueConflict, tradeoff, value_conflicts
from worldmodel.spec import UNKNOWN


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
        return found, tradeoff(found)

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
