"""Continual learning: counts from data go to exactly the observed families, move rows toward
the truth, equal the same counts given as facts, pool across a type's entities, and bad data
is reported by line with nothing written."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.worldmodel.compile import compile_beliefs, network_of, party_beliefs
from crux.worldmodel.errors import CruxError
from crux.worldmodel.learn import learn_file, update
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import Model, load_model
from crux.worldmodel.rows import split_key
from crux.worldmodel.spec import CountsData, Fact

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "squirrel_or_cat.yaml"
FORKLIFT = Path(__file__).resolve().parent / "scenes" / "forklift.yaml"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# -- online ---------------------------------------------------------------------------------


def test_update_adds_counts_to_exactly_the_observed_families():
    scenario = load_scenario(EXAMPLE)
    net = network_of(scenario)
    before = party_beliefs(scenario, net, "world")
    kept = {v: t.clone() for v, t in before.concentration.items()}
    records = [
        {"road": "wet", "action": "swerve", "oncoming": "car", "crash": "crash"},
        {"road": "dry", "animal_hit": "hit"},  # animal_hit's parent action is missing: not counted
        {"animal": "cat", "harm": "cat", "road": ""},  # harm's parent animal_hit is missing; "" is missing
    ]
    after = update(before, net, records)
    expected = {v: torch.zeros_like(t) for v, t in kept.items()}
    expected["road"] += torch.tensor([1.0, 1.0], dtype=torch.float64)
    expected["oncoming"][1] += 1
    expected["animal"][1] += 1
    expected["crash"][net.row_index("crash", "wet, swerve, car") + (1,)] += 1
    for var in kept:
        assert torch.equal(after.concentration[var] - kept[var], expected[var]), var
        assert torch.equal(before.concentration[var], kept[var]), var  # the old state is unchanged
    assert after.likelihood is before.likelihood


def test_update_names_unknown_variables_and_states():
    scenario = load_scenario(EXAMPLE)
    net = network_of(scenario)
    beliefs = party_beliefs(scenario, net, "world")
    with pytest.raises(CruxError) as err:
        update(beliefs, net, [{"road": "wet"}, {"rood": "wet", "crash": "boom"}])
    lines = str(err.value).splitlines()
    assert lines[0].startswith("record 2: unknown variable 'rood'; did you mean 'road'? (valid: road, animal,")
    assert lines[1] == "record 2: crash: unknown state 'boom' of crash (valid: safe, crash)"


# -- from data: toward the truth ----------------------------------------------------------------

TRUTH = {
    "road": [0.25, 0.75],
    "animal": [0.5, 0.5],
    "oncoming": [0.55, 0.45],
    "animal_hit": {  # P(hit | road, action): not the example's numbers
        ("dry", "brake"): 0.45, ("dry", "swerve"): 0.3, ("dry", "continue"): 0.6,
        ("wet", "brake"): 0.2, ("wet", "swerve"): 0.4, ("wet", "continue"): 0.7,
    },
}


def sample_cases(n: int, seed: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        road = "dry" if rng.random() < TRUTH["road"][0] else "wet"
        animal = "squirrel" if rng.random() < TRUTH["animal"][0] else "cat"
        oncoming = "clear" if rng.random() < TRUTH["oncoming"][0] else "car"
        action = ("brake", "swerve", "continue")[rng.integers(3)]
        hit = "hit" if rng.random() < TRUTH["animal_hit"][(road, action)] else "missed"
        crash = "crash" if rng.random() < 0.1 else "safe"
        harm = "none" if hit == "missed" else animal
        case = dict(road=road, animal=animal, oncoming=oncoming, action=action, animal_hit=hit, crash=crash, harm=harm)
        for var in case:  # about one cell in ten is missing
            if rng.random() < 0.1:
                case[var] = ""
        cases.append(case)
    return cases


def cases_csv(path: Path, cases: list[dict[str, str]]) -> Path:
    header = list(cases[0])
    return write_csv(path, header, [[c[h] for h in header] for c in cases])


def test_learned_rows_move_toward_the_truth(tmp_path):
    data = cases_csv(tmp_path / "cases.csv", sample_cases(2000, seed=7))
    model = tmp_path / "model.yaml"
    model.write_text(EXAMPLE.read_text())
    written, report = learn_file(model, data)
    assert report.rows == 2000
    out = tmp_path / "model.learned.yaml"
    assert out.exists() and yaml.safe_load(out.read_text()) == written
    original = yaml.safe_load(EXAMPLE.read_text())["world"]["variables"]
    learned = load_scenario(out).world.variables
    s = 10
    checked = 0
    for (road, action), theta in TRUTH["animal_hit"].items():
        key = f"{road}, {action}"
        row = report.learned["animal_hit"][key]
        n, c = row.n, row.counts.get("hit", 0)
        p0 = original["animal_hit"]["table"][key][1]
        assert learned["animal_hit"].table[key][1] == pytest.approx((s * p0 + c) / (s + n), abs=1e-15)
        assert learned["animal_hit"].row_strength[key] == s + n
        expected = (s * p0 + n * theta) / (s + n)
        sd = math.sqrt(n * theta * (1 - theta)) / (s + n)
        assert abs(learned["animal_hit"].table[key][1] - expected) < 4 * sd, key
        assert abs(learned["animal_hit"].table[key][1] - theta) < abs(p0 - theta), key  # moved toward the truth
        checked += n
    assert checked == report.families["animal_hit"]
    assert 1000 < checked < 2000  # rows with action, road or animal_hit missing are not counted
    road = report.learned["road"][""]
    assert abs(learned["road"].prior[1] - 0.75) < 4 * math.sqrt(0.75 * 0.25 / road.n) + 10 * 0.35 / road.n
    assert learned["road"].row_strength[""] == 10 + road.n
    assert "action" not in report.learned  # the decision has no table


def test_learned_model_equals_the_original_with_the_counts_as_facts(tmp_path):
    data = cases_csv(tmp_path / "cases.csv", sample_cases(300, seed=3))
    out = tmp_path / "learned.yaml"
    _, report = learn_file(EXAMPLE, data, out)
    original = load_scenario(EXAMPLE)
    net = network_of(original)
    facts = []
    for var, rows in report.learned.items():
        for key, row in rows.items():
            given = dict(zip(net.parents[var], split_key(key))) if net.parents[var] else {}
            facts.append(Fact(text="data", source="csv", counts=CountsData(variable=var, given=given, counts=row.counts)))
    learned_model = load_model(out)
    original_model = Model.from_scenario(original)
    queries = [
        Query(do={"action": a}, given=g, outcomes=["crash", "harm", "road"])
        for a in ("brake", "swerve")
        for g in ({}, {"road": "wet"}, {"animal_hit": "hit"})
    ]
    for party in ("agent", "human", "world"):
        spec = None if party == "world" else getattr(original.parties, party)
        held = [] if spec is None else [original.facts[f] for f in spec.beliefs.knows]
        expected = compile_beliefs(original, net, None if spec is None else spec.beliefs.priors, held + facts)
        got = learned_model.beliefs(party)
        for var in expected.concentration:
            assert torch.allclose(got.concentration[var], expected.concentration[var], rtol=1e-13, atol=1e-12), (party, var)
        mine = Oracle(learned_model, device="cpu", samples=2).ask_many([q.model_copy(update={"as_": party}) for q in queries])
        theirs = Oracle(original_model, device="cpu", samples=2).ask_many(queries, beliefs=expected)
        for a, b in zip(mine, theirs):
            for name in a.outcomes:
                assert a.outcomes[name].p == pytest.approx(b.outcomes[name].p, abs=1e-12), (party, name)


def test_a_hand_computed_row_and_everything_else_kept(tmp_path):
    data = write_csv(
        tmp_path / "d.csv",
        ["road", "action", "oncoming", "crash"],
        [["wet", "swerve", "car", "crash"], ["wet", "swerve", "car", "safe"], ["wet", "swerve", "car", "crash"], ["dry", "", "clear", "safe"]],
    )
    out = tmp_path / "out.yaml"
    written, report = learn_file(EXAMPLE, data, out)
    crash = written["world"]["variables"]["crash"]
    assert crash["table"]["wet, swerve, car"] == [(20 * 0.45 + 1) / 23, (20 * 0.55 + 2) / 23]
    assert crash["row_strength"] == {"wet, swerve, car": 23}
    assert report.families == {"road": 4, "oncoming": 4, "crash": 3}
    assert report.incomplete == {"crash": 1}
    assert report.skipped == 0
    original = yaml.safe_load(EXAMPLE.read_text())
    assert written["facts"] == original["facts"] and written["description"] == original["description"]
    assert written["parties"]["agent"] == original["parties"]["agent"]
    # the human's own prior of road is a learned row: it takes the same counts
    assert written["parties"]["human"]["beliefs"]["priors"]["road"] == [(10 * 0.9 + 1) / 14, (10 * 0.1 + 3) / 14]
    assert any("human's own prior of road" in n for n in report.notes)
    for var in ("animal_hit", "harm", "animal"):
        assert written["world"]["variables"][var] == original["world"]["variables"][var]


# -- scenes: tied parameters -----------------------------------------------------------------------


def test_a_scenes_entities_of_one_type_pool_into_the_type_table(tmp_path):
    data = write_csv(
        tmp_path / "d.csv",
        ["f1.speed", "w1.present", "w2.present", "stop", "f1.hazard"],
        [
            ["fast", "present", "", "no", "collision"],  # w2 missing, but any(w1, w2) = yes already
            ["fast", "absent", "absent", "no", "none"],
            ["slow", "absent", "", "yes", "none"],  # any unknown: hazard not counted
            ["", "present", "present", "", ""],
        ],
    )
    out = tmp_path / "scene.learned.yaml"
    written, report = learn_file(FORKLIFT, data, out)
    worker = written["types"]["Worker"]["attributes"]["present"]
    # w1: present, absent, absent, present; w2: absent, present -> 3 absent, 3 present
    assert worker["prior"] == [(10 * 0.6 + 3) / 16, (10 * 0.4 + 3) / 16]
    assert worker["row_strength"] == {"": 16}
    hazard = written["types"]["Forklift"]["attributes"]["hazard"]
    assert hazard["table"]["fast, yes, no"] == [(10 * 0.5 + 0) / 11, (10 * 0.5 + 1) / 11]
    assert hazard["table"]["fast, no, no"] == [(10 * 0.97 + 1) / 11, (10 * 0.03) / 11]
    assert hazard["row_strength"] == {"fast, no, no": 11, "fast, yes, no": 11}
    assert report.families == {"Forklift.speed": 3, "Worker.present": 6, "Forklift.hazard": 2}
    assert report.incomplete == {"Forklift.hazard": 1}
    assert not any(".any" in label or "#" in label for label in report.learned)  # deterministic chains
    assert "f1.in_path_of.present.any" not in yaml.safe_dump(written)  # only the type tables changed
    learned = Model.from_scenario(load_scenario(out))
    world = learned.beliefs("world")
    assert torch.equal(world.concentration["w1.present"], world.concentration["w2.present"])
    assert world.concentration["w1.present"].tolist() == pytest.approx([9.0, 7.0])


DYNAMICS = """
crux: 1
name: dynamics
types:
  Machine:
    attributes:
      wear:
        states: [ok, worn]
        prior: [0.9, 0.1]
        next:
          parents: [self.wear]
          table:
            ok: [0.9, 0.1]
            worn: [0.2, 0.8]
entities: {m: Machine, n: Machine}
world:
  variables:
    service: {states: [later, now]}
  decision: service
  outcomes: [m.wear]
"""


def test_steps_in_the_header_learn_the_next_mechanism(tmp_path):
    model = tmp_path / "dyn.yaml"
    model.write_text(DYNAMICS)
    data = write_csv(
        tmp_path / "d.csv",
        ["m.wear@0", "m.wear@1", "m.wear@2", "n.wear@0", "n.wear@1"],
        [["ok", "ok", "worn", "ok", "worn"], ["worn", "", "worn", "", "ok"]],
    )
    written, report = learn_file(model, data, tmp_path / "out.yaml")
    wear = written["types"]["Machine"]["attributes"]["wear"]
    # transitions from ok: ok->ok, ok->worn (m), ok->worn (n); from worn: nothing complete
    assert wear["next"]["table"]["ok"] == [(9 + 1) / 13, (1 + 2) / 13]
    assert wear["next"]["table"]["worn"] == [0.2, 0.8]
    assert wear["next"]["row_strength"] == {"ok": 13}
    assert wear["prior"] == [(9 + 2) / 13, (1 + 1) / 13]  # step 0 of m (twice) and n (once)
    assert report.families == {"Machine.wear": 3, "Machine.wear.next": 3}
    load_scenario(tmp_path / "out.yaml", steps=2)


def test_library_types_are_learned_into_a_copy_of_the_library(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    data = yaml.safe_load(FORKLIFT.read_text())
    library = {"types": {"Worker": data["types"].pop("Worker")}}
    (lib / "workers.yaml").write_text(yaml.safe_dump(library))
    data["use"] = ["lib/workers.yaml"]
    scene = tmp_path / "scene.yaml"
    scene.write_text(yaml.safe_dump(data, sort_keys=False))
    cases = write_csv(tmp_path / "d.csv", ["w1.present", "w2.present"], [["present", "present"]])
    (tmp_path / "out").mkdir()
    written, report = learn_file(scene, cases, tmp_path / "out" / "scene.yaml")
    copy_path = Path(report.libraries["lib/workers.yaml"])
    assert copy_path.parent == tmp_path / "out"
    assert written["use"] == [copy_path.name]
    assert yaml.safe_load(copy_path.read_text())["types"]["Worker"]["attributes"]["present"]["prior"] == [6 / 12, 6 / 12]
    assert yaml.safe_load((lib / "workers.yaml").read_text()) == library  # the library itself is untouched
    assert load_scenario(tmp_path / "out" / "scene.yaml").world.variables["w2.present"].row_strength == {"": 12}


# -- bad data -----------------------------------------------------------------------------------


def test_bad_rows_are_reported_by_line_and_nothing_is_written(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("road,crash,action\nwet,safe,brake\ndamp,safe,brake\n\nwet,boom,swerv\nwet,safe\n")
    out = tmp_path / "out.yaml"
    with pytest.raises(CruxError) as err:
        learn_file(EXAMPLE, data, out)
    assert str(err.value).splitlines() == [
        f"{data}: line 3: column road: unknown state 'damp' of road (valid: dry, wet)",
        f"{data}: line 5: column crash: unknown state 'boom' of crash (valid: safe, crash)",
        f"{data}: line 5: column action: unknown state 'swerv' of action; did you mean 'swerve'? (valid: brake, swerve, continue)",
        f"{data}: line 6: has 2 cells for 3 columns",
    ]
    assert not out.exists()
    data.write_text("road,craash\nwet,safe\n")
    with pytest.raises(CruxError, match=r"line 1: unknown variable 'craash'; did you mean 'crash'\?"):
        learn_file(EXAMPLE, data, out)
    assert not out.exists()


# -- the command --------------------------------------------------------------------------------


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "internal error" not in stream
    return result


def test_crux_learn_writes_next_to_the_model_and_refuses_to_overwrite_it(tmp_path):
    model = tmp_path / "model.yaml"
    text = EXAMPLE.read_text()
    model.write_text(text)
    data = cases_csv(tmp_path / "cases.csv", sample_cases(50, seed=1))
    result = run_cli("learn", str(model), str(data))
    assert result.exit_code == 0, result.stderr
    assert "read 50 rows" in result.stdout and "animal_hit" in result.stdout
    assert f"wrote {tmp_path / 'model.learned.yaml'}" in result.stdout
    assert load_scenario(tmp_path / "model.learned.yaml").world.variables["animal_hit"].row_strength
    refused = run_cli("learn", str(model), str(data), "--out", str(model))
    assert refused.exit_code == 1 and "is the model file itself" in refused.stderr and "--force" in refused.stderr
    assert model.read_text() == text
    forced = run_cli("learn", str(model), str(data), "--out", str(model), "--force", "--json")
    assert forced.exit_code == 0, forced.stderr
    report = json.loads(forced.stdout)
    assert report["rows"] == 50 and report["out"] == str(model)
    assert model.read_text() != text and load_scenario(model).world.variables["animal_hit"].row_strength
    bad = run_cli("learn", str(model), str(tmp_path / "missing.csv"))
    assert bad.exit_code == 1 and "missing.csv: no such file" in bad.stderr


def test_the_atomic_writer_keeps_the_usual_permissions_and_replaces_only_when_asked(tmp_path):
    """crux learn and crux init write through one helper: a temporary file renamed into place,
    with the umask's permissions (a temporary file is private), and, where asked, never over an
    existing file."""
    import os
    import stat

    from crux.worldmodel.errors import CruxError
    from crux.worldmodel.files import write_atomically

    mask = os.umask(0o022)
    try:
        target = tmp_path / "out.yaml"
        write_atomically(target, "a: 1\n")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        write_atomically(target, "a: 2\n")  # replaces by default
        assert target.read_text() == "a: 2\n"
        with pytest.raises(CruxError, match="taken"):
            write_atomically(target, "a: 3\n", replace=False, exists="taken")
        assert target.read_text() == "a: 2\n"
        assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]  # no temporary file left
    finally:
        os.umask(mask)
