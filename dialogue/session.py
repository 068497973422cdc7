"""Run a session: drive the engine with two parties, record every event, resume from a transcript."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dialogue.engine import Engine, EngineError
from dialogue.parties import Agent, Decider, Party, ScriptedHuman
from dialogue.protocol import Decide, Decided, Diagnosed, Mode, Offered, Respond, Responded, Started, dump
from dialogue.report import build_report
from dialogue.transcript import Transcript, read_events
from oracle.oracle import Oracle
from worldmodel.errors import CruxError
from worldmodel.model import Model


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Recorder:
    """Collects events; writes the new ones to the transcript; checks replayed ones against it."""

    recorded: list = field(default_factory=list)
    transcript: Transcript | None = None
    on_event: Callable[[object], None] | None = None
    events: list = field(default_factory=list)

    def take(self, produced: list) -> None:
        for event in produced:
            k = len(self.events)
            if k < len(self.recorded):
                old = self.recorded[k]
                if _identity(old) != _identity(event):
                    raise CruxError(
                        f"the transcript does not match this session at event {k + 1}: it has "
                        f"{_identity(old)}, the engine gives {_identity(event)} (was the model changed?)"
                    )
                self.events.append(old)
                continue
            self.events.append(event)
            if self.transcript is not None:
                self.transcript.write([event])
            if self.on_event is not None:
                self.on_event(event)

    def replayed(self, kind: type, **match) -> object | None:
        """The recorded event that comes next, if it is of this kind (a response or a decision)."""
        k = len(self.events)
        if k < len(self.recorded) and isinstance(self.recorded[k], kind):
            event = self.recorded[k]
            if all(getattr(event, key) == value for key, value in match.items()):
                return event
        return None


def _identity(event) -> tuple:
    data = dump(event)
    return (data["type"], data.get("stage"), data.get("fact"), data.get("turn"), data.get("response"), data.get("action"))


def run_session(
    model_path: str | Path,
    model: Model,
    oracle: Oracle,
    *,
    mode: Mode = "full",
    agent: Party | None = None,
    human: Decider | None = None,
    transcript: str | Path | None = None,
    resume: str | Path | None = None,
    on_event: Callable[[object], None] | None = None,
) -> tuple[dict, list]:
    """Run (or resume) a session to its decision; return the report and every event."""
    assert model.scenario is not None
    digest = file_digest(model_path)
    recorded: list = []
    if resume is not None:
        recorded = read_events(resume, repair=True)
        start = recorded[0] if recorded and isinstance(recorded[0], Started) else None
        if start is None:
            raise CruxError(f"{resume}: not a session transcript (no start event)")
        if start.sha256 != digest:
            raise CruxError(f"{resume}: written for another version of {start.model}; resume needs the same model file")
        mode = start.mode
        transcript = resume
    writer = Transcript(transcript) if transcript is not None else None
    rec = Recorder(recorded=recorded, transcript=writer, on_event=on_event)
    try:
        engine = Engine(model, oracle, mode)
        agent = agent or Agent()
        human = human or ScriptedHuman(model.scenario)
        parties: dict[str, Party] = {"agent": agent, "human": human}
        rec.take([Started(scenario=model.scenario.name, mode=mode, model=str(model_path), sha256=digest)])
        rec.take(engine.start())
        while engine.pending is not None:
            offer: Offered = engine.pending
            old = rec.replayed(Responded, fact=offer.fact)
            if old is not None:
                message = Respond(fact=old.fact, accepted=old.response == "accepted", reliability=old.reliability)
            else:
                message = parties[offer.receiver].respond(offer)
            rec.take(engine.handle(message))
        final = next(e for e in reversed(rec.events) if isinstance(e, Diagnosed) and e.stage == "final")
        old = rec.replayed(Decided)
        decision = Decide(action=old.action, reasons=old.reasons) if old is not None else human.decide(final)
        rec.take(engine.handle(decision))
    except EngineError:
        raise
    finally:
        if writer is not None:
            writer.close()
    return build_report(rec.events), rec.events
