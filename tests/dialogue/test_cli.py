"""The `crux` command line: ask, validate, schema, demo (CLI.md)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from tests.conftest import CANONICAL, EXAMPLES
from crux.worldmodel import reference
from crux.worldmodel.load import load_scenario

runner = CliRunner()


def crux(*args: str, input: str | None = None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output + result.stderr
    return result


def test_issue_command_equals_exact_arithmetic():
    result = crux("ask", CANONICAL, "what happens if action=swerve given road=wet", "--as", "human", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    expected = reference.ask(load_scenario(CANONICAL), "human", {"action": "swerve"}, {"road": "wet"})
    assert answer["query"] == {"do": {"action": "swerve"}, "given": {"road": "wet"}, "outcomes": ["harm", "crash"], "as": "human"}
    assert answer["method"] == "exact" and answer["device"] == "cpu"
    for outcome, p in expected.items():
        assert answer["outcomes"][outcome]["p"] == pytest.approx(p, abs=1e-9)
        assert len(answer["outcomes"][outcome]["interval"]) == len(p)


@pytest.mark.parametrize(
    "args",
    [
        ["What happens if Action = swerve given road=wet?"],
        ["what happens if action=swerve", "--given", "road=wet"],
        ["--do", "action=swerve", "--given", "road=wet"],
    ],
)
def test_question_and_options_are_the_same_query(args):
    result = crux("ask", CANONICAL, *args, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["query"]["do"] == {"action": "swerve"}
    assert json.loads(result.stdout)["query"]["given"] == {"road": "wet"}


def test_default_party_is_agent_and_outcome_option():
    result = crux("ask", CANONICAL, "--do", "action=swerve", "--given", "road=wet", "--outcome", "crash", "--json")
    answer = json.loads(result.stdout)
    assert answer["query"]["as"] == "agent" and list(answer["outcomes"]) == ["crash"]
    assert answer["outcomes"]["crash"]["p"][1] == pytest.approx(0.300198, abs=1e-6)


def test_readable_output():
    result = crux("ask", CANONICAL, "what happens if action=brake", "--as", "world")
    assert result.exit_code == 0
    assert "90% interval" in result.stdout and "crash" in result.stdout and "world's beliefs" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["what happens if action=swerve given raod=wet"], "unknown variable in given 'raod'; did you mean 'road'?"),
        (["what happens if action=fly"], "unknown state of action 'fly' (valid: brake, swerve, continue)"),
        (["what happens if action=swerve", "--outcome", "crsh"], "did you mean 'crash'?"),
        (["what happens when it rains"], "cannot read the question"),
        (["--do", "action"], "--do 'action': write VAR=state"),
        (["--given", "road=wet"], "depends on the decision action"),
        (["--do", "action=swerve", "--as", "nobody"], "--as 'nobody'"),
        (["--do", "action=swerve", "--device", "tpu"], "unknown device 'tpu'"),
        (["--do", "road=wet", "--given", "road=wet", "--outcome", "crash"], "both set (do) and observed (given)"),
    ],
)
def test_bad_queries_are_one_readable_error(args, needle):
    result = crux("ask", CANONICAL, *args)
    assert result.exit_code == 1
    assert needle in result.stderr
    assert result.stdout == ""


def test_batch_runs_in_order_and_equals_single_queries(tmp_path):
    lines = [
        {"do": {"action": "swerve"}, "given": {"road": "wet"}, "as": "human"},
        {"do": {"action": "brake"}, "outcomes": ["crash"]},
        {"do": {"action": "swerve"}, "given": {"road": "dry"}, "as": "human"},
        {"do": {"action": "continue"}, "as": "world"},
    ]
    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = crux("ask", CANONICAL, "--batch", batch)
    assert result.exit_code == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == len(lines)
    for line, answer in zip(lines, answers):
        single = crux("ask", CANONICAL, "--json", *[f"--do={k}={v}" for k, v in line["do"].items()],
                      *[f"--given={k}={v}" for k, v in line.get("given", {}).items()],
                      *[f"--outcome={o}" for o in line.get("outcomes", [])], "--as", line.get("as", "agent"))
        assert_same_answer(json.loads(single.stdout), answer)


def assert_same_answer(a: dict, b: dict) -> None:
    """Equal up to float rounding (a batch may contract in another order than a single query)."""
    assert a["query"] == b["query"] and a["method"] == b["method"]
    assert a["outcomes"].keys() == b["outcomes"].keys()
    for name, dist in a["outcomes"].items():
        other = b["outcomes"][name]
        assert dist["states"] == other["states"]
        assert dist["p"] == pytest.approx(other["p"], abs=1e-12)
        for (lo, hi), (lo2, hi2) in zip(dist["interval"], other["interval"]):
            assert (lo, hi) == pytest.approx((lo2, hi2), abs=1e-12)


def test_batch_answers_the_good_lines_and_reports_every_bad_one_on_its_line(tmp_path):
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"do": {"action": "swerve"}}\n{"do": {"acton": "swerve"}}\nnot json\n{"do": {}, "colour": 1}\n')
    result = crux("ask", CANONICAL, "--batch", batch)
    assert result.exit_code == 1
    first, *bad = (json.loads(line) for line in result.stdout.splitlines())
    assert first["query"]["do"] == {"action": "swerve"} and "harm" in first["outcomes"]
    assert [b["line"] for b in bad] == [2, 3, 4]
    assert bad[0]["error"]["problems"][0]["loc"] == ["do", "acton"] and "did you mean 'action'" in bad[0]["error"]["message"]
    assert bad[1]["error"]["message"].startswith("not JSON")
    assert bad[2]["error"]["problems"][0]["loc"] == ["colour"]
    assert "3 of 4 queries could not be answered" in result.stderr


def test_batch_from_stdin():
    result = crux("ask", CANONICAL, "--batch", "-", input='{"do": {"action": "brake"}, "as": "human"}\n')
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["query"]["as"] == "human"


def test_batch_excludes_a_question():
    result = crux("ask", CANONICAL, "what happens if action=brake", "--batch", "-", input="")
    assert result.exit_code == 2


def test_validate_examples():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = crux("validate", path)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith("ok: ")
    assert crux("validate", CANONICAL).stdout.strip() == "ok: 7 variables, 4 facts"


def test_schema_is_json_schema_with_descriptions():
    schema = json.loads(crux("schema").stdout)
    assert schema["title"].startswith("Crux scenario")
    variable = schema["$defs"]["Variable"]
    assert variable["additionalProperties"] is False
    assert all("description" in prop for prop in variable["properties"].values())


def test_schema_says_values_may_be_unknown():
    schema = json.loads(crux("schema").stdout)
    values = schema["$defs"]["Human"]["properties"]["values"]
    assert "`unknown`" in values["description"]
    shapes = values["oneOf"]
    assert {"const": "unknown", "type": "string"} in shapes
    [per_outcome] = [s for s in shapes if s.get("type") == "object"]
    assert {"const": "unknown", "type": "string"} in per_outcome["additionalProperties"]["oneOf"]
    answers = schema["$defs"]["Responds"]["properties"]["values"]
    assert "value questions" in answers["description"]


def test_demo_prints_the_session():
    result = crux("demo")
    assert result.exit_code == 0, result.stderr
    assert "At the start the agent would choose continue, the human would choose swerve: both" in result.stdout
    assert "Decision (by the human): swerve." in result.stdout


def test_demo_json_is_the_session_report():
    report = json.loads(crux("demo", "--json").stdout)
    assert report["scenario"] == "squirrel-or-cat" and report["mode"] == "full"
    assert report["initial"]["choices"] == {"agent": "continue", "human": "swerve"}
    assert report["initial"]["diagnosis"]["belief_share"] == pytest.approx(0.479850, abs=1e-6)
    assert report["final"]["diagnosis"]["kind"] == "value"
    assert report["decision"] == {"action": "swerve", "by": "human", "reasons": report["decision"]["reasons"],
                                  "follows": {"agent": False, "human": True}}


def test_help_for_every_command():
    for command in ("ask", "validate", "schema", "demo", "session", "replay", "beliefs", "learn", "watch"):
        result = crux(command, "--help")
        assert result.exit_code == 0 and "--help" in result.stdout


def test_missing_model_file():
    result = crux("ask", "nowhere.yaml", "--do", "action=brake")
    assert result.exit_code == 1 and "nowhere.yaml: no such file" in result.stderr


# -- crux watch: its options, refused before anything is computed -------------------------------------

WAREHOUSE = EXAMPLES / "warehouse"
CAT = WAREHOUSE / "stream_cat.jsonl"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adopt", "1.5"], "--adopt 1.5: give a probability above 0.5 and at most 1"),
        (["--adopt", "0.5"], "--adopt 0.5: give a probability above 0.5 and at most 1"),
        (["--adopt", "nan"], "--adopt nan: give a probability above 0.5 and at most 1"),
        (["--bayes-factor", "1"], "--bayes-factor 1: give a finite number above 1"),
        (["--bayes-factor", "inf"], "--bayes-factor inf: give a finite number above 1"),
        (["--learn-new", "{tmp}/nowhere/new.yaml"], "--learn-new {tmp}/nowhere/new.yaml: no such folder {tmp}/nowhere: give a path in a folder that exists"),
        (["--learn-new", "{tmp}"], "--learn-new {tmp}: is a folder: give a file name in it"),
        (["--learn-new", "{tmp}/new.txt"], "--learn-new {tmp}/new.txt: give a file name ending in .yaml, .yml, .json"),
        (["--learn-new", "{tmp}/file.yaml/new.yaml"], "--learn-new {tmp}/file.yaml/new.yaml: no such folder {tmp}/file.yaml"),
        (["--save", "{tmp}/file.yaml"], "--save {tmp}/file.yaml: exists; crux watch writes no file over another: give another path, or --force"),
        (["--save", str(WAREHOUSE / "scene.yaml")], f"--save {WAREHOUSE / 'scene.yaml'}: is the scene file: give another path, or --force"),
        (["--learn-new", str(WAREHOUSE / "scene.yaml"), "--force"], f"--learn-new {WAREHOUSE / 'scene.yaml'}: is the scene file: give another path"),
        (["--learn-new", "{tmp}/a.yaml", "--save", "{tmp}/a.yaml"], "--learn-new and --save both name {tmp}/a.yaml: give each its own file"),
    ],
    ids=["adopt-high", "adopt-half", "adopt-nan", "bf-one", "bf-inf", "no-folder", "a-folder", "suffix", "under-a-file",
         "exists", "the-scene", "the-scene-forced", "same-file"],
)
def test_watch_refuses_bad_options_in_one_line(tmp_path, args, message):
    (tmp_path / "file.yaml").write_text("kept: true\n")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = crux("watch", WAREHOUSE / "scene.yaml", CAT, *args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: " + message.replace("{tmp}", str(tmp_path)))
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "file.yaml").read_text() == "kept: true\n"
    error = json.loads(crux("watch", WAREHOUSE / "scene.yaml", CAT, *args, "--json").stdout)
    assert error["error"] == result.stderr[len("error: "):].rstrip("\n")


def test_watch_refuses_a_folder_it_cannot_write_to(tmp_path, monkeypatch):
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real(path, mode))
    result = crux("watch", WAREHOUSE / "scene.yaml", CAT, "--save", tmp_path / "x.yaml")
    assert result.exit_code == 1
    assert result.stderr == f"error: --save {tmp_path / 'x.yaml'}: cannot write in {tmp_path}: give a path in a folder you can write to\n"


def test_watch_force_replaces_a_file(tmp_path):
    saved = tmp_path / "scene.yaml"
    saved.write_text("old\n")
    result = crux("watch", WAREHOUSE / "scene.yaml", CAT, "--save", saved, "--force", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert crux("validate", saved).exit_code == 0
