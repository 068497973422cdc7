"""bench/elicit.py on a few tiny runs: its scenarios load, its figures have their shape, a session
that raises is counted and shown, and bad arguments are refused."""

from __future__ import annotations

import json

import pytest
import torch

from bench import elicit

FEW = ["--scenarios", "3", "--seed", "5", "--particles", "2000", "--max-questions", "6"]


def test_scenarios_load_with_unknown_values_and_their_truth_copy_states_them(tmp_path):
    for seed in range(4):
        scenario = elicit.make_scenario(seed)
        assert scenario == elicit.make_scenario(seed)  # seeded
        world = scenario["world"]
        assert "reference" not in world
        human = scenario["parties"]["human"]
        assert human["values"] == "unknown"
        true = human["responds"]["values"]
        assert set(true) == set(world["outcomes"])
        for outcome, utilities in true.items():
            assert world["variables"][outcome]["states"][0] not in utilities  # the first state is 0
        model = elicit.write_and_load(scenario, tmp_path / f"s{seed}.yaml")
        assert model.network.decision == elicit.DECISION
        knows = {"agent": list(scenario["facts"]), "human": list(scenario["facts"])}
        truth = elicit.truth_copy(scenario, knows)
        assert truth["parties"]["human"]["values"] == true
        assert truth["parties"]["agent"] == {**scenario["parties"]["agent"], "beliefs": {"knows": knows["agent"]}}
        stated = elicit.write_and_load(truth, tmp_path / f"t{seed}.yaml").scenario.parties.human
        assert stated.values == true and stated.beliefs.knows == knows["human"]


def test_a_small_run_reports_every_figure(capsys):
    threads = torch.get_num_threads()
    code = elicit.main([*FEW, "--threads", "1", "--json"])
    assert torch.get_num_threads() == threads  # given back
    out = json.loads(capsys.readouterr().out)
    summary, rows = out["summary"], out["scenarios"]
    assert summary["failures"] == [], summary["failures"]
    assert code == 0
    assert [r["seed"] for r in rows] == [5, 6, 7]
    assert out["machine"]["device"] == "cpu" and out["machine"]["cpu_count"] >= 1
    assert out["meta"]["particles"] == 2000 and out["meta"]["max_questions"] == 6
    assert out["machine"]["torch_threads"] == 1
    assert summary["scenarios"] == 3 and sum(summary["stopped"].values()) == 3
    assert set(elicit.STOPS) <= set(summary["stopped"])
    assert 0 <= summary["true_choice"] <= 1 and 0 <= summary["diagnosis"] <= 1
    assert summary["true_choice_count"] == sum(r["decided"] == r["true_choice"] for r in rows)
    assert all(0 <= r["questions"] <= 6 for r in rows)
    assert summary["max_questions"] == max(r["questions"] for r in rows)
    assert summary["mean_questions"] == pytest.approx(sum(r["questions"] for r in rows) / 3)
    assert all(r["truth_session_choice"] == r["true_choice"] for r in rows)  # the two ways agree
    assert all(r["margin"] >= 0 and r["regret"] >= 0 for r in rows)


def test_the_table_names_the_figures_targets_and_machine(capsys):
    elicit.main(["--scenarios", "1", *FEW[2:]])
    text = capsys.readouterr().out
    for words in ("session ends at the true choice", ">= 98%", "questions, mean", "<= 8", "stopped: settled",
                  "device: cpu; cores:", "wall time"):
        assert words in text


def test_a_session_that_raises_is_counted_and_the_run_goes_on(monkeypatch, capsys):
    real = elicit.run_session

    def flaky(path, *args, **kwargs):
        if "elicit-6.yaml" in str(path):
            raise ValueError("a broken session\nover two lines")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(elicit, "run_session", flaky)
    code = elicit.main([*FEW, "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)["summary"]
    assert code == 1
    assert summary["failures"] == [{"seed": 6, "error": "asked session: ValueError: a broken session over two lines"}]
    assert summary["true_choice_count"] <= 2 and summary["scenarios"] == 3
    assert "seed 6: asked session: ValueError" in captured.err


@pytest.mark.parametrize("argv, says", [
    (["--scenarios", "0"], "0 is below 1"),
    (["--scenarios", "ten"], "'ten' is not a whole number"),
    (["--particles", "0"], "0 is below 1"),
    (["--max-questions", "-1"], "-1 is below 0"),
    (["--seed", "-3"], "-3 is below 0"),
    (["--threads", "-1"], "-1 is below 0"),
])
def test_bad_arguments_are_refused(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        elicit.main(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_keep_must_be_a_folder(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("")
    with pytest.raises(SystemExit):
        elicit.main(["--scenarios", "1", "--keep", str(afile)])
    assert "not a folder" in capsys.readouterr().err
