"""The session report of SCENARIO.md, rebuilt from events alone (so replay equals the session)."""

from __future__ import annotations

from collections.abc import Sequence

from dialogue.protocol import (
    Answered,
    Asked,
    Concluded,
    Decided,
    Diagnosed,
    Elicited,
    Eliciting,
    Observed,
    Offered,
    Responded,
    Started,
    Stated,
    ValuesChanged,
)


def _diagnosis(d: Diagnosed) -> dict:
    return {"kind": d.kind, "belief_share": d.belief_share, "value_share": d.value_share, "cells": d.cells}


def build_report(events: Sequence) -> dict:
    """The report: scenario, mode, initial, turns, final, decision (None where not reached yet)."""
    start = next((e for e in events if isinstance(e, Started)), None)
    report: dict = {
        "scenario": start.scenario if start else None,
        "mode": start.mode if start else None,
        "initial": None,
        "turns": [],
        "final": None,
        "decision": None,
        "complete": False,
    }
    stated = [e for e in events if isinstance(e, Stated)]
    if stated:
        report["stated"] = [{"action": e.action, "implied": e.implied, "matches": e.matches} for e in stated]
    observed = [e for e in events if isinstance(e, Observed)]
    if observed:
        report["observations"] = [
            {"fact": e.fact, "variable": e.variable, "state": e.state, "reliability": e.reliability, "source": e.source}
            for e in observed
        ]
    changed = [e for e in events if isinstance(e, ValuesChanged)]
    if changed:
        report["value_changes"] = [{"party": e.party, "values": e.values} for e in changed]
    elicitation = _elicitation(events)
    if elicitation is not None:
        report["elicitation"] = elicitation
    offers: dict[str, Offered] = {}
    last_turn: dict | None = None
    for e in events:
        if isinstance(e, Diagnosed):
            if e.stage == "initial":
                report["initial"] = {"choices": e.choices, "diagnosis": _diagnosis(e)}
            elif e.stage == "turn" and last_turn is not None:
                last_turn["choices"] = e.choices
                last_turn["diagnosis"] = _diagnosis(e)
            elif e.stage == "final":
                report["final"] = {"choices": e.choices, "diagnosis": _diagnosis(e)}
        elif isinstance(e, Offered):
            offers[e.fact] = e
        elif isinstance(e, Responded):
            offer = offers[e.fact]
            last_turn = {
                "turn": e.turn,
                "from": offer.sender,
                "to": offer.receiver,
                "fact": e.fact,
                "why": offer.why,
                "response": e.response,
            }
            if offer.shared:
                last_turn["shared"] = True
            if e.reliability is not None:
                last_turn["reliability"] = e.reliability
            report["turns"].append(last_turn)
        elif isinstance(e, Concluded) and report["final"] is not None:
            report["final"]["unresolved_beliefs"] = e.unresolved_beliefs
            report["final"]["value_conflicts"] = e.value_conflicts
            report["final"]["tradeoff"] = e.tradeoff
        elif isinstance(e, Decided):
            report["decision"] = {"action": e.action, "by": e.by, "reasons": e.reasons, "follows": e.follows}
            report["complete"] = True
    return report


def _elicitation(events: Sequence) -> dict | None:
    """The value questions: what was unknown, each question and answer, and the values they gave."""
    start = next((e for e in events if isinstance(e, Eliciting)), None)
    if start is None:
        return None
    answers = {e.number: e.answer for e in events if isinstance(e, Answered)}
    questions = [
        {
            "number": q.number,
            "kind": q.kind,
            "question": q.text,
            "first": q.first,
            "second": q.second,
            "given": q.given,
            "answer": answers.get(q.number),
        }
        for q in events
        if isinstance(q, Asked)
    ]
    out: dict = {"unknown": start.unknown, "stated": start.stated, "questions": questions}
    done = next((e for e in events if isinstance(e, Elicited)), None)
    if done is not None:
        out.update(
            stopped=done.stopped, decision=done.decision, agreement=done.agreement, values=done.values, utilities=done.utilities
        )
    return out


def render(report: dict) -> str:
    """A readable account of the session."""
    lines = [f"Scenario {report['scenario']} ({report['mode']})", ""]

    def choices(c: dict) -> str:
        said = ", ".join(f"the {p} would choose {a}" for p, a in c.items())
        if "human" not in c:
            said += (", " if said else "") + "the human's values are not known yet"
        return said

    def diagnosis(d: dict) -> str:
        if d["kind"] == "unknown":
            return "no diagnosis until they are asked"
        if d["belief_share"] is None:
            return d["kind"]
        return f"{d['kind']} (belief share {d['belief_share']:.2f}, value share {d['value_share']:.2f})"

    if report["initial"]:
        lines.append(f"At the start {choices(report['initial']['choices'])}: {diagnosis(report['initial']['diagnosis'])}.")
    for t in report["turns"]:
        lines.append(
            f"  turn {t['turn']}: the {t['from']} offers {t['fact']} to the {t['to']} ({t['why']}): {t['response']}"
            + (f"; now {choices(t['choices'])}" if "choices" in t else "")
        )
    asked = report.get("elicitation")
    if asked:
        lines.append(f"Then the human was asked about their values of {', '.join(asked['unknown'])}:")
        for q in asked["questions"]:
            lines.append(f"  {q['number']}. {q['question']} {q['answer'] or '(not answered yet)'}")
        if "stopped" in asked:
            why = {
                "settled": "the decision no longer depends on what is uncertain",
                "limit": "the most questions were asked",
                "exhausted": "no question is left that could tell more",
            }[asked["stopped"]]
            lines.append(
                f"  Stopped: {why}. The answers point to {asked['decision']} "
                f"({100 * asked['agreement']:.0f}% of what remains uncertain agrees). Utility / range, mean and 90% interval:"
            )
            for outcome, states in asked["utilities"].items():
                for state, u in states.items():
                    if u["interval"][0] != u["interval"][1]:
                        low, high = u["interval"]
                        lines.append(f"    {outcome}={state}: {u['mean']:+.3f} [{low:+.3f}, {high:+.3f}]")
    final = report["final"]
    if final:
        lines.append(f"In the end {choices(final['choices'])}: {diagnosis(final['diagnosis'])}.")
        explain = {
            "agree": "They agree.",
            "belief": "The disagreement is about facts: with the same beliefs they would choose alike.",
            "value": "The disagreement is about values: with the same beliefs they would still choose differently.",
            "both": "The disagreement is partly about facts and partly about values.",
        }
        lines.append(explain[final["diagnosis"]["kind"]])
        for u in final.get("unresolved_beliefs", []):
            where = f" given {u['given']}" if "given" in u else ""
            lines.append(
                f"  unresolved belief about {u['variable']}{where}: agent {u['agent']}, human {u['human']} "
                f"({'; '.join(u['causes'])}); settle it: {u['settle']} (value of information {u['value_of_information']:.4f})"
            )
        for c in final.get("value_conflicts", []):
            interval = c.get("human_interval")
            asked_range = f" (90% interval {interval[0]:.3f} to {interval[1]:.3f})" if interval else ""
            lines.append(
                f"  value conflict on {c['outcome']}={c['state']}: agent {c['agent']:.3f}, human {c['human']:.3f}{asked_range}"
            )
        if final.get("tradeoff"):
            lines.append(f"  In words: {final['tradeoff']}.")
    if report["decision"]:
        lines.append(f"Decision (by the {report['decision']['by']}): {report['decision']['action']}.")
    return "\n".join(lines)
