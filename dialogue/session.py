"""Sessions: an engine, a record of every event, and the transcript on disk.

:class:`LiveSession` is what front ends drive (the headless runner below, the
terminal UI): every message goes to the engine and every event it causes is
recorded and written to the transcript at once.  Resuming replays the
recorded messages into a fresh engine (checking that it says the same) and
goes on from there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from crux.dialogue.elicitation import Elicitation
from crux.dialogue.engine import Engine
from crux.dialogue.parties import Agent, Human, Party, ScriptedHuman
from crux.dialogue.protocol import Decided, Diagnosed, Eliciting, Message, Mode, Started, dump, message_of
from crux.dialogue.report import build_report, render
from crux.dialogue.transcript import Transcript, read_events
from crux.oracle.oracle import Oracle
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import Model


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _identity(event) -> tuple:
    data = dump(event)
    keys = ("type", "stage", "fact", "turn", "response", "action", "party", "variable", "number", "answer")
    return tuple(data.get(k) for k in keys)


class LiveSession:
    """An engine whose every event is recorded (and written to a transcript as it happens)."""

    def __init__(
        self,
        model_path: str | Path,
        model: Model,
        oracle: Oracle,
        *,
        mode: Mode | None = None,
        transcript: str | Path | None = None,
        resume: str | Path | None = None,
        on_event: Callable[[object], None] | None = None,
        elicitation: Elicitation | None = None,
    ):
        """``mode``: None is a full session, or on resume the transcript's mode (a mode given
        that differs from the transcript's is refused: it cannot change on resume)."""
        if model.scenario is None:
            raise CruxError(f"{model_path}: a session needs a scenario (parties, facts, a decision)")
        digest = file_digest(model_path)
        recorded: list = []
        self._writer: Transcript | None = None
        where = resume if resume is not None else transcript
        self._path = None if where is None else Path(where)
        try:
            if resume is not None:
                self._writer = Transcript(resume, resume=True)  # locked before it is read and repaired
                recorded = read_events(resume, repair=True)
                start = _the_start(resume, recorded)
                if start.sha256 != digest:
                    raise CruxError(f"{resume}: written for another version of {start.model}; resume needs the same model file")
                if mode is not None and mode != start.mode:
                    raise CruxError(
                        f"{resume}: the session runs in {start.mode} mode; the mode cannot change on resume "
                        f"({'drop --predict-only' if mode == 'predict-only' else 'resume it as it was'})"
                    )
                mode = start.mode
                asked = next((e for e in recorded if isinstance(e, Eliciting)), None)
                if asked is not None:  # the value questions run as they did
                    elicitation = Elicitation(particles=asked.particles, max_questions=asked.max_questions, seed=asked.seed)
            elif transcript is not None:
                self._writer = Transcript(transcript)
            mode = mode or "full"
            self.engine = Engine(model, oracle, mode, elicitation or Elicitation())
            self.events: list = []
            self.on_event = on_event
            self._recorded = recorded
            self._take([Started(scenario=model.scenario.name, mode=mode, model=str(model_path), sha256=digest)])
            self._take(self.engine.start())
            while len(self.events) < len(recorded):
                message = message_of(recorded[len(self.events)])
                if message is None:
                    raise self._mismatch(recorded[len(self.events)], None)
                self._take(self.engine.handle(message))
        except BaseException:
            self.close()
            raise

    @property
    def mode(self) -> Mode:
        return self.engine.mode

    def send(self, message: Message) -> list:
        """Give the engine one message; record and return the events it causes."""
        start = len(self.events)
        self._take(self.engine.handle(message))
        return self.events[start:]

    def report(self) -> dict:
        return build_report(self.events)

    @property
    def transcript_path(self) -> Path | None:
        """Where the events are written (None: nowhere)."""
        return self._path

    def report_path(self) -> Path | None:
        """Where the readable report goes: beside the transcript (``t.jsonl`` -> ``t.report.txt``)."""
        path = self.transcript_path
        return None if path is None else path.with_name(f"{path.stem}.report.txt")

    def save_report(self) -> Path | None:
        """Write the readable report beside the transcript (as the session stands); its path."""
        path = self.report_path()
        if path is not None:
            try:
                path.write_text(render(self.report()) + "\n", encoding="utf-8")
            except OSError as err:
                raise CruxError(f"{path}: cannot write the report: {err}") from None
        return path

    def final(self) -> Diagnosed | None:
        return next((e for e in reversed(self.events) if isinstance(e, Diagnosed) and e.stage == "final"), None)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _take(self, produced: list) -> None:
        for event in produced:
            k = len(self.events)
            if k < len(self._recorded):
                old = self._recorded[k]
                if _identity(old) != _identity(event):
                    raise self._mismatch(old, event)
                self.events.append(old)
                continue
            self.events.append(event)
            if self._writer is not None:
                self._writer.write([event])
            if self.on_event is not None:
                self.on_event(event)

    def _mismatch(self, old, new) -> CruxError:
        k = len(self.events) + 1
        return CruxError(
            f"the transcript does not match this session at event {k}: it has {_identity(old)}, "
            f"the engine gives {_identity(new) if new is not None else 'nothing'} (was the model changed?)"
        )


def _the_start(path: str | Path, events: list) -> Started:
    """The start event of a transcript that holds one session (what resume and replay need)."""
    starts = sum(isinstance(e, Started) for e in events)
    if not events or not isinstance(events[0], Started):
        raise CruxError(f"{path}: not a session transcript (it {'is empty' if not events else 'has no start event'})")
    if starts > 1:
        raise CruxError(f"{path}: holds {starts} sessions, one after another; a transcript holds one session")
    return events[0]


def check_complete(path: str | Path, events: list) -> None:
    """A transcript to replay: one session, ended by its decision; else a clear error that says
    what the file holds (and, for a session left before its decision, how to go on)."""
    start = _the_start(path, events)
    if not any(isinstance(e, Decided) for e in events):
        raise CruxError(
            f"{path}: a session of {start.scenario} left before its decision ({len(events)} events); "
            f"to go on: crux session {start.model} --resume {path}"
        )


def run_session(
    model_path: str | Path,
    model: Model,
    oracle: Oracle,
    *,
    mode: Mode | None = None,
    agent: Party | None = None,
    human: Human | None = None,
    transcript: str | Path | None = None,
    resume: str | Path | None = None,
    on_event: Callable[[object], None] | None = None,
    elicitation: Elicitation | None = None,
) -> tuple[dict, list]:
    """Run (or resume) a session to its decision with scripted parties; return the report and events."""
    if model.scenario is None:
        raise CruxError(f"{model_path}: a session needs a scenario (parties, facts, a decision)")
    person: Human = human or ScriptedHuman(model.scenario, model.network, source=model_path)
    live = LiveSession(
        model_path, model, oracle, mode=mode, transcript=transcript, resume=resume, on_event=on_event, elicitation=elicitation
    )
    try:
        parties: dict[str, Party] = {"agent": agent or Agent(), "human": person}
        engine = live.engine
        while engine.pending is not None or engine.question is not None or engine.conflict is not None:
            if engine.conflict is not None:
                live.send(person.resolve(engine.conflict))
            elif engine.question is not None:
                live.send(person.answer(engine.question))
            else:
                offer = engine.pending
                live.send(parties[offer.receiver].respond(offer))
        if not engine.decided:
            final = live.final()
            assert final is not None  # no pending offer or question means the engine has concluded
            live.send(person.decide(final))
    finally:
        live.close()
    return live.report(), live.events


__all__ = ["LiveSession", "run_session", "file_digest", "check_complete"]
