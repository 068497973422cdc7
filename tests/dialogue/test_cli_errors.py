"""Clear errors instead of silent choices (CLI.md): a variable given two states, --steps on a
model without time, and with --json every error as one JSON object on stdout."""

from __future__ import annotations

import json

import pytest
from crux.dialogue.cli.app import app
from crux.oracle.query import QueryError, assignments, parse_question
from typer.testing import CliRunner

from tests.conftest import CANONICAL, EXAMPLES, ROOT

runner = CliRunner()
BIF = ROOT / "tests" / "data" / "asia.bif.gz"
BROKEN = ROOT / "docs" / "examples" / "broken.yaml"
SCENE = EXAMPLES / "warehouse" / "scene.yaml"

GIVEN_TWICE = "road is given twice, as wet and as dry: give one state"
SET_TWICE = "action is set twice, as swerve and as brake: set one"


def crux(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output + result.stderr
    return result


# -- 1. a variable given two states ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["what happens if action=swerve given road=wet and road=dry"], GIVEN_TWICE),
        (["what happens if action=swerve", "--given", "road=wet", "--given", "road=dry"], GIVEN_TWICE),
        (["what happens if action=swerve given road=wet", "--given", "road=dry"], GIVEN_TWICE),
        (["--do", "action=swerve", "--do", "action=brake"], SET_TWICE),
        (["what happens if action=swerve and action=brake"], SET_TWICE),
        (["what happens if action=swerve", "--do", "action=brake"], SET_TWICE),
    ],
    ids=["question-given", "given-option", "question-and-option", "do-option", "question-if", "question-and-do"],
)
def test_a_variable_given_two_states_names_both(args, message):
    result = crux("ask", CANONICAL, *args)
    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n" and result.stdout == ""


def test_one_state_named_twice_is_the_same_query():
    result = crux("ask", CANONICAL, "what happens if action=swerve given road=wet", "--given", "road=wet",
                  "--do", "action=swerve", "--json")
    assert result.exit_code == 0, result.stderr
    query = json.loads(result.stdout)["query"]
    assert query["do"] == {"action": "swerve"} and query["given"] == {"road": "wet"}


def test_set_and_seen_stays_its_own_error():
    result = crux("ask", CANONICAL, "what happens if action=swerve", "--given", "action=swerve")
    assert result.exit_code == 1 and "is both set (do) and observed (given)" in result.stderr


def test_the_parser_refuses_two_states():
    with pytest.raises(QueryError, match=GIVEN_TWICE):
        parse_question("what happens if action=swerve given road=wet and road=dry")
    with pytest.raises(QueryError, match=SET_TWICE):
        assignments([("action", "swerve"), ("action", "brake")], "do")
    assert assignments([("a", "x"), ("b", "y"), ("a", "x")], "given") == {"a": "x", "b": "y"}


def test_watch_refuses_a_variable_held_at_two_states():
    stream = EXAMPLES / "warehouse" / "stream_plain.jsonl"
    result = crux("watch", SCENE, stream, "--do", "stop_forklifts=yes", "--do", "stop_forklifts=no")
    assert result.exit_code == 1
    assert result.stderr == "error: stop_forklifts is set twice, as yes and as no: set one\n"


# -- 2. --steps on a model without time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (CANONICAL, "only a scene (entities whose attributes change with `next`) has steps to unroll"),
        (BIF, "a BIF network has no steps to unroll"),
    ],
    ids=["scenario", "bif"],
)
def test_steps_on_a_model_without_time_is_an_error(model, why):
    result = crux("ask", model, "--steps", "2")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"error: {model}: the model has no time: {why} (drop --steps)\n"


def test_steps_on_a_scene_still_unroll():
    result = crux("ask", SCENE, "--do", "stop_forklifts=no", "--steps", "1", "--outcome", "f1.hazard@1", "--json")
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout)["outcomes"]) == ["f1.hazard@1"]


# -- 3. --json errors -------------------------------------------------------------------------------


def json_error(result) -> dict:
    """The one JSON object of a failed --json command; the readable message stays on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout.count("\n") == 1
    error = json.loads(result.stdout)
    assert set(error) >= {"error", "problems"} and error["problems"]
    assert all(set(p) >= {"loc", "msg"} and isinstance(p["loc"], list) for p in error["problems"])
    assert result.stderr.strip()
    return error


def test_a_query_error_in_json():
    error = json_error(crux("ask", CANONICAL, "--do", "action=swerve", "--do", "action=brake", "--json"))
    assert error == {"error": SET_TWICE, "problems": [{"loc": [], "msg": SET_TWICE}]}


def test_steps_error_in_json():
    error = json_error(crux("ask", BIF, "--steps", "1", "--json"))
    assert "the model has no time" in error["error"] and error["problems"][0]["loc"] == []


def test_every_problem_of_a_model_file_in_json():
    """A bad model: one problem per problem, each at its path inside the file."""
    plain = crux("session", BROKEN, "--headless")
    error = json_error(crux("session", BROKEN, "--headless", "--json"))
    assert error["error"] == plain.stderr.rstrip("\n") and error["file"] == str(BROKEN)
    assert len(error["problems"]) == len(plain.stderr.splitlines()) == 5
    assert error["problems"][0] == {
        "loc": ["world", "variables", "hit", "states", 0],
        "msg": 'read as the boolean false, not a name: YAML reads bare yes, no, on, off, true, false as booleans; '
        'quote the name ("no")',
    }
    assert error["problems"][2]["loc"] == ["world", "variables", "crash", "table", "wet, swerve"]


def test_validate_json_is_the_error_object_with_its_own_keys():
    result = crux("validate", BROKEN, "--json")
    assert result.exit_code == 1 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["file"] == str(BROKEN) and len(report["problems"]) == 5
    first = report["problems"][0]
    assert first["loc"] == ["world", "variables", "hit", "states", 0] and first["path"] == "world.variables.hit.states[0]"
    assert first["msg"] == first["message"] and first["file"] == str(BROKEN)
    assert report["error"] == crux("validate", BROKEN).stderr.rstrip("\n")


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "{tmp}/nowhere.jsonl", "--json"],
        ["demo", "--device", "tpu", "--json"],
        ["learn", CANONICAL, "{tmp}/nowhere.csv", "--json"],
        ["values", "infer", CANONICAL, "--choices", "{tmp}/nowhere.yaml", "--json"],
        ["values", "elicit", BIF, "--json"],
        ["watch", SCENE, "{tmp}/nowhere.jsonl", "--json"],
        ["session", CANONICAL, "--headless", "--resume", "{tmp}/nowhere.jsonl", "--json"],
    ],
    ids=["replay", "demo", "learn", "values-infer", "values-elicit", "watch", "session"],
)
def test_every_json_command_answers_an_error_in_json(args, tmp_path):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    result = crux(*args)
    error = json_error(result)
    assert error["error"] in result.stderr
    plain = crux(*[a for a in args if a != "--json"])
    assert plain.exit_code == 1 and plain.stdout == "" and plain.stderr == result.stderr


def test_init_answers_an_existing_file_in_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert crux("init", "trip").exit_code == 0
    error = json_error(crux("init", "trip", "--json"))
    assert error["error"].startswith("trip.yaml: exists")


def test_a_bug_is_reported_in_json_too(monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("crux.dialogue.cli.model.load_scenario", broken)
    result = crux("validate", CANONICAL, "--json")
    error = json_error(result)
    assert error["error"] == "internal error: RuntimeError: boom" and "CRUX_DEBUG=1" in result.stderr


def test_a_usage_error_stays_a_usage_error():
    result = crux("ask", CANONICAL, "--samples", "1", "--json")
    assert result.exit_code == 2 and result.stdout == ""


def test_without_json_stdout_stays_empty():
    result = crux("ask", CANONICAL, "--do", "action=swerve", "--do", "action=brake")
    assert result.exit_code == 1 and result.stdout == "" and result.stderr == f"error: {SET_TWICE}\n"
