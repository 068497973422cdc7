"""World revision: the threshold on hand examples; the running posterior over an entity's type
against brute-force enumeration; the new kind against the Dirichlet-multinomial; the warehouse
streams (the cat, the stream without it, the worker); streams drawn from each library type and
from a type no library holds; the files written; streams with mistakes."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crux.beliefs.newkind import new_kind
from crux.beliefs.revision import Observation, parse_observations, threshold, watch
from crux.beliefs.streams import sample_stream
from crux.dialogue.cli.app import app
from crux.worldmodel.errors import CruxError
from crux.worldmodel.spec import EntityType

WAREHOUSE = Path(__file__).resolve().parents[2] / "examples" / "warehouse"
SCENE = WAREHOUSE / "scene.yaml"


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cat():
    return watch(SCENE, WAREHOUSE / "stream_cat.jsonl")


@pytest.fixture(scope="module")
def plain():
    return watch(SCENE, WAREHOUSE / "stream_plain.jsonl")


@pytest.fixture(scope="module")
def worker():
    return watch(SCENE, WAREHOUSE / "stream_worker.jsonl")


def of(report, entity: str = "unknown_object") -> list[dict]:
    return [r for r in report.records if r["entity"] == entity]


# -- the threshold ------------------------------------------------------------------------------


def test_threshold_on_hand_examples():
    # surprises 0.105, 2.354, 5.298: P(S >= 5.298) = 0.005 <= 1%, P(S >= 2.354) = 0.1
    assert threshold([0.9, 0.095, 0.005]) == pytest.approx(-math.log(0.005))
    # two equally likely states: neither is in a 1% tail
    assert threshold([0.5, 0.5]) is None
    # the rare state carries 0.5% of the mass: it is the tail
    assert threshold([0.995, 0.005]) == pytest.approx(-math.log(0.005))
    # a rare state with 2% is expected too often to be flagged
    assert threshold([0.98, 0.02]) is None
    # ties count: two states of 0.5% are the 1% tail together, the state of 2% above them is not
    # (3% of the mass is at least as surprising as it): the forklift's sound while moving
    assert threshold([0.04, 0.93, 0.005, 0.005, 0.02]) == pytest.approx(-math.log(0.005))
    # states of probability 0 are never expected
    assert threshold([0.0, 0.995, 0.005]) == pytest.approx(-math.log(0.005))
    # another level: the 10% tail of [0.9, 0.095, 0.005] holds both rare states
    assert threshold([0.9, 0.095, 0.005], level=0.1) == pytest.approx(-math.log(0.095))


def test_threshold_tail_holds_at_most_one_percent_and_is_the_largest_such():
    rng = random.Random(0)
    for _ in range(300):
        raw = [rng.random() ** 4 for _ in range(rng.randint(2, 8))]
        if rng.random() < 0.3:  # ties
            raw += raw[: rng.randint(1, len(raw))]
        p = [x / sum(raw) for x in raw]
        s = threshold(p)
        surprises = sorted({-math.log(x) for x in p})
        if s is None:  # even the rarest states carry more than 1%
            assert sum(x for x in p if -math.log(x) >= surprises[-1] - 1e-9) > 0.01
            continue
        assert sum(x for x in p if -math.log(x) >= s - 1e-9) <= 0.01 + 1e-12
        below = [t for t in surprises if t < s - 1e-9]
        if below:  # one state further in and the tail holds more than 1%
            assert sum(x for x in p if -math.log(x) >= below[-1] - 1e-9) > 0.01


# -- the posterior against brute force ----------------------------------------------------------

KINDS = {
    "A": {"attributes": {
        "size": {"states": ["small", "large"], "prior": [0.8, 0.2]},
        "motion": {"states": ["still", "moving"], "prior": [0.7, 0.3],
                   "next": {"parents": ["self.motion"], "table": {"still": [0.9, 0.1], "moving": [0.4, 0.6]}}},
        "sound": {"states": ["quiet", "loud"], "parents": ["self.motion"],
                  "table": {"still": [0.9, 0.1], "moving": [0.3, 0.7]}},
    }},
    "B": {"attributes": {
        "size": {"states": ["small", "large"], "prior": [0.3, 0.7]},
        "motion": {"states": ["still", "moving"], "prior": [0.4, 0.6],
                   "next": {"parents": ["self.motion"], "table": {"still": [0.5, 0.5], "moving": [0.2, 0.8]}}},
        "sound": {"states": ["quiet", "loud"], "parents": ["self.motion"],
                  "table": {"still": [0.6, 0.4], "moving": [0.1, 0.9]}},
    }},
    "C": {"attributes": {  # no sound, and a motion that never changes
        "size": {"states": ["small", "large"], "prior": [0.5, 0.5]},
        "motion": {"states": ["still", "moving"], "prior": [0.5, 0.5]},
    }},
}
NEW = {"attributes": {  # the new kind of a thing typed A: A's structure, every row Dirichlet(1, 1)
    "size": {"states": ["small", "large"], "prior": [0.5, 0.5]},
    "motion": {"states": ["still", "moving"], "prior": [0.5, 0.5],
               "next": {"parents": ["self.motion"], "table": {"still": [0.5, 0.5], "moving": [0.5, 0.5]}}},
    "sound": {"states": ["quiet", "loud"], "parents": ["self.motion"],
              "table": {"still": [0.5, 0.5], "moving": [0.5, 0.5]}},
}}


def kinds_scene(tmp_path: Path, thing: str = "A") -> Path:
    (tmp_path / "kinds.yaml").write_text(yaml.safe_dump({"types": KINDS}))
    scene = {
        "crux": 1, "name": "kinds", "use": ["kinds.yaml"],
        "entities": {"thing": thing, "other": "B"},
        "world": {
            "variables": {
                "act": {"states": ["wait", "go"]},
                "late": {"states": ["no_", "yes_"], "parents": ["act"], "table": {"wait": [0.2, 0.8], "go": [0.9, 0.1]}},
            },
            "decision": "act", "outcomes": ["late"],
        },
    }
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(scene))
    return path


def varying(spec: dict) -> set[str]:
    """The attributes that change over time: those with ``next`` and those that read one."""
    attrs = spec["attributes"]
    out = {a for a in attrs if "next" in attrs[a]}
    out |= {a for a in attrs if any(p.split(".")[1] in out for p in attrs[a].get("parents", []))}
    return out


def family(spec: dict, attr: str, t: int) -> tuple[dict, list[tuple[str, int]]]:
    """The mechanism of ``attr`` at step ``t`` and its parents as (attribute, step), by hand."""
    a, moving = spec["attributes"][attr], varying(spec)
    mech, at = (a["next"], t - 1) if t > 0 and "next" in a else (a, t)
    return mech, [(p.split(".")[1], at if p.split(".")[1] in moving else 0) for p in mech.get("parents", [])]


def fixed(spec: dict, seen: list[tuple[str, int, str]]) -> dict[tuple[str, int], str] | None:
    """The observed variables of an entity of type ``spec`` (an attribute that does not change
    is one variable, at step 0); None when it lacks an attribute or a variable is seen twice
    in two states."""
    out: dict[tuple[str, int], str] = {}
    for a, t, v in seen:
        if a not in spec["attributes"]:
            return None
        key = (a, t if a in varying(spec) else 0)
        if out.setdefault(key, v) != v:
            return None
    return out


def joint(spec: dict, steps: int, seen: list[tuple[str, int, str]]) -> float:
    """P(seen) for one entity of type ``spec``, by summing over every assignment of its variables."""
    known = fixed(spec, seen)
    if known is None:
        return 0.0
    attrs, moving = spec["attributes"], varying(spec)
    variables = [(a, t) for a in attrs for t in (range(steps + 1) if a in moving else [0])]
    total = 0.0
    for values in itertools.product(*(attrs[a]["states"] for a, _ in variables)):
        x = dict(zip(variables, values))
        if any(x[k] != v for k, v in known.items()):
            continue
        weight = 1.0
        for a, t in variables:
            mech, parents = family(spec, a, t)
            row = mech["prior"] if not parents else mech["table"][", ".join(x[p] for p in parents)]
            weight *= row[attrs[a]["states"].index(x[(a, t)])]
        total += weight
    return total


def learned(spec: dict, seen: list[tuple[str, int, str]]) -> dict:
    """``spec`` (every row Dirichlet(1, ..., 1)) with the counts of the complete families in
    ``seen`` added: each row the posterior mean (1 + n_x) / (k + n)."""
    out = json.loads(json.dumps(spec))
    known = fixed(spec, seen) or {}
    counts: dict[tuple[str, bool, str], list[int]] = {}
    for (a, t), v in known.items():
        mech, parents = family(spec, a, t)
        if all(p in known for p in parents):
            row = ", ".join(known[p] for p in parents)
            states = spec["attributes"][a]["states"]
            c = counts.setdefault((a, t > 0 and "next" in spec["attributes"][a], row), [0] * len(states))
            c[states.index(v)] += 1
    for (a, nxt, row), c in counts.items():
        mech = out["attributes"][a]["next"] if nxt else out["attributes"][a]
        mean = [(1 + n) / (len(c) + sum(c)) for n in c]
        if row:
            mech["table"][row] = mean
        else:
            mech["prior"] = mean
    return out


STREAM = [  # thing: sound at t=0 and t=2 with motion not yet seen; other: unrelated, watched too
    Observation(0, "thing", "size", "large", 1),
    Observation(0, "thing", "sound", "loud", 2),
    Observation(0, "other", "motion", "moving", 3),
    Observation(1, "thing", "motion", "moving", 4),
    Observation(1, "thing", "sound", "loud", 5),
    Observation(1, "other", "motion", "still", 6),
    Observation(2, "thing", "sound", "quiet", 7),
    Observation(2, "thing", "motion", "still", 8),
]


NEW_OF_C = {"attributes": {  # the new kind of a thing typed C: C's attributes and A's sound
    "size": {"states": ["small", "large"], "prior": [0.5, 0.5]},
    "motion": {"states": ["still", "moving"], "prior": [0.5, 0.5]},
    "sound": {"states": ["quiet", "loud"], "parents": ["self.motion"], "table": {"still": [0.5, 0.5], "moving": [0.5, 0.5]}},
}}


def brute_force_posteriors(stream: list[Observation], steps: int, new: dict = NEW) -> list[dict[str, float]]:
    """P(type of thing | observations so far) after each observation, uniform prior over A, B,
    C and the new kind: library types by enumeration; the new kind by enumeration under its
    rows of the moment, each observation given the earlier ones it could explain."""
    out, new_log, seen, taken = [], 0.0, [], []
    for obs in stream:
        if obs.entity == "thing":
            seen.append((obs.attribute, obs.t, obs.value))
            if new_log > -math.inf:
                rows = learned(new, taken)
                p = joint(rows, steps, [*taken, seen[-1]]) / joint(rows, steps, taken)
                new_log = new_log + math.log(p) if p > 0 else -math.inf
                taken.append(seen[-1])
        weights = {h: joint(KINDS[h], steps, seen) for h in KINDS}
        weights["NewThing"] = math.exp(new_log)
        total = sum(weights.values())
        out.append({h: w / total for h, w in weights.items()})
    return out


def test_the_posterior_is_brute_force_enumeration_over_types(tmp_path):
    report = watch(kinds_scene(tmp_path), STREAM, party="world")
    expected = brute_force_posteriors(STREAM, steps=2)
    mine = [(r, e) for r, e in zip(report.records, expected) if r["entity"] == "thing"]
    assert len(mine) == 6
    for r, e in mine:
        assert set(r["posterior"]) == set(e)
        for h in e:
            assert r["posterior"][h] == pytest.approx(e[h], abs=1e-9), (r, h)
    # C has no sound: ruled out at the first sound, for good
    assert all(r["posterior"]["C"] == 0.0 for r, _ in mine[1:])
    # the other entity's observations move the thing's posterior not at all
    at = {(r["t"], r["entity"]): r for r in report.records}
    assert at[(0, "other")]["posterior"].keys() == {"A", "B", "C", "NewOther"}


def test_the_posterior_is_brute_force_while_the_entity_is_re_typed(tmp_path):
    """The thing starts as C, which a sound rules out: it is re-typed at once and the posterior
    goes on as before (each candidate is its own scene)."""
    report = watch(kinds_scene(tmp_path, thing="C"), STREAM, party="world")
    second = report.records[1]
    assert second["p"] == 0.0 and second["flags"][0] == "surprise"
    (event,) = second["retyped"]
    assert event["from"] == "C" and event["why"] == "ruled out" and event["to"] == max(event["posterior"], key=event["posterior"].get)
    # its new kind is C's (a sound that never changes, as C's motion does not): quiet at t=2 rules it out
    expected = brute_force_posteriors(STREAM, steps=2, new=NEW_OF_C)
    assert expected[-1]["NewThing"] == 0.0
    for r, e in zip(report.records, expected):
        if r["entity"] == "thing":
            assert r["posterior"] == pytest.approx(e, abs=1e-9)


def test_the_new_kind_learns_as_the_dirichlet_multinomial(tmp_path):
    """Every family complete: the new kind's evidence is the Dirichlet-multinomial's closed form,
    the product over rows of B(1 + n) / B(1)."""
    seen = [("size", 0, "large"), ("motion", 0, "moving"), ("sound", 0, "loud"), ("motion", 1, "moving"),
            ("sound", 1, "loud"), ("motion", 2, "still"), ("sound", 2, "loud"), ("motion", 3, "still"), ("sound", 3, "quiet")]
    stream = [Observation(t, "thing", a, v, n) for n, (a, t, v) in enumerate(seen, 1)]
    report = watch(kinds_scene(tmp_path), stream, party="world")
    rows = {
        "size": [0, 1], "motion@0": [0, 1], "motion|moving": [1, 1], "motion|still": [1, 0],
        "sound|moving": [0, 2], "sound|still": [1, 1],
    }
    closed = sum(math.lgamma(2) - math.lgamma(2 + sum(n)) + sum(math.lgamma(1 + c) for c in n) for n in rows.values())
    assert report.records[-1]["log_likelihood"]["NewThing"] == pytest.approx(closed, abs=1e-9)


# -- the warehouse streams ------------------------------------------------------------------------


def test_the_cat_is_flagged_at_its_first_odd_observation_and_adopted_once_the_evidence_is_in(cat):
    mine = of(cat)
    first_odd = next(r for r in mine if r["t"] >= 1)
    assert (first_odd["attribute"], first_odd["value"], first_odd["type"]) == ("motion", "moving", "Box")
    assert first_odd["flags"] == ["surprise"] and first_odd["surprise"] >= first_odd["threshold"]
    assert "retyped" not in first_odd  # a flag is not an adoption
    assert max(first_odd["posterior"].values()) < 0.9
    [event] = [e for r in cat.records for e in r.get("retyped", ())]
    assert (event["entity"], event["from"], event["to"], event["why"]) == ("unknown_object", "Box", "Cat", "posterior")
    assert event["posterior"]["Cat"] >= 0.9 and sum(event["posterior"].values()) == pytest.approx(1.0)
    assert set(event["posterior"]) == {"Box", "Cat", "Dog", "Forklift", "Worker", "NewUnknownObject"}
    assert event["moved_by"][0]["t"] == 1 and event["moved_by"][0]["attribute"] == "motion"
    assert cat.types["unknown_object"] == "Cat"
    assert cat.summary["retyped"] == [
        {"entity": "unknown_object", "from": "Box", "to": "Cat", "new": False, "t": event["t"],
         "observation": event["observation"], "line": event["line"], "seen": event["seen"],
         "posterior": event["posterior"]["Cat"]}
    ]


def test_after_the_cat_is_adopted_nothing_is_flagged_and_its_posterior_grows(cat):
    i = next(i for i, r in enumerate(cat.records) if "retyped" in r)
    after = [r for r in cat.records[i + 1:] if r["entity"] == "unknown_object"]
    assert len(after) >= 2
    assert all(r["type"] == "Cat" and not r["flagged"] for r in after)
    assert after[-1]["posterior"]["Cat"] > cat.records[i]["posterior"]["Cat"]


def test_the_stream_without_the_cat_raises_no_flag_and_ends_sure_of_the_box(plain, cat):
    assert not any(r["flagged"] for r in plain.records)
    assert not any("retyped" in r for r in plain.records)
    assert plain.types == cat.types | {"unknown_object": "Box"}
    assert of(plain)[-1]["posterior"]["Box"] > 0.9
    # the two streams differ only in the unknown object: everything else is predicted alike
    others = [(r["t"], r["entity"], r["attribute"], round(r["p"], 12)) for r in cat.records if r["entity"] != "unknown_object"]
    assert others == [(r["t"], r["entity"], r["attribute"], round(r["p"], 12)) for r in plain.records if r["entity"] != "unknown_object"]


def test_the_worker_ends_as_a_worker_caught_by_the_evidence_not_the_tail(worker):
    """The issue's stream: a moving, talking, medium-sized "box".  Each observation is merely
    unlikely under Box (none in its 1% tail), so the surprise rule is silent; the Bayes factor
    is not, and the posterior adopts Worker, never Forklift."""
    mine = of(worker)
    assert not any("surprise" in r["flags"] for r in mine)
    flagged = [r for r in mine if r["flagged"]]
    assert flagged and flagged[0]["flags"] == ["evidence"] and flagged[0]["evidence"]["log_bf"] >= math.log(100)
    events = [e for r in worker.records for e in r.get("retyped", ())]
    assert [(e["from"], e["to"]) for e in events] == [("Box", "Worker")]
    assert worker.types["unknown_object"] == "Worker" and mine[-1]["posterior"]["Worker"] > 0.95
    # under Forklift, the first type the old filter took, voice and medium are improbable ...
    voice = next(r for r in mine if r["value"] == "voice")
    assert voice["posterior"].get("Forklift", 0) < 0.1


def test_records_are_in_time_order_with_every_field(cat):
    assert [r["t"] for r in cat.records] == sorted(r["t"] for r in cat.records)
    lines = (WAREHOUSE / "stream_cat.jsonl").read_text().splitlines()
    assert len(cat.records) == len([line for line in lines if line.strip()])
    for r in cat.records:
        assert {"t", "entity", "attribute", "value", "type", "p", "surprise", "threshold", "flags", "flagged",
                "posterior", "log_likelihood"} <= set(r)
        assert r["surprise"] == pytest.approx(-math.log(r["p"]))
        assert sum(r["posterior"].values()) == pytest.approx(1.0)
        assert list(r["posterior"].values()) == sorted(r["posterior"].values(), reverse=True)
    skipped = cat.summary["entities"]["f1"]["skipped"]
    assert set(skipped) == {"Box", "Worker", "Cat", "Dog"} and "f1.hazard" in skipped["Box"]


# -- candidates on a small scene --------------------------------------------------------------------

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
    (r,) = watch(small_scene(tmp_path), [Observation(0, "thing", "motion", "moving")], party="world").records
    assert r["p"] == pytest.approx(0.01)
    assert r["threshold"] == pytest.approx(-math.log(0.01)) and r["flags"] == ["surprise"]  # 1% is the 1% tail
    # likelihoods 0.01 (Box), 0.5 (Cat), 0 (Rock: no motion), 0.5 (the new kind: Dirichlet(1, 1))
    assert r["posterior"] == pytest.approx({"Cat": 0.5 / 1.01, "NewThing": 0.5 / 1.01, "Box": 0.01 / 1.01, "Rock": 0.0})
    assert "retyped" not in r  # nothing passes 0.9
    assert r["evidence"] == {"against": "Box", "for": "Cat", "log_bf": pytest.approx(math.log(50))}


def test_an_attribute_the_type_lacks_rules_it_out_at_once(tmp_path):
    stream = [Observation(0, "thing", "voice", "meow", 1), Observation(0, "thing", "voice", "meow", 2)]
    first, second = watch(small_scene(tmp_path), stream, party="world").records
    assert first["p"] == 0.0 and first["surprise"] is None and first["threshold"] is None
    assert first["flags"] == ["surprise", "evidence"]
    assert first["posterior"] == pytest.approx({"NewThing": 0.5 / 0.9, "Cat": 0.4 / 0.9, "Box": 0.0, "Rock": 0.0})
    (event,) = first["retyped"]
    assert (event["to"], event["why"], event["new"]) == ("NewThing", "ruled out", True)
    # the static voice was observed: seen again, it is certain
    assert second["type"] == "NewThing" and second["p"] == pytest.approx(1.0) and not second["flagged"]


def test_an_observation_no_candidate_explains_moves_no_posterior(tmp_path):
    # motion does not change over time in this scene: one variable, seen three times
    stream = [Observation(0, "thing", "motion", v, n) for n, v in enumerate(["moving", "still", "moving"], 1)]
    first, second, third = watch(small_scene(tmp_path), stream, party="world").records
    assert second["p"] == 0.0 and second["flagged"]
    assert second["posterior"] == first["posterior"] and second["log_likelihood"] == first["log_likelihood"]
    assert third["p"] == pytest.approx(1.0) and not third["flagged"]


def test_adopt_and_bayes_factor_are_the_rules(tmp_path):
    stream = [Observation(t, "thing", "motion", "moving", t + 1) for t in range(1)] + [
        Observation(0, "thing", "voice", "meow", 2)
    ]
    strict = watch(small_scene(tmp_path), stream, party="world", adopt=1.0)
    assert strict.types["thing"] == "NewThing"  # Box is ruled out by the voice: re-typed anyway
    loose = watch(small_scene(tmp_path), stream[:1], party="world", adopt=0.5000001, bayes_factor=40)
    assert loose.records[0]["flags"] == ["surprise", "evidence"] and loose.types["thing"] == "Box"  # Cat and the new kind tie
    with pytest.raises(CruxError, match=r"--adopt 0.5: give a probability above 0.5"):
        watch(small_scene(tmp_path), stream, adopt=0.5)
    with pytest.raises(CruxError, match=r"--bayes-factor 1: give a finite number above 1"):
        watch(small_scene(tmp_path), stream, bayes_factor=1)


# -- streams drawn from the types -------------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn():
    from bench.watch import run

    return run(seeds=20, steps=24, observe=0.8)


def test_streams_drawn_from_each_library_type_end_as_that_type(drawn):
    types = [t for t in dict.fromkeys(o.drawn for o in drawn) if t != "Robot"]
    assert types == ["Forklift", "Box", "Worker", "Cat", "Dog"]
    for name in types:
        mine = [o for o in drawn if o.drawn == name]
        assert len(mine) == 20 and all(o.start != name for o in mine)
        assert sum(o.right for o in mine) >= 19, (name, [o.adopted for o in mine])  # 95%


def test_streams_from_a_type_no_library_holds_end_as_a_new_kind(drawn):
    robot = [o for o in drawn if o.drawn == "Robot"]
    assert len(robot) == 20 and sum(o.right for o in robot) >= 19, [o.adopted for o in robot]


def test_the_stream_generator_draws_from_the_rows():
    spec = EntityType.model_validate(KINDS["A"])
    stream = sample_stream(spec, "thing", 2000, seed=3, observe=1.0)
    assert stream == sample_stream(spec, "thing", 2000, seed=3, observe=1.0)
    assert [o.attribute for o in stream[:4]] == ["size", "motion", "sound", "motion"]
    moving = [o for o in stream if o.attribute == "motion"]
    still_then = [b.value for a, b in zip(moving, moving[1:]) if a.value == "still"]
    assert still_then.count("moving") / len(still_then) == pytest.approx(0.1, abs=0.02)
    sounds = {o.t: o.value for o in stream if o.attribute == "sound"}
    loud_when_moving = [sounds[o.t] == "loud" for o in moving if o.value == "moving"]
    assert sum(loud_when_moving) / len(loud_when_moving) == pytest.approx(0.7, abs=0.04)
    sparse = sample_stream(spec, "thing", 50, seed=1, observe=0.3)
    assert sparse[-1].t == 50 and len(sparse) < 0.5 * 2 * 51


# -- what is written ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def robot_stream(tmp_path_factory) -> Path:
    from bench.watch import ENTITY, ROBOT, library, shared

    stream = sample_stream(EntityType.model_validate(ROBOT), ENTITY, 24, seed=0, attributes=shared(library()), observe=0.8)
    path = tmp_path_factory.mktemp("robot") / "robot.jsonl"
    path.write_text("".join(json.dumps({"t": o.t, "entity": o.entity, "attribute": o.attribute, "value": o.value}) + "\n" for o in stream))
    return path


def test_a_new_kind_is_written_and_used_in_the_next_scene(robot_stream, tmp_path):
    out = tmp_path / "scene"
    out.mkdir()
    for name in ("scene.yaml", "library"):
        src = WAREHOUSE / name
        (out / name).write_bytes(src.read_bytes()) if src.is_file() else __import__("shutil").copytree(src, out / name)
    new = out / "library" / "new.yaml"
    saved = out / "retyped.yaml"
    result = run_cli("watch", out / "scene.yaml", robot_stream, "--learn-new", new, "--save", saved, "--as", "world", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["entities"]["unknown_object"]["type"] == "NewUnknownObject"
    assert summary["new_types"] == [{"name": "NewUnknownObject", "entity": "unknown_object", "file": str(new)}]
    assert summary["saved"] == str(saved)
    # the library file: the prior's rows plus the entity's counts, in the format of library/*.yaml
    written = yaml.safe_load(new.read_text())
    kind = written["types"]["NewUnknownObject"]
    assert set(kind["attributes"]) == {"size", "motion", "speed", "sound"}
    assert kind["attributes"]["size"]["strength"] == 3 and kind["attributes"]["size"]["row_strength"][""] == 4
    sizes = [o for o in map(json.loads, robot_stream.read_text().splitlines()) if o["attribute"] == "size"]
    assert max(kind["attributes"]["size"]["prior"]) == pytest.approx(2 / 4) and len(sizes) == 1
    # ... usable by `use:` in the next scene, which validates and runs
    data = yaml.safe_load((out / "scene.yaml").read_text())
    data["use"].append("library/new.yaml")
    data["entities"]["robot1"] = "NewUnknownObject"
    data["relations"].append({"type": "in_path_of", "from": "f2", "to": "robot1"})
    (out / "next.yaml").write_text(yaml.safe_dump(data))
    assert run_cli("validate", out / "next.yaml").exit_code == 0
    # the saved scene: the re-typed entity, the new kind among its types; a session runs on it
    assert run_cli("validate", saved).exit_code == 0
    scene = yaml.safe_load(saved.read_text())
    assert scene["entities"]["unknown_object"] == "NewUnknownObject" and "NewUnknownObject" in scene["types"]
    assert scene["use"] == ["library/warehouse.yaml", "library/animals.yaml"]
    session = run_cli("session", saved, "--headless", "--json", "--device", "cpu")
    assert session.exit_code == 0, session.output
    assert json.loads(session.stdout)["final"]["choices"]


def test_the_saved_scene_elsewhere_carries_its_library(cat, tmp_path):
    saved = tmp_path / "cat.yaml"
    result = run_cli("watch", SCENE, WAREHOUSE / "stream_cat.jsonl", "--save", saved, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"saved the scene as re-typed to {saved}" in result.stdout
    scene = yaml.safe_load(saved.read_text())
    assert "use" not in scene and {"Cat", "Box", "Forklift"} <= set(scene["types"])
    assert scene["entities"]["unknown_object"] == "Cat"
    assert run_cli("validate", saved).exit_code == 0
    assert run_cli("session", saved, "--headless", "--device", "cpu").exit_code == 0


def test_learn_new_without_a_new_kind_writes_nothing(tmp_path):
    new = tmp_path / "new.yaml"
    result = run_cli("watch", SCENE, WAREHOUSE / "stream_cat.jsonl", "--learn-new", new, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert not new.exists() and result.stderr == f"note: no entity ends as a new kind: {new} is not written\n"


def test_new_kind_structure_follows_the_scene_type():
    box = EntityType.model_validate({"attributes": {
        "motion": {"states": ["still", "moving"], "parents": ["carried_by.motion"], "aggregate": "any",
                   "table": {"no": [0.9, 0.1], "yes": [0.1, 0.9]},
                   "next": {"parents": ["self.motion", "carried_by.motion"], "aggregate": "any",
                            "table": {"still, no": [0.9, 0.1], "still, yes": [0.1, 0.9], "moving, no": [0.5, 0.5], "moving, yes": [0.1, 0.9]}}},
    }})
    cat = EntityType.model_validate(LIBRARY["types"]["Cat"])
    kind = new_kind("a box", box, ["motion", "voice"], {"Box": box, "Cat": cat}, taken=["NewABox"])
    assert kind.name == "NewABox2"
    motion = kind.spec["attributes"]["motion"]
    assert motion["prior"] == [0.5, 0.5] and motion["strength"] == 2  # no parent of another entity
    assert motion["next"] == {"parents": ["self.motion"], "table": {"still": [0.5, 0.5], "moving": [0.5, 0.5]}}
    assert kind.spec["attributes"]["voice"] == {"states": ["quiet", "meow"], "prior": [0.5, 0.5], "strength": 2}


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
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [(r["entity"], r["flagged"], r["posterior"]) for r in records] == [
        (r["entity"], r["flagged"], r["posterior"]) for r in cat.records
    ]
    assert summary["retyped"] == cat.summary["retyped"] and summary["new_types"] == []
    from crux.dialogue.cli.watch import render

    table = render(cat.records, cat.summary)
    assert "FLAG surprise" in table and "FLAG evidence" in table
    assert "re-typed unknown_object Box -> Cat after" in table and "moved most by: motion=moving at t=1" in table
    event = cat.summary["retyped"][0]
    assert table.splitlines()[-1] == (
        f"2 of {len(cat.records)} observations flagged; re-typed: unknown_object Box -> Cat at t={event['t']} "
        f"(posterior {event['posterior']:.3f})."
    )


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
