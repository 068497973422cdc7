"""The session report of SCENARIO.md, rebuilt from events alone (so replay equals the session)."""

from __future__ import annotations

from collections.abc import Sequence

from crux.dialogue.protocol import (
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
    Undone,
    ValuesChanged,
    Withdrawn,
    Declined,
    Conflicted,
    human_act,
)


def _diagnosis(d: Diagnosed) -> dict:
    return {"kind": d.kind, "belief_share": d.belief_share, "value_share": d.value_share, "cells": d.cells}


def undone(events: Sequence) -> set[int]:
    """The indices of the events that an undo took back: each :class:`Undone` takes back the last act
    of the human still standing (:func:`dialogue.protocol.human_act`) and everything after it."""
    acts: list[int] = []
    out: set[int] = set()
    for i, e in enumerate(events):
        if isinstance(e, Undone):
            if acts:
                out.update(range(acts.pop(), i))
        elif human_act(e):
            acts.append(i)
    return out


def build_report(events: Sequence) -> dict:
    """The report: scenario, mode, initial, turns, final, decision (None where not reached yet).

    Every turn is shown as it was at that turn; a value edit, an observation or an undo is an entry
    of its own in ``history`` (with the diagnosis that followed it), and what an undo took back is
    kept, marked ``"undone": true``.
    """
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
    gone = undone(events)
    standing = [e for i, e in enumerate(events) if i not in gone]
    stated = [e for e in events if isinstance(e, Stated)]
    if stated:
        report["stated"] = [{"action": e.action, "implied": e.implied, "matches": e.matches} for e in stated]
    elicitation = _elicitation(standing)
    if elicitation is not None:
        report["elicitation"] = elicitation
    history: list[dict] = []
    offers: dict[str, Offered] = {}
    last: dict | None = None
    for i, e in enumerate(events):
        entry: dict | None = None
        if isinstance(e, Diagnosed):
            if e.stage == "initial":
                report["initial"] = {"choices": e.choices, "diagnosis": _diagnosis(e)}
            elif e.stage == "turn" and last is not None:
                last["choices"] = e.choices
                last["diagnosis"] = _diagnosis(e)
            elif e.stage == "final" and i not in gone:
                report["final"] = {"choices": e.choices, "diagnosis": _diagnosis(e)}
        elif isinstance(e, Offered):
            offers[e.fact] = e
        elif isinstance(e, Responded):
            offer = offers[e.fact]
            entry = {
                "type": "turn",
                "turn": e.turn,
                "from": offer.sender,
                "to": offer.receiver,
                "fact": e.fact,
                "why": offer.why,
                "response": e.response,
            }
            if offer.shared:
                entry["shared"] = True
            if e.reliability is not None:
                entry["reliability"] = e.reliability
                entry["stated_reliability"] = offer.reliability
            report["turns"].append(entry)
        elif isinstance(e, ValuesChanged):
            entry = {"type": "values", "party": e.party, "values": e.values, "changed": e.changed}
            report.setdefault("value_changes", []).append(entry)
        elif isinstance(e, Observed):
            entry = {
                "type": "observation",
                "fact": e.fact,
                "variable": e.variable,
                "state": e.state,
                "reliability": e.reliability,
                "source": e.source,
            }
            report.setdefault("observations", []).append(entry)
        elif isinstance(e, Undone):
            entry = {"type": "undo", "undid": e.undid, "text": e.text}
        elif isinstance(e, Concluded) and i not in gone and report["final"] is not None:
            report["final"]["unresolved_beliefs"] = e.unresolved_beliefs
            report["final"]["value_conflicts"] = e.value_conflicts
            report["final"]["tradeoff"] = e.tradeoff
            report["final"]["why"] = e.why
        elif isinstance(e, Decided):
            report["decision"] = {"action": e.action, "by": e.by, "reasons": e.reasons, "follows": e.follows}
            report["complete"] = True
        if entry is not None:
            if i in gone:
                entry["undone"] = True
            history.append(entry)
            last = entry
    report["history"] = history
    return report


def _elicitation(events: Sequence) -> dict | None:
    """The value questions: what was unknown, each question and answer (a withdrawn one marked), the
    answers that clashed, and the values they gave."""
    start = next((e for e in events if isinstance(e, Eliciting)), None)
    if start is None:
        return None
    answers = {e.number: e.answer for e in events if isinstance(e, Answered)}
    withdrawn = {e.number for e in events if isinstance(e, Withdrawn)}
    declined = next((e.number for e in events if isinstance(e, Declined)), None)
    asked = {q.number: q for q in events if isinstance(q, Asked)}  # a question asked again after an undo: the last
    questions = []
    for q in asked.values():
        entry = {
            "number": q.number,
            "kind": q.kind,
            "question": q.text,
            "first": q.first,
            "second": q.second,
            "given": q.given,
            "answer": answers.get(q.number),
        }
        if q.number in withdrawn:
            entry["withdrawn"] = True
        if q.number == declined:
            entry["declined"] = True
        questions.append(entry)
    out: dict = {"unknown": start.unknown, "stated": start.stated, "questions": questions}
    clashes = {tuple(e.numbers): e for e in events if isinstance(e, Conflicted)}  # one asked again after an undo: once
    conflicts = [{"numbers": e.numbers, "answers": e.answers} for e in clashes.values()]
    if conflicts:
        out["conflicts"] = conflicts
    done = next((e for e in events if isinstance(e, Elicited)), None)
    if done is not None:
        out.update(
            stopped=done.stopped, decision=done.decision, agreement=done.agreement, values=done.values, utilities=done.utilities
        )
    return out


STOPPED = {
    "settled": "the decision is settled: {pct}% of what remains uncertain points to {decision}",
    "limit": "the question limit was reached before the decision settled: the answers point to {decision}, "
    "but only {pct}% of what remains uncertain agrees",
    "exhausted": "no question of any kind could tell more about the decision; the answers point to {decision} "
    "({pct}% of what remains uncertain agrees)",
    "declined": "{who} declined further questions; the answers so far point to {decision} "
    "({pct}% of what remains uncertain agrees)",
}
"""Why the value questions stopped, in words, with where the answers point and how surely."""


def stopped_text(asked: dict, who: str = "the human") -> str:
    return STOPPED[asked["stopped"]].format(pct=f"{100 * asked['agreement']:.0f}", decision=asked["decision"], who=who)


def given_text(row: dict) -> str:
    """``road=wet, action=swerve``."""
    return ", ".join(f"{k}={v}" for k, v in row.items())


def named_numbers(states: list[str] | None, p: list[float], sep: str = " / ") -> str:
    """A distribution with its state names: ``dry 0.14 / wet 0.86`` (numbers alone when names are unknown)."""
    if states is None or len(states) != len(p):
        return sep.join(f"{x:.2f}" for x in p)
    return sep.join(f"{s} {x:.2f}" for s, x in zip(states, p))


def edits(changed: list[dict]) -> str:
    """What a value edit changed, in words: ``harm=cat from -300 to -290`` (``unknown`` where not stated)."""

    def utility(x: float | None) -> str:
        return "unknown" if x is None else f"{x:g}"

    return ", ".join(f"{c['outcome']}={c['state']} from {utility(c['before'])} to {utility(c['after'])}" for c in changed)


def _response(t: dict) -> str:
    if t["response"] == "accepted" and "reliability" in t:
        own = t.get("stated_reliability")
        return f"accepted at reliability {t['reliability']:g}" + (f" (its source gives {own:g})" if own is not None else "")
    return t["response"]


def share_note(d: dict) -> str | None:
    """What a share below 0 (and so the other's above 1) means, in words; None when both are in [0, 1]."""
    b, v = d.get("belief_share"), d.get("value_share")
    if b is None or v is None or (0.0 <= b <= 1.0 and 0.0 <= v <= 1.0):
        return None
    low, high = ("belief", "value") if b < 0 else ("value", "belief")
    pulls = "beliefs" if low == "belief" else "values"
    return (
        f"The {low} share is below 0: the difference in {pulls} pulls the two choices together, so the "
        f"{high} difference accounts for more than the whole gap ({100 * max(b, v):.0f}%) and the {pulls} "
        f"take {100 * abs(min(b, v)):.0f}% of it back."
    )


def render(report: dict) -> str:
    """A readable account of the session: each turn as it was, every edit and undo in its place."""
    predict_only = report["mode"] == "predict-only"
    lines = [f"Scenario {report['scenario']} ({report['mode']})", ""]

    def choices(c: dict) -> str:
        said = ", ".join(f"the {p} would choose {a}" for p, a in c.items())
        if "human" not in c:
            said += (", " if said else "") + "the human's values are not known yet"
        return said

    def diagnosis(d: dict) -> str:
        if d["kind"] == "unknown":
            return "no diagnosis until they are asked"
        if predict_only:
            return "the agent's predictions would not change it" if d["kind"] == "agree" else (
                "the agent's predictions would change it (a matter of facts)"
            )
        if d["belief_share"] is None:
            return d["kind"]
        return f"{d['kind']} (belief share {d['belief_share']:.2f}, value share {d['value_share']:.2f})"

    def now(entry: dict) -> str:
        return f"; now {choices(entry['choices'])}" if "choices" in entry else ""

    if report["initial"]:
        lines.append(f"At the start {choices(report['initial']['choices'])}: {diagnosis(report['initial']['diagnosis'])}.")
    for entry in report.get("history", report["turns"]):
        kind = entry.get("type", "turn")
        mark = " (later undone)" if entry.get("undone") else ""
        if kind == "turn":
            text = (
                f"  turn {entry['turn']}: the {entry['from']} offers {entry['fact']} to the {entry['to']} "
                f"({entry['why']}): {_response(entry)}{mark}"
            )
        elif kind == "values":
            changed = edits(entry["changed"])
            text = f"  the {entry['party']} changed their values{': ' + changed if changed else ''}{mark}"
        elif kind == "observation":
            text = (
                f"  the human observed {entry['variable']}={entry['state']} ({entry['source']}, reliability "
                f"{entry['reliability']:g}) as {entry['fact']}{mark}"
            )
        else:
            text = f"  the human took back {entry['text'].replace('your ', 'their ')}"
        lines.append(text + now(entry))
    asked = report.get("elicitation")
    if asked:
        lines.append(f"Then the human was asked about their values of {', '.join(asked['unknown'])}:")
        for q in asked["questions"]:
            said = q["answer"] or ("declined" if q.get("declined") else "(not answered yet)")
            lines.append(f"  {q['number']}. {q['question']} {said}" + (" (withdrawn)" if q.get("withdrawn") else ""))
        for c in asked.get("conflicts", []):
            clash = "; ".join(f"{a['number']}. {a['answer']}" for a in c["answers"])
            lines.append(f"  Answers that cannot all hold: {clash}; one was withdrawn.")
        if "stopped" in asked:
            lines.append(f"  Stopped: {stopped_text(asked)}. Utility / range, mean and 90% interval:")
            for outcome, states in asked["utilities"].items():
                for state, u in states.items():
                    if u["interval"][0] != u["interval"][1]:
                        low, high = u["interval"]
                        lines.append(f"    {outcome}={state}: {u['mean']:+.3f} [{low:+.3f}, {high:+.3f}]")
    final = report["final"]
    if final:
        if final.get("why"):
            lines.append(f"The exchange ended: {final['why']}.")
        lines.append(f"In the end {choices(final['choices'])}: {diagnosis(final['diagnosis'])}.")
        if not predict_only:
            explain = {
                "agree": "They agree.",
                "belief": "The disagreement is about facts: with the same beliefs they would choose alike.",
                "value": "The disagreement is about values: with the same beliefs they would still choose differently.",
                "both": "The disagreement is partly about facts and partly about values.",
            }
            lines.append(explain[final["diagnosis"]["kind"]])
            note = share_note(final["diagnosis"])
            if note:
                lines.append(note)
        for u in final.get("unresolved_beliefs", []):
            where = f" given {given_text(u['given'])}" if "given" in u else ""
            states = u.get("states")
            lines.append(
                f"  unresolved belief about {u['variable']}{where}: agent {named_numbers(states, u['agent'])}, "
                f"human {named_numbers(states, u['human'])} ({'; '.join(u['causes'])}); settle it: {u['settle']} "
                f"(value of information {u['value_of_information']:.4f})"
            )
        for c in final.get("value_conflicts", []):
            interval = c.get("human_interval")
            asked_range = f" (90% interval {interval[0]:.3f} to {interval[1]:.3f})" if interval else ""
            lines.append(
                f"  value conflict on {c['outcome']}={c['state']}: agent {c['agent']:.3f}, human {c['human']:.3f}{asked_range}"
            )
        if final.get("tradeoff") and final["choices"].get("agent") != final["choices"].get("human"):
            lines.append(f"  In words: {final['tradeoff']}.")
    if report["decision"]:
        d = report["decision"]
        reasons = f" Reasons: {d['reasons']}" if d.get("reasons") else ""
        lines.append(f"Decision (by the {d['by']}): {d['action']}.{reasons}")
        lines += _differs(report)
    return "\n".join(lines)


def _differs(report: dict) -> list[str]:
    """Where the decision is not what the human's own record implies, it says so, and why."""
    d, out = report["decision"], []
    why = f"the {d['by']} gave as reason: {d['reasons']}" if d.get("reasons") else f"the {d['by']} gave no reason"
    mine = (report["final"] or {}).get("choices", {}).get("human")
    asked = report.get("elicitation") or {}
    if asked.get("decision") and asked["decision"] != d["action"]:
        out.append(
            f"This differs from where the human's answers point ({asked['decision']}, "
            f"{100 * asked['agreement']:.0f}% of what remained uncertain agreed); {why}."
        )
    elif mine and mine != d["action"]:
        out.append(f"This differs from the choice the human's own beliefs and values imply ({mine}); {why}.")
    return out
