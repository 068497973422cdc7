"""bench/cli.py runs end to end on a small input, and its agreement check catches what it should."""

from __future__ import annotations

import gzip
import json

import pytest

from bench import cli
from crux.worldmodel.model import load_model


@pytest.fixture(scope="module")
def states() -> dict[str, list[str]]:
    net = load_model(cli.ALARM).network
    return {v: list(net.states[v]) for v in net.order}


def test_query_files_have_the_structures_asked_for(states):
    one = cli.one_structure_queries(states, 50, 0)
    assert {(tuple(q["do"]), tuple(q["given"]), tuple(q["outcomes"])) for q in one} == {(("HYPOVOLEMIA",), ("HR", "SAO2"), ("BP",))}
    assert len({json.dumps(q) for q in one}) > 1  # the states differ
    mixed = cli.mixed_queries(states, 50, 0)
    for q in mixed:
        (x,), (e,), (t,) = q["do"], q["given"], q["outcomes"]
        assert len({x, e, t}) == 3 and q["do"][x] in states[x] and q["given"][e] in states[e]
    assert len({(tuple(q["do"]), tuple(q["given"]), q["outcomes"][0]) for q in mixed}) > 10
    assert cli.mixed_queries(states, 50, 0) == mixed and cli.mixed_queries(states, 50, 1) != mixed
    scenario = cli.generated(0, 12, 4)
    for q in cli.scenario_queries(scenario, 20, 0):
        assert scenario["world"]["decision"] in q["do"] and q["as"] in ("agent", "human")
        assert len({*q["do"], *q["given"], *q["outcomes"]}) == 4


def test_agreement_finds_differences_refusals_and_bad_shapes():
    queries = [{"do": {"A": "a"}, "given": {}, "outcomes": ["T"]} for _ in range(4)]
    crux = [{"p": {"T": [0.25, 0.75]}}, {"error": "impossible"}, {"p": {"T": [0.5, 0.5]}}, {"p": {"T": [[0.5, 0.5]]}}]
    same = [{"p": {"T": [0.25, 0.75]}}, {"error": "impossible"}, {"p": {"T": [0.5, 0.5]}}, {"p": {"T": [[0.5, 0.5]]}}]
    assert cli.agreement(queries[:3], crux[:3], same[:3]) == {
        "both": 2, "max_diff": 0.0, "split": [], "shapes": [], "agree": True, "compared": 3,
    }
    theirs = [{"p": {"T": [0.25 + 1e-6, 0.75 - 1e-6]}}, {"p": {"T": [0.1, 0.9]}}, {"error": "no"}, {"p": {"T": [0.5, 0.5]}}]
    found = cli.agreement(queries, crux, theirs)
    assert found["max_diff"] == pytest.approx(1e-6) and not found["agree"]
    assert found["split"] == [(2, "crux", "impossible"), (3, "pyAgrum", "no")]
    assert [n for n, _ in found["shapes"]] == [4]


def test_a_run_counts_with_exit_code_1_only_when_some_line_is_an_error():
    answer, error = {"p": {"T": [1.0]}}, {"error": "impossible", "line": 2}
    assert cli.check_run([answer, answer], 0, 2) == ""
    assert cli.check_run([answer, error], 1, 2) == ""
    assert cli.check_run([answer, error], 0, 2) != ""
    assert cli.check_run([answer, answer], 1, 2) != ""
    assert cli.check_run([answer, {"odd": "?"}], 1, 2) != ""
    assert cli.check_run([answer], 0, 2) != ""
    assert cli.check_run([], None, 2) == "did not finish"


def test_in_process_output_and_changed_files_are_told():
    line = json.dumps({"outcomes": {"T": {"p": [0.25, 0.75]}}})
    near = json.dumps({"outcomes": {"T": {"p": [0.25 + 2e-16, 0.75]}}})
    assert cli.same_output([line, line], [line, line]) == "yes"
    assert cli.same_output([line, line], [line, near]) == "NO: 1 lines differ, max |d| 2.2e-16"
    assert cli.same_output([line], [line, line]).startswith("NO: 1 lines")
    assert cli.changed_files({"a.py": "1", "b.py": "2"}, {"a.py": "1", "b.py": "3", "c.py": "4"}) == ["b.py", "c.py"]
    assert "oracle/lines.py" in cli.source_digest()


def test_impossible_evidence_through_both_processes(tmp_path, states):
    """Crux refuses evidence of probability 0 (PVSAT=NORMAL needs FIO2=NORMAL when VENTALV=ZERO);
    pyAgrum's targeted engine answers it; the possible line agrees to 1e-9."""
    pytest.importorskip("pyagrum")
    queries = [
        {"do": {"FIO2": "LOW"}, "given": {"VENTALV": "ZERO", "PVSAT": "NORMAL"}, "outcomes": ["HISTORY"]},
        {"do": {"HYPOVOLEMIA": "TRUE"}, "given": {"HR": "LOW", "SAO2": "HIGH"}, "outcomes": ["BP"]},
        {"do": {"VENTALV": "LOW"}, "given": {"PVSAT": "HIGH"}, "outcomes": ["CO"]},
    ]
    path = cli.write_lines(queries, tmp_path / "q.jsonl")
    crux = cli.crux_batch(cli.ALARM, path, tmp_path / "crux.jsonl", len(queries), 1, 120)
    assert crux["status"] == "" and (crux["answered"], crux["errors"]) == (2, 1)
    tables, _ = cli.float64_tables(cli.ALARM, load_model(cli.ALARM).network)
    (tmp_path / "tables.json").write_text(json.dumps(tables), encoding="utf-8")
    (tmp_path / "alarm.bif").write_bytes(gzip.decompress(cli.ALARM.read_bytes()))
    (tmp_path / "answer.py").write_text(cli.PYAGRUM_SCRIPT, encoding="utf-8")
    pyagrum = cli.pyagrum_batch(tmp_path / "answer.py", tmp_path / "alarm.bif", tmp_path / "tables.json", path, queries,
                                tmp_path / "pyagrum.jsonl", 1, 120)
    assert pyagrum["status"] == "" and pyagrum["answered"] == 3
    found = cli.agreement(queries, crux["rows"], pyagrum["rows"])
    assert found["both"] == 2 and found["max_diff"] <= cli.TOLERANCE and not found["shapes"]
    assert [(n, who) for n, who, _ in found["split"]] == [(1, "crux")]
    literal = cli.pyagrum_batch(tmp_path / "answer.py", tmp_path / "alarm.bif", tmp_path / "tables.json", path, queries,
                                tmp_path / "pyagrum.jsonl", 1, 120, evidence="set")
    assert cli.agreement(queries, pyagrum["rows"], literal["rows"])["agree"]  # setEvidence on every line: the same answers


def test_bench_runs_and_writes_its_findings(tmp_path, capsys):
    out = tmp_path / "cli.txt"
    code = cli.main(["--queries", "50", "--repeats", "1", "--skip-120", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert out.read_text(encoding="utf-8").strip() == printed.strip()
    assert "Crux CLI bench" in printed and "crux commit:" in printed and "torch threads:" in printed
    assert "alarm, one structure" in printed and "alarm, mixed" in printed and "120 vars" not in printed
    assert "Oracle.ask_columns, one structure" in printed and "start-up:" in printed
    assert "Targets (issue)" in printed
    if cli.have("pyagrum"):
        agreement = printed.split("Agreement, line by line")[1].split("\n\n")[0]
        assert sum(line.endswith(" agree") for line in agreement.splitlines()) == 2, agreement
    else:
        assert "pyAgrum is not installed" in printed
