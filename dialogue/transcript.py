"""Append-only transcripts: one JSON line per event, flushed as it happens.

A session killed at any moment leaves every event it had written; a torn last
line (killed mid-write) is dropped when the transcript is read back.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from pydantic import ValidationError

from crux.dialogue.protocol import EVENT, dump
from crux.worldmodel.errors import CruxError


class Transcript:
    """Writes events to a file as they happen, holding an advisory lock on it.

    A new transcript (``resume=False``) is a new file: an existing one is refused, never
    appended to (a second session would merge into the first).  Resuming appends to the file
    being resumed.  Either way the file is locked (``flock``) until :meth:`close`, so a second
    writer (two ``--resume`` of one file) fails at once instead of interleaving its events."""

    def __init__(self, path: str | Path, *, resume: bool = False):
        self.path = Path(path)
        try:
            self._file = self.path.open("a" if resume else "x", encoding="utf-8")
        except FileExistsError:
            raise CruxError(
                f"{path}: the file exists; a transcript is never written over or appended to. To continue the "
                f"session it holds: crux session MODEL --resume {path}; for a new session, name a new file"
            ) from None
        except OSError as err:
            raise CruxError(f"{path}: cannot write the transcript: {err}") from None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise CruxError(
                f"{path}: another session is writing this transcript (a second --resume of it?); "
                "wait for it to end, then resume"
            ) from None

    def write(self, events) -> None:
        for event in events:
            self._file.write(json.dumps(dump(event)) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_events(path: str | Path, *, repair: bool = False) -> list:
    """The events of a transcript.  A torn last line is dropped (and cut from the file when
    ``repair``, so that appending continues cleanly); a bad line elsewhere is an error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CruxError(f"{path}: no such transcript") from None
    except OSError as err:
        raise CruxError(f"{path}: cannot read: {err}") from None
    lines = raw.split(b"\n")
    events, good_bytes = [], 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            good_bytes += len(line) + 1
            continue
        last = n == len(lines) or all(not rest.strip() for rest in lines[n:])
        try:
            events.append(EVENT.validate_python(json.loads(line)))
        except (ValueError, ValidationError) as err:
            if last:
                break  # the session was killed while writing this line
            raise CruxError(f"{path}: line {n}: not a Crux event ({str(err).splitlines()[0]})") from None
        good_bytes += len(line) + 1
    if repair and good_bytes < len(raw):
        with path.open("r+b") as f:
            f.truncate(min(good_bytes, len(raw)))
    return events
