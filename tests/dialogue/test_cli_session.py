"""`crux session --headless`, `crux replay` and `crux beliefs` (CLI.md)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from tests.conftest import CANONICAL, EXAMPLES

runner = CliRunner()


def crux(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output + result.stderr
    return result


def test_session_json_report_has_the_normative_keys(tmp_path):
    t = tmp_path / "t.jsonl"
    result = crux("session", CANONICAL, "--headless", "--json", "--transcript", t)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"scenario", "mode", "initial", "turns", "final", "decision"} <= set(report)
    assert {"from", "to", "fact", "response", "choices"} <= set(report["turns"][0])
    assert {"choices", "diagnosis", "unresolved_beliefs", "value_conflicts"} <= set(report["final"])
    replayed = crux("replay", t, "--json")
    assert replayed.exit_code == 0 and json.loads(replayed.stdout) == report


def test_resume_a_finished_session_prints_the_same_report(tmp_path):
    t = tmp_path / "t.jsonl"
    first = crux("session", CANONICAL, "--headless", "--json", "--transcript", t).stdout
    lines = t.read_text().splitlines(keepends=True)
    t.write_text("".join(lines[:4]))
    again = crux("session", CANONICAL, "--headless", "--json", "--resume", t)
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(first)
    assert len(t.read_text().splitlines()) == len(lines)


def test_session_on_unknown_values_asks_them_and_reports_intervals(tmp_path):
    t = tmp_path / "t.jsonl"
    example = EXAMPLES / "squirrel_or_cat_unknown_values.yaml"
    result = crux("session", example, "--headless", "--json", "--transcript", t)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["initial"]["diagnosis"]["kind"] == "unknown"
    assert report["elicitation"]["questions"] and report["elicitation"]["stopped"] in ("settled", "limit", "exhausted")
    assert all("human_interval" in c for c in report["final"]["value_conflicts"])
    assert report["decision"]["action"] == "swerve"
    replayed = crux("replay", t, "--json")
    assert replayed.exit_code == 0 and json.loads(replayed.stdout) == report


def test_headless_unknown_values_without_answers_is_one_clear_error(tmp_path):
    data = yaml.safe_load((EXAMPLES / "squirrel_or_cat_unknown_values.yaml").read_text())
    del data["parties"]["human"]["responds"]["values"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = crux("session", path, "--headless")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: parties.human.responds.values: the human's values of harm, crash are unknown")
    assert "add responds.values.harm: {state: utility}" in result.stderr


def test_readable_session_and_every_example():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for extra in ([], ["--predict-only"]):
            result = crux("session", path, "--headless", *extra)
            assert result.exit_code == 0, result.stderr
            assert "Decision (by the human)" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["replay", "nowhere.jsonl"], "no such transcript"),
        (["beliefs", CANONICAL, "--as", "world"], "agent or human"),
        (["beliefs", CANONICAL, "--format", "png"], "png"),
    ],
)
def test_bad_arguments(args, needle):
    result = crux(*args)
    assert result.exit_code in (1, 2)
    assert needle in result.stderr


def test_replay_rejects_a_corrupt_line(tmp_path):
    t = tmp_path / "t.jsonl"
    crux("session", CANONICAL, "--headless", "--transcript", t)
    lines = t.read_text().splitlines()
    lines[2] = '{"type": "nonsense"}'
    t.write_text("\n".join(lines) + "\n")
    result = crux("replay", t)
    assert result.exit_code == 1 and "line 3: not a Crux event" in result.stderr


def test_beliefs_json_dot_graphml():
    data = json.loads(crux("beliefs", CANONICAL, "--as", "human").stdout)
    assert data["party"] == "human"
    assert data["variables"]["road"]["marginal"] == pytest.approx([0.9, 0.1])
    assert data["variables"]["animal"]["marginal"][1] == pytest.approx(0.3 * 0.85 / (0.3 * 0.85 + 0.7 * 0.15))
    assert set(data["variables"]["crash"]["marginal_by_action"]) == {"brake", "swerve", "continue"}
    assert data["facts"]["camera"]["source"] == "dash camera" and data["facts"]["camera"]["status"] == "held"
    assert {"from": "fact:camera", "to": "animal", "kind": "informs"} in data["edges"]
    dot = crux("beliefs", CANONICAL, "--format", "dot").stdout
    assert dot.startswith('digraph "agent beliefs"') and '"fact:radar" -> "oncoming" [style=dashed];' in dot
    graphml = crux("beliefs", CANONICAL, "--format", "graphml").stdout
    ET.fromstring(graphml)  # well-formed
    assert "fleet logs" in graphml


def test_a_terminal_session_without_transcript_is_still_written_and_says_how_to_resume(tmp_path, monkeypatch):
    """The person leaves at once (the app's run is a stand-in): the session is on disk in
    crux-sessions/ and the way back is printed."""
    from crux.dialogue.tui.app import CruxApp

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(CruxApp, "run", lambda self: None)
    result = crux("session", CANONICAL)
    assert result.exit_code == 0, result.stderr
    [saved] = (tmp_path / "crux-sessions").glob("squirrel_or_cat-*.jsonl")
    assert saved.read_text().count("\n") >= 3  # start, initial diagnosis, the first offer
    relative = f"crux-sessions/{saved.name}"
    assert f"it is saved in {relative}" in result.stdout
    assert f"--resume {relative}" in result.stdout
    again = crux("session", CANONICAL, "--resume", relative)
    assert again.exit_code == 0 and not list((tmp_path / "crux-sessions").glob("*-2.jsonl"))


def test_session_memory_and_method_options():
    """A session's oracle takes --method, --max-memory and --particles: exact refuses what does not
    fit in words, auto samples it and says so once on stderr (never silently)."""
    tiny = ["--max-memory", "0.00000001"]
    refused = runner.invoke(app, ["session", str(CANONICAL), "--headless", "--method", "exact", *tiny])
    assert refused.exit_code == 1 and "needs an intermediate of" in refused.stderr and "Traceback" not in refused.stderr
    sampled = runner.invoke(app, ["session", str(CANONICAL), "--headless", *tiny, "--particles", "2000", "--json"])
    assert sampled.exit_code == 0, sampled.stderr
    assert json.loads(sampled.stdout)["complete"]
    notes = [line for line in sampled.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "sampled instead (2,000 particles" in notes[0]
    roomy = runner.invoke(app, ["session", str(CANONICAL), "--headless", "--method", "exact", "--json"])
    assert roomy.exit_code == 0 and roomy.stderr == ""
