"""What an adversarial user does to transcripts, `crux learn`, the options and batch files: a clear
error (exit 1, no traceback) and nothing written or lost."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.dialogue.session import LiveSession
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import load_model

runner = CliRunner()


def crux(*args: str):
    result = runner.invoke(app, list(args))
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "internal error" not in stream, stream
    return result


def finished(path) -> bytes:
    result = crux("session", str(CANONICAL), "--headless", "--transcript", str(path))
    assert result.exit_code == 0, result.stderr
    return path.read_bytes()


# -- transcripts ----------------------------------------------------------------------------


def test_a_new_session_never_writes_into_an_existing_file(tmp_path):
    kept = finished(tmp_path / "t.jsonl")
    again = crux("session", str(CANONICAL), "--headless", "--transcript", str(tmp_path / "t.jsonl"))
    assert again.exit_code == 1 and "exists" in again.stderr and "--resume" in again.stderr
    assert (tmp_path / "t.jsonl").read_bytes() == kept
    notes = tmp_path / "notes.txt"  # not a transcript at all: untouched too
    notes.write_text("my notes\n")
    other = crux("session", str(CANONICAL), "--headless", "--transcript", str(notes))
    assert other.exit_code == 1 and notes.read_text() == "my notes\n"


def test_a_second_writer_of_one_transcript_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    model = load_model(CANONICAL)
    first = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), transcript=path)
    written = path.read_bytes()
    try:
        with pytest.raises(CruxError, match="another session is writing"):
            LiveSession(CANONICAL, model, Oracle(model, device="cpu"), resume=path)
        resumed = crux("session", str(CANONICAL), "--headless", "--resume", str(path))
        assert resumed.exit_code == 1 and "another session is writing" in resumed.stderr
        assert path.read_bytes() == written
    finally:
        first.close()
    again = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), resume=path)  # free once closed
    again.close()


def test_replay_says_what_an_unfinished_or_odd_file_holds(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = crux("replay", str(empty))
    assert result.exit_code == 1 and "is empty" in result.stderr and result.stdout == ""
    whole = finished(tmp_path / "t.jsonl").decode().splitlines()
    started = tmp_path / "started.jsonl"
    started.write_text(whole[0] + "\n" + whole[1] + "\n")
    result = crux("replay", str(started), "--json")
    assert result.exit_code == 1 and "left before its decision" in result.stderr and "--resume" in result.stderr
    assert "left before its decision" in json.loads(result.stdout)["error"]  # --json: the error in JSON too
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(whole + whole) + "\n")
    result = crux("replay", str(twice))
    assert result.exit_code == 1 and "holds 2 sessions" in result.stderr
    result = crux("session", str(CANONICAL), "--headless", "--resume", str(twice))
    assert result.exit_code == 1 and "holds 2 sessions" in result.stderr


def test_the_mode_cannot_change_on_resume(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(finished(tmp_path / "whole.jsonl").splitlines(keepends=True)[:3]))
    kept = path.read_bytes()
    result = crux("session", str(CANONICAL), "--headless", "--resume", str(path), "--predict-only")
    assert result.exit_code == 1 and "cannot change on resume" in result.stderr and "--predict-only" in result.stderr
    assert path.read_bytes() == kept
    result = crux("session", str(CANONICAL), "--headless", "--resume", str(path), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["mode"] == "full"


# -- crux learn -----------------------------------------------------------------------------


def test_learn_writes_over_nothing_without_force_and_says_comments_go(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text("# the canonical example, annotated\n" + CANONICAL.read_text())
    data = tmp_path / "cases.csv"
    data.write_text("road,animal\nwet,cat\ndry,squirrel\nwet,squirrel\n")
    out = tmp_path / "notes.txt"
    out.write_text("someone's notes\n")
    refused = crux("learn", str(model), str(data), "--out", str(out))
    assert refused.exit_code == 1 and "exists" in refused.stderr and "--force" in refused.stderr
    assert out.read_text() == "someone's notes\n"
    first = crux("learn", str(model), str(data))
    assert first.exit_code == 0, first.stderr
    assert "comment line of" in first.stdout and "not kept" in first.stdout
    learned = tmp_path / "model.learned.yaml"
    written = learned.read_bytes()
    second = crux("learn", str(model), str(data))
    assert second.exit_code == 1 and learned.read_bytes() == written
    forced = crux("learn", str(model), str(data), "--force")
    assert forced.exit_code == 0 and load_model(learned).scenario is not None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written through a temporary file


# -- options and batch files --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-2"])
def test_max_memory_must_be_a_finite_positive_size(value):
    result = crux("ask", str(CANONICAL), "what happens if action=brake", "--max-memory", value)
    assert result.exit_code == 2 and "--max-memory" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--samples", "5000000"], "samples must be at most"),
        (["--particles", "5000000000", "--method", "sampled"], "particles must be at most"),
        (["--samples", "90000", "--max-memory", "0.001"], "allow more --max-memory"),
    ],
)
def test_budgets_are_checked_before_the_work(args, needle):
    result = crux("ask", str(CANONICAL), "what happens if action=brake", *args)
    assert result.exit_code == 1 and needle in result.stderr


def test_a_batch_line_with_a_key_twice_or_no_finite_number_is_refused(tmp_path):
    lines = [
        '{"do": {"action": "brake"}, "outcomes": ["crash"], "outcomes": ["harm"]}',
        '{"do": {"action": "brake"}, "outcomes": ["crash"], "weight": Infinity}',
        '{"do": {"action": "brake"}, "outcomes": ["crash"]}',
        '{"do": {"action": ' + "9" * 6000 + "}}",
    ]
    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    result = crux("ask", str(CANONICAL), "--batch", str(batch))
    assert result.exit_code == 1 and "3 of 4 queries could not be answered" in result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    errors = {o["line"]: o["error"]["message"] for o in out if "line" in o}
    assert errors[1].startswith("the key 'outcomes' is given twice")
    assert errors[2].startswith("Infinity is not a JSON number")
    assert errors[4].startswith("a number of 6,000 digits is too large") and 3 not in errors
    assert out[2]["query"]["outcomes"] == ["crash"]  # the good line is answered
