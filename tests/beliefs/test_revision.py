"""Surprise: the warehouse stream in which a cat appears, the same stream without it, the
threshold on hand examples, candidate posteriors by hand, and streams with mistakes."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crux.beliefs.revision import Observation, parse_observations, threshold, watch
from crux.dialogue.cli.app import app
from crux.worldmodel.errors import CruxError

WAREHOUSE = Path(__file__).resolve().parents[2] / "examples" / "warehouse"
SCENE = WAREHOUSE / "scene.yaml"


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cat() -> list[dict]:
    return watch(SCENE, WAREHOUSE / "stream_cat.jsonl")


@pytest.fixture(scope="module")
def plain() -> list[dict]:
    return watch(SCENE, WAREHOUSE / "stream_plain.jsonl")


# -- the threshold ------------------------------------------------------------------------------


def test_threshold_on_hand_examples():
    # surprises 0.105, 2.354, 5.298: P(S > 0.105) = 0.1, P(S > 2.354) = 0.005 <= 1%
    assert threshold([0.9, 0.095, 0.005]) == pytest.approx(-math.log(0.095))
    # two equally likely states: nothing is ever more surprising than log 2
    assert threshold([0.5, 0.5]) == pytest.approx(math.log(2))
    # the rare state carries 0.5% of the mass: above the threshold, the common one is not
    assert threshold([0.995, 0.005]) == pytest.approx(-math.log(0.995))
    # a rare state with 2% is expected often enough: the threshold is its own surprise
    assert threshold([0.98, 0.02]) == pytest.approx(-math.log(0.02))
    # states of probability 0 are never expected
    assert threshold([0.0, 0.5, 0.5]) == pytest.approx(math.log(2))
    # another level: the 90th percentile of [0.9, 0.095, 0.005] is the surprise of 0.9
    assert threshold([0.9, 0.095, 0.005], level=0.1) == pytest.approx(-math.log(0.9))


def test_threshold_is_the_smallest_with_at_most_one_percent_above():
    rng = random.Random(0)
    for _ in range(200):
        raw = [rng.random() ** 4 for _ in range(rng.randint(2, 8))]
        p = [x / sum(raw) for x in raw]
        s = threshold(p)
        tail = sum(x for x in p if -math.log(x) > s)
        assert tail <= 0.01
        below = [t for t in (-math.log(x) for x in p) if t < s]
        for t in below:  # any smaller candidate leaves more than 1% above it
            assert sum(x for x in p if -math.log(x) > t) > 0.01


# -- the warehouse streams ------------------------------------------------------------------------


def test_the_cats_first_observations_raise_the_flag_and_cat_is_adopted(cat):
    flagged = [r for r in cat if r["flagged"]]
    assert len(flagged) == 1
    flag = flagged[0]
    first_odd = next(r for r in cat if r["entity"] == "unknown_object" and r["t"] >= 1)
    assert flag is first_odd  # the first cat-like observation
    assert (flag["t"], flag["attribute"], flag["value"], flag["type"]) == (1, "motion", "moving", "Box")
    assert flag["surprise"] > flag["threshold"]
    assert flag["adopted"] == "Cat"
    candidates = flag["candidates"]
    assert set(candidates) == {"Box", "Cat", "Dog", "Forklift", "Worker"}  # library types, used or not
    assert sum(candidates.values()) == pytest.approx(1.0)
    assert max(candidates, key=candidates.get) == "Cat"
    assert candidates["Cat"] > 0.5 and candidates["Box"] < 0.05


def test_surprise_falls_after_the_cat_is_adopted(cat):
    i = next(i for i, r in enumerate(cat) if r["flagged"])
    after = [r for r in cat[i + 1 :] if r["entity"] == "unknown_object"]
    assert len(after) >= 5
    assert all(r["type"] == "Cat" and not r["flagged"] for r in after)
    assert max(r["surprise"] for r in after) < cat[i]["surprise"] / 3


def test_the_stream_without_the_cat_raises_no_flag(plain, cat):
    assert not any(r["flagged"] for r in plain)
    assert not any("adopted" in r or "candidates" in r for r in plain)
    assert {r["type"] for r in plain if r["entity"] == "unknown_object"} == {"Box"}
    # the two streams differ only in the unknown object: everything else is predicted alike
    others = [(r["t"], r["entity"], r["attribute"], round(r["p"], 12)) for r in cat if r["entity"] != "unknown_object"]
    assert others == [(r["t"], r["entity"], r["attribute"], round(r["p"], 12)) for r in plain if r["entity"] != "unknown_object"]


def test_records_are_in_time_order_with_every_field(cat):
    assert [r["t"] for r in cat] == sorted(r["t"] for r in cat)
    lines = (WAREHOUSE / "stream_cat.jsonl").read_text().splitlines()
    assert len(cat) == len([line for line in lines if line.strip()])
    for r in cat:
        assert {"t", "entity", "attribute", "value", "type", "p", "surprise", "threshold", "flagged"} <= set(r)
        assert r["surprise"] == pytest.approx(-math.log(r["p"]))


# -- candidates by hand on a small scene ------------------------------------------------------------

LIBRARY = {
    "types": {
        "Box": {"attributes": {
            "motion": {"states": ["still", "moving"], "prior": [0.99, 0.01]},
        }},
        "Cat": {"attributes": {
            "motion": {"states": ["still", "moving"], "prior": [0.5, 0.5]},
            "voice": {"states": ["quiet", "meow"], "prior": [0.6, 0.4]},
        }},
        "Rock": {"attributes": {
            "weight": {"states": ["light", "heavy"], "prior": [0.5, 0.5]},
        }},
    }
}


def small_scene(tmp_path: Path) -> Path:
    (tmp_path / "lib.yaml").write_text(yaml.safe_dump(LIBRARY))
    scene = {
        "crux": 1,
        "name": "small",
        "use": ["lib.yaml"],
        "entities": {"thing": "Box"},
        "world": {
            "variables": {
                "act": {"states": ["wait", "go"]},
                "late": {"states": ["no_", "yes_"], "parents": ["act"], "table": {"wait": [0.2, 0.8], "go": [0.9, 0.1]}},
            },
            "decision": "act",
            "outcomes": ["late"],
        },
    }
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(scene))
    return path


def test_candidate_posteriors_by_hand(tmp_path):
    records = watch(small_scene(tmp_path), [Observation(0, "thing", "motion", "moving")], party="world")
    (r,) = records
    assert r["p"] == pytest.approx(0.01)
    assert r["threshold"] == pytest.approx(-math.log(0.99)) and r["flagged"]
    # likelihoods 0.01 (Box) and 0.5 (Cat); Rock has no motion and is not a candidate
    assert r["candidates"] == pytest.approx({"Cat": 0.5 / 0.51, "Box": 0.01 / 0.51})
    assert r["adopted"] == "Cat"


def test_an_attribute_the_type_lacks_is_infinitely_surprising(tmp_path):
    stream = [Observation(0, "thing", "voice", "meow", 1), Observation(0, "thing", "voice", "meow", 2)]
    first, second = watch(small_scene(tmp_path), stream, party="world")
    assert first["p"] == 0.0 and first["surprise"] is None and first["threshold"] is None and first["flagged"]
    assert first["candidates"] == {"Cat": 1.0, "Box": 0.0} and first["adopted"] == "Cat"
    # the static voice was observed: seen again, it is certain
    assert second["type"] == "Cat" and second["p"] == pytest.approx(1.0) and not second["flagged"]


def test_an_impossible_observation_is_flagged_and_not_conditioned_on(tmp_path):
    # motion does not change over time in this scene: one variable, seen three times
    stream = [Observation(0, "thing", "motion", v, n) for n, v in enumerate(["moving", "still", "moving"], 1)]
    first, second, third = watch(small_scene(tmp_path), stream, party="world")
    assert first["adopted"] == "Cat"
    assert second["p"] == 0.0 and second["flagged"] and second["threshold"] == 0.0
    assert second["candidates"] == {"Cat": 0.0, "Box": 0.0} and "adopted" not in second
    assert third["type"] == "Cat" and third["p"] == pytest.approx(1.0) and not third["flagged"]


# -- streams with mistakes ---------------------------------------------------------------------------

GOOD = '{"t": 0, "entity": "f1", "attribute": "motion", "value": "moving"}'


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"t": 1, "entity": "f9", "attribute": "motion", "value": "moving"}', "unknown entity 'f9'"),
        ('{"t": 1, "entity": "f1", "attribute": "moton", "value": "moving"}', "unknown attribute of f1 (Forklift) 'moton'; did you mean 'motion'?"),
        ('{"t": 1, "entity": "f1", "attribute": "motion", "value": "movin"}', "unknown state of f1.motion 'movin'; did you mean 'moving'?"),
        ('{"t": 1, "entity": "f1", "attribute": "motion"}', "missing key 'value'"),
        ('{"t": 1, "entity": "f1", "attribute": "motion", "value": "moving", "when": 3}', "unknown key 'when'"),
        ('{"t": -1, "entity": "f1", "attribute": "motion", "value": "moving"}', "t must be a step number"),
        ('{"t": 1, "entity": "f1", "attribute": "motion", "value": 3}', "value must be a string"),
        ('{"t": 1, "entity": "f1",', "not valid JSON"),
        ('[1, 2]', "an observation is an object"),
    ],
)
def test_bad_streams_give_line_numbered_errors(tmp_path, bad, message):
    path = tmp_path / "stream.jsonl"
    path.write_text(f"{GOOD}\n\n{bad}\n")
    with pytest.raises(CruxError) as err:
        watch(SCENE, path)
    assert str(err.value).startswith(f"{path}: line 3: ")
    assert message in str(err.value)


def test_cli_errors_name_the_line_without_a_traceback(tmp_path):
    path = tmp_path / "stream.jsonl"
    path.write_text(f"{GOOD}\n" + GOOD.replace("f1", "cat") + "\n")
    result = run_cli("watch", SCENE, path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: line 2: unknown entity 'cat'")
    assert "Traceback" not in result.output


def test_parse_observations_needs_one():
    with pytest.raises(CruxError, match="no observations"):
        parse_observations(["", "  "], source="empty.jsonl")


# -- the command ---------------------------------------------------------------------------------------


def test_cli_watch_json_and_table(cat):
    result = run_cli("watch", SCENE, WAREHOUSE / "stream_cat.jsonl", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["entity"], r["flagged"], r.get("adopted")) for r in records] == [
        (r["entity"], r["flagged"], r.get("adopted")) for r in cat
    ]
    from crux.dialogue.cli.watch import render

    table = render(cat)
    assert "FLAG" in table and "adopted Cat: unknown_object is re-typed from Box" in table
    assert table.splitlines()[-1] == f"1 of {len(cat)} observations flagged; re-typed: unknown_object Box -> Cat at t=1."


# -- the warehouse scene in the rest of Crux ---------------------------------------------------------


def test_the_warehouse_scene_validates():
    result = run_cli("validate", SCENE)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")


def test_the_warehouse_session_runs_headless_with_a_real_disagreement():
    result = run_cli("session", SCENE, "--headless", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    initial = report["initial"]
    assert initial["choices"]["agent"] != initial["choices"]["human"]
    assert initial["diagnosis"]["kind"] != "agree"
    assert report["final"]["choices"]["agent"] != report["final"]["choices"]["human"]
    assert report["turns"]  # facts were exchanged
