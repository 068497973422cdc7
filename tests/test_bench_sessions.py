"""bench.sessions runs (one small case, in process) and bench.scenarios writes files Crux loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import crux.dialogue.engine as engine_module
from bench import sessions
from bench.scenarios import from_bif, generated
from crux.worldmodel.model import load_model

ALARM = Path(__file__).parent / "data" / "alarm.bif.gz"


def _write(data: dict, folder: Path) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
    return path


def test_bench_prints_a_row_per_case_and_puts_the_engine_back(capsys, tmp_path):
    advance, conclude = engine_module.Engine._advance, engine_module.conclude
    out = tmp_path / "findings.txt"
    code = sessions.main(["--sizes", "10x5", "--seeds", "0", "--no-process", "--networks", "none", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0
    assert "turn med" in printed.out and "session med" in printed.out and "process med" in printed.out
    row = next(line for line in printed.out.splitlines() if line.startswith("10x5 "))
    assert row.split()[1:4] == ["1", "10", "5"]  # one session, 10 variables, 5 facts
    assert "targets (issue)" in printed.out and "device: cpu" in printed.out
    assert "[1/1] 10x5 seed 0" in printed.err
    assert out.read_text(encoding="utf-8").strip() == printed.out.strip()
    assert engine_module.Engine._advance is advance and engine_module.conclude is conclude


def test_bench_json_times_every_turn(capsys):
    assert sessions.main(["--sizes", "10x5", "--seeds", "0", "--no-process", "--networks", "none", "--no-warmup", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["sessions"]
    assert row["steps"] == len(row["turn_times"]) >= row["turns"] + 1  # the first diagnosis's step, then one per response
    assert row["end_s"] is not None and row["session_s"] >= row["end_s"] + sum(row["turn_times"])
    assert data["groups"]["10x5"]["sessions"] == 1


def test_targets_apply_where_the_issue_sets_them():
    group = {"turn_median": 0.04, "turn_max": 1.5, "end_worst": 0.4, "session_worst": 3.0, "raised": 0, "did_not_return": 1, "process_failed": 0}
    checks = {(c["group"], c["target"]): c["met"] for c in sessions.check_targets({"60x20": group, "120x40": group, "10x5": group})}
    assert checks[("60x20", "turn, median")] and checks[("60x20", "end of session, every seed")]
    assert not checks[("60x20", "turn, largest")]
    assert not checks[("120x40", "every session returns")]  # a process that did not return
    assert ("10x5", "turn, median") not in checks and ("10x5", "turn, largest") in checks


def test_options_parse():
    assert sessions.parse_sizes("10x5,30X10") == [(10, 5), (30, 10)]
    assert sessions.parse_seeds("0-3") == [0, 1, 2, 3] and sessions.parse_seeds("0,2,7") == [0, 2, 7]
    assert sessions.parse_networks("none") == [] and sessions.parse_networks("alarm,hailfinder") == ["alarm", "hailfinder"]


@pytest.mark.parametrize(("variables", "facts"), [(10, 5), (30, 10), (60, 20), (120, 40)])
def test_generated_scenarios_load_at_their_size(tmp_path, variables, facts):
    for seed in range(4):  # 10x5 seed 1 once gave every fact to the human (a coin toss per fact)
        data = generated(seed, variables, facts)
        model = load_model(_write(data, tmp_path))
        assert len(model.network.order) == variables
        assert model.scenario is not None and len(model.scenario.facts) == facts
        parties = data["parties"]
        assert parties["agent"]["beliefs"]["knows"] and parties["human"]["beliefs"]["knows"], (seed, "a party holds no fact")


def test_alarm_scenario_loads(tmp_path):
    data = from_bif(str(ALARM), 0, 20)
    model = load_model(_write(data, tmp_path))
    assert model.scenario is not None and len(model.scenario.facts) == 20
    assert len(model.network.order) == 38  # alarm's 37 and the decision
