"""`crux init`: a commented starter scenario that validates, runs, and never overwrites by accident."""

from __future__ import annotations

import json

import pytest
import yaml
from crux.dialogue.cli.app import app
from typer.testing import CliRunner

runner = CliRunner()


def crux(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output + result.stderr
    return result


@pytest.fixture()
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_a_scenario_that_validates_and_runs(here):
    result = crux("init")
    assert result.exit_code == 0, result.stderr
    path = here / "scenario.yaml"
    assert path.is_file()
    assert "wrote scenario.yaml" in result.stdout
    assert "crux session scenario.yaml --headless" in result.stdout  # the next commands

    checked = crux("validate", "scenario.yaml")
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.strip() == "ok: 4 variables, 2 facts"

    ran = crux("session", "scenario.yaml", "--headless", "--json")
    assert ran.exit_code == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["complete"] and report["scenario"] == "scenario"
    initial = report["initial"]
    assert initial["choices"]["agent"] != initial["choices"]["human"]  # they disagree at first
    assert initial["diagnosis"]["kind"] == "belief"
    assert [t["fact"] for t in report["turns"]] == ["forecast", "rescue_log"]
    assert all(t["response"] == "accepted" for t in report["turns"])
    assert report["final"]["diagnosis"]["kind"] == "agree"
    assert not [p for p in here.iterdir() if p.name.endswith(".tmp")]  # written through a temporary file


def test_the_suggested_variation_keeps_a_belief_disagreement(here):
    """The file's own suggestion (a stricter human) ends with the forecast rejected."""
    crux("init")
    text = (here / "scenario.yaml").read_text()
    assert "accept_min_reliability: 0.7" in text
    (here / "strict.yaml").write_text(text.replace("accept_min_reliability: 0.7", "accept_min_reliability: 0.9"))
    report = json.loads(crux("session", "strict.yaml", "--headless", "--json").stdout)
    assert report["turns"][0]["fact"] == "forecast" and report["turns"][0]["response"] == "rejected"
    assert report["final"]["diagnosis"]["kind"] == "belief"


def test_every_field_is_commented(here):
    crux("init")
    text = (here / "scenario.yaml").read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#") or " # " in line]
    assert len(comments) > 40
    for needle in ("default 10", "default 1.0", "default 0.0", "row key", "soft evidence", "unknown", "responds"):
        assert needle in text, needle
    data = yaml.safe_load(text)
    assert set(data) == {"crux", "name", "description", "world", "facts", "parties"}
    assert data["world"]["decision"] == "start" and len(data["world"]["variables"]["start"]["states"]) == 2
    facts = data["facts"]
    assert any("reliability" in f and "observe" in f for f in facts.values())
    assert any("counts" in f for f in facts.values())
    assert data["parties"]["agent"]["values"] != data["parties"]["human"]["values"]
    assert "responds" in data["parties"]["human"]


def test_refuses_to_overwrite_without_force(here):
    path = here / "scenario.yaml"
    path.write_text("mine\n")
    result = crux("init")
    assert result.exit_code == 1
    assert "exists" in result.stderr and "--force" in result.stderr
    assert path.read_text() == "mine\n"
    forced = crux("init", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert path.read_text().startswith("# A starter Crux scenario")


def test_name_argument_and_json(here):
    result = crux("init", "hike", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"written": "hike.yaml"}
    assert yaml.safe_load((here / "hike.yaml").read_text())["name"] == "hike"
    assert crux("init", "trip.yml").exit_code == 0  # a name with its suffix is not given another
    assert (here / "trip.yml").is_file() and not (here / "trip.yml.yaml").exists()


def test_out_writes_elsewhere(here):
    (here / "sub").mkdir()
    result = crux("init", "walk", "--out", "sub/w.yaml", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"written": "sub/w.yaml"}
    assert yaml.safe_load((here / "sub" / "w.yaml").read_text())["name"] == "walk"
    assert crux("validate", "sub/w.yaml").exit_code == 0


@pytest.mark.parametrize(
    ("args", "codes", "needle"),
    [
        (["a/b"], (2,), "plain name"),
        ([""], (2,), "plain name"),
        (["bad name"], (2,), "plain name"),
        (["--out", "x.txt"], (2,), ".yaml or .yml"),
        (["--out", "nowhere/x.yaml"], (1,), "does not exist"),
        (["--out", "."], (1, 2), ""),
    ],
)
def test_bad_names_and_paths_are_clear_errors(here, args, codes, needle):
    result = crux("init", *args)
    assert result.exit_code in codes
    assert needle in result.stderr
    assert result.stdout == ""
    assert [p.name for p in here.iterdir()] == []  # nothing written, no temporary file left
