"""Scenes: types, entities and relations ground into the expected variables and edges;
a scene answers exactly as its hand-written flat equivalent; unrolled dynamics by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crux.oracle.oracle import Oracle
from crux.oracle.query import Query
from crux.worldmodel.entities import scene_graph
from crux.worldmodel.errors import ModelError
from crux.worldmodel.load import load_scenario, validate_data
from crux.worldmodel.model import Model, load_model

SCENES = Path(__file__).resolve().parent / "scenes"
FORKLIFT = SCENES / "forklift.yaml"


def test_types_and_relations_ground_into_variables_and_edges():
    scenario = load_scenario(FORKLIFT)
    variables = scenario.world.variables
    assert set(variables) == {
        "f1.speed", "f1.hazard", "w1.present", "w2.present",
        "f1.in_path_of.present.any#1", "f1.in_path_of.present.any", "stop", "delay",
    }
    assert variables["f1.hazard"].parents == ["f1.speed", "f1.in_path_of.present.any", "stop"]
    assert variables["f1.in_path_of.present.any#1"].parents == ["w1.present"]
    assert variables["f1.in_path_of.present.any"].parents == ["f1.in_path_of.present.any#1", "w2.present"]
    graph = scene_graph(scenario)
    assert sorted(graph.edges(keys=True)) == [("f1", "w1", "in_path_of"), ("f1", "w2", "in_path_of")]
    assert graph.nodes["w1"]["type"] == "Worker"


FLAT = {
    "crux": 1,
    "name": "flat",
    "world": {
        "variables": {
            "f1.speed": {"states": ["slow", "fast"], "prior": [0.7, 0.3]},
            "w1.present": {"states": ["absent", "present"], "prior": [0.6, 0.4]},
            "w2.present": {"states": ["absent", "present"], "prior": [0.6, 0.4]},
            "someone": {
                "states": ["no", "yes"],
                "parents": ["w1.present", "w2.present"],
                "strength": 1,
                "table": {
                    "absent, absent": [1, 0], "absent, present": [0, 1],
                    "present, absent": [0, 1], "present, present": [0, 1],
                },
            },
            "stop": {"states": ["no", "yes"]},
            "f1.hazard": {
                "states": ["none", "collision"],
                "parents": ["f1.speed", "someone", "stop"],
                "table": None,  # filled from the scene file below
            },
            "delay": {"states": ["short", "long"], "parents": ["stop"], "table": {"no": [0.9, 0.1], "yes": [0.2, 0.8]}},
        },
        "decision": "stop",
        "outcomes": ["f1.hazard", "delay"],
    },
    "facts": {"sensor": {"text": "t", "source": "floor sensor", "reliability": 0.8, "observe": {"w1.present": "present"}}},
    "parties": {"agent": {"beliefs": {"knows": ["sensor"]}}},
}


def test_a_scene_and_its_flat_equivalent_give_identical_answers():
    scene_data = yaml.safe_load(FORKLIFT.read_text())
    flat_data = yaml.safe_load(yaml.safe_dump(FLAT))
    flat_data["world"]["variables"]["f1.hazard"]["table"] = scene_data["types"]["Forklift"]["attributes"]["hazard"]["table"]
    flat, problems = validate_data(flat_data)
    assert not problems, problems
    scene = Oracle(load_model(FORKLIFT), device="cpu", samples=200, seed=1)
    plain = Oracle(Model.from_scenario(flat), device="cpu", samples=200, seed=1)
    queries = [
        Query(do={"stop": s}, given=g, outcomes=["f1.hazard", "w2.present"], as_=p)
        for s in ("no", "yes")
        for g in ({}, {"f1.speed": "fast"}, {"f1.hazard": "collision"})
        for p in ("agent", "world")
    ]
    for a, b in zip(scene.ask_many(queries), plain.ask_many(queries)):
        for name in a.outcomes:
            assert a.outcomes[name].p == pytest.approx(b.outcomes[name].p, abs=1e-12)


DYNAMICS = """
crux: 1
name: dynamics
types:
  Machine:
    attributes:
      wear:
        states: [ok, worn]
        prior: [1.0, 0.0]
        next:
          parents: [self.wear]
          table:
            ok: [0.9, 0.1]
            worn: [0.2, 0.8]
      alarm:
        states: [quiet, ringing]
        parents: [self.wear]
        table:
          ok: [0.95, 0.05]
          worn: [0.1, 0.9]
entities:
  m: Machine
world:
  variables:
    service:
      states: [later, now]
  decision: service
  outcomes: [m.wear, m.alarm]
"""


def test_unrolled_dynamics_against_a_hand_computation(tmp_path):
    path = tmp_path / "dyn.yaml"
    path.write_text(DYNAMICS)
    model = load_model(path, steps=3)
    names = set(model.network.order)
    assert {"m.wear@0", "m.wear@3", "m.alarm@0", "m.alarm@3"} <= names
    assert model.network.parents["m.wear@2"] == ("m.wear@1",)
    assert model.network.parents["m.alarm@2"] == ("m.wear@2",)
    answer = Oracle(model, device="cpu", samples=2).ask(Query(as_="world"))
    p = [1.0, 0.0]
    for t in range(4):
        assert answer.outcomes[f"m.wear@{t}"].p == pytest.approx(p, abs=1e-12)
        alarm = [p[0] * 0.95 + p[1] * 0.1, p[0] * 0.05 + p[1] * 0.9]
        assert answer.outcomes[f"m.alarm@{t}"].p == pytest.approx(alarm, abs=1e-12)
        p = [p[0] * 0.9 + p[1] * 0.2, p[0] * 0.1 + p[1] * 0.8]
    # an observation at step 2 filters the past and predicts the future
    seen = Oracle(model, device="cpu", samples=2).ask(Query(given={"m.alarm@2": "ringing"}, outcomes=["m.wear@3"], as_="world"))
    w2 = [0.83, 0.17]
    post2 = [w2[0] * 0.05, w2[1] * 0.9]
    post2 = [x / sum(post2) for x in post2]
    w3 = [post2[0] * 0.9 + post2[1] * 0.2, post2[0] * 0.1 + post2[1] * 0.8]
    assert seen.outcomes["m.wear@3"].p == pytest.approx(w3, abs=1e-12)
    # without steps the scene is its first step, named plainly
    static = load_model(path)
    assert "m.wear" in static.network.order and "m.wear@0" not in static.network.order


def test_library_types_by_use(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    data = yaml.safe_load(FORKLIFT.read_text())
    (lib / "workers.yaml").write_text(yaml.safe_dump({"types": {"Worker": data["types"].pop("Worker"), "Unused": {"attributes": {"x": {"states": ["a", "b"], "prior": [0.5, 0.5]}}}}}))
    data["use"] = ["lib/workers.yaml"]
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(data))
    scenario = load_scenario(path)
    assert "w1.present" in scenario.world.variables
    assert not any(v.startswith("Unused") or v.endswith(".x") for v in scenario.world.variables)  # only used types


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["entities"].update({"f2": "Crane"}), "entities.f2: unknown type 'Crane'"),
        (lambda d: d["relations"].append({"type": "near", "from": "f1", "to": "w9"}), "unknown entity 'w9'"),
        (lambda d: d["types"]["Forklift"]["attributes"]["hazard"].pop("aggregate"), "reaches 2 entities by in_path_of: give `aggregate` (any, count, sum, mean)"),
        (lambda d: d["types"]["Forklift"]["attributes"]["hazard"]["parents"].__setitem__(0, "self.sped"), "unknown attribute of Forklift 'sped'; did you mean 'speed'?"),
        (lambda d: d["types"]["Forklift"]["attributes"]["hazard"]["table"].pop("fast, yes, yes"), 'types.Forklift.attributes.hazard.table: missing row "fast, yes, yes"'),
        (lambda d: d.update({"use": ["nowhere.yaml"]}), "use[0]"),
    ],
)
def test_scene_errors_point_at_the_type(tmp_path, edit, needle):
    data = yaml.safe_load(FORKLIFT.read_text())
    edit(data)
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError) as err:
        load_scenario(path)
    assert needle in str(err.value)


def test_row_strength_sets_one_rows_certainty(canonical):
    """A row seen in data (crux learn) carries its own concentration; the reference agrees."""
    from crux.worldmodel import reference

    data = yaml.safe_load(Path(__file__).resolve().parents[2].joinpath("examples", "squirrel_or_cat.yaml").read_text())
    data["world"]["variables"]["crash"]["row_strength"] = {"wet, swerve, car": 500}
    data["world"]["variables"]["road"]["row_strength"] = {"": 3}
    scenario, problems = validate_data(data)
    assert not problems
    model = Model.from_scenario(scenario)
    assert model.beliefs("world").concentration["road"].tolist() == pytest.approx([1.8, 1.2])
    answer = Oracle(model, device="cpu", samples=2).ask(Query(do={"action": "swerve"}, given={"road": "wet"}, as_="agent"))
    expected = reference.ask(scenario, "agent", {"action": "swerve"}, {"road": "wet"}, ["crash"])["crash"]
    assert answer.outcomes["crash"].p == pytest.approx(expected, abs=1e-12)
    data["world"]["variables"]["crash"]["row_strength"] = {"wet, swerve, bus": 5, "wet, swerve, car": -1}
    _, problems = validate_data(data)
    assert [p.message for p in problems] == [
        "unknown state of oncoming 'bus' (valid: clear, car)",
        "strength -1.0 must be a positive number",
    ]


AGGREGATES = """
crux: 1
name: aggregates
types:
  Forklift:
    attributes:
      crowd:
        states: [calm, busy]
        parents: [in_path_of.present]
        aggregate: count
        table:
          "0": [1.0, 0.0]
          "1": [0.5, 0.5]
          "2+": [0.0, 1.0]
      load:
        parents: [carries.weight]
        aggregate: sum
        normal: {intercept: 0.0, weights: {carries.weight: 1.0}, scale: 0.1}
      average:
        parents: [carries.weight]
        aggregate: mean
        normal: {intercept: 0.0, weights: {carries.weight: 1.0}, scale: 0.1}
  Worker:
    attributes:
      present: {states: [absent, present], prior: [0.6, 0.4]}
  Box:
    attributes:
      weight:
        parents: [go]
        normal: {intercept: 10.0, offsets: {go: {"yes": 1.0}}, scale: 2.0}
entities: {f: Forklift, w1: Worker, w2: Worker, w3: Worker, b1: Box, b2: Box}
relations:
  - {type: in_path_of, from: f, to: w1}
  - {type: in_path_of, from: f, to: w2}
  - {type: in_path_of, from: f, to: w3}
  - {type: carries, from: f, to: b1}
  - {type: carries, from: f, to: b2}
world:
  variables:
    go: {states: ["no", "yes"]}
  decision: go
  outcomes: [f.crowd, f.load]
"""


def test_count_sum_and_mean_aggregates(tmp_path):
    path = tmp_path / "agg.yaml"
    path.write_text(AGGREGATES)
    model = load_model(path)
    assert model.network.states["f.in_path_of.present.count"] == ("0", "1", "2+")
    oracle = Oracle(model, device="cpu", samples=2)
    answer = oracle.ask(Query(do={"go": "yes"}, outcomes=["f.in_path_of.present.count", "f.crowd", "f.load", "f.average"], as_="world"))
    p0, p1 = 0.6**3, 3 * 0.4 * 0.6**2
    assert answer.outcomes["f.in_path_of.present.count"].p == pytest.approx([p0, p1, 1 - p0 - p1], abs=1e-12)
    assert answer.outcomes["f.crowd"].p == pytest.approx([p0 + 0.5 * p1, 0.5 * p1 + 1 - p0 - p1], abs=1e-12)
    load, average = answer.outcomes["f.load"], answer.outcomes["f.average"]
    assert answer.method == "exact"
    assert (load.mean, load.sd) == pytest.approx((22.0, (2 * 4 + 0.01) ** 0.5), abs=1e-9)  # sum of two N(11, 2^2), + noise
    assert (average.mean, average.sd) == pytest.approx((11.0, (2 * 4 / 4 + 0.01) ** 0.5), abs=1e-9)
    seen = oracle.ask(Query(do={"go": "no"}, given={"b1.weight": "14"}, outcomes=["f.load"], as_="world")).outcomes["f.load"]
    assert (seen.mean, seen.sd) == pytest.approx((24.0, (4 + 0.01) ** 0.5), abs=1e-9)


def test_count_needs_its_row_keys(tmp_path):
    path = tmp_path / "agg.yaml"
    path.write_text(AGGREGATES.replace('"2+": [0.0, 1.0]', '"2": [0.0, 1.0]'))
    with pytest.raises(ModelError, match=r'row keys "0", "1", \.\.\., "k\+"'):
        load_scenario(path)
