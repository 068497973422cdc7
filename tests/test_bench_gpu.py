"""bench/gpu.py, run on the CPU alone (its --cpu-only mode) so that it keeps working between the
sessions that are lent a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu

DATA = Path(__file__).resolve().parent / "data"


def test_cpu_only_run_reports_every_set_and_batch(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    argv = ["--cpu-only", "--bif-dir", str(DATA), "--networks", "asia", "--batches", "5,20", "--mixed-max", "5",
            "--particles", "1000", "--json", str(out)]
    assert gpu.main(argv) == 0
    rows = json.loads(out.read_text())["networks"][0]["rows"]
    seen = {(r["set"], r["batch"]) for r in rows}
    assert seen == {("same", 5), ("same", 20), ("mixed", 5), ("sampler", 1000)}
    assert all(r["device"] == "cpu" for r in rows)
    assert all(r.get("cold_qps", 1) > 0 and r.get("samples_per_s", 1) > 0 for r in rows)
    assert all("columns_qps" in r for r in rows if r["set"] == "same")
    assert "asia" in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--networks", "nowhere"], "no nowhere.bif.gz"),
    (["--networks", "asia", "--batches", "ten"], "whole numbers"),
    (["--networks", "asia", "--batches", "0"], "at least one size"),
])
def test_bad_arguments_are_refused(argv, says, capsys):
    with pytest.raises(SystemExit):
        gpu.main(["--cpu-only", "--bif-dir", str(DATA), *argv])
    assert says in capsys.readouterr().err
