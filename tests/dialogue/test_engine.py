"""The dialogue engine on the canonical example and on hand-built cases (SCENARIO.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from crux.dialogue.engine import Engine, EngineError
from crux.dialogue.protocol import Decide, Diagnosed, Offered, Respond
from crux.dialogue.report import build_report
from crux.dialogue.session import run_session
from crux.dialogue.transcript import read_events
from crux.oracle.oracle import Oracle
from tests.conftest import CANONICAL
from crux.worldmodel.load import load_scenario
from crux.worldmodel.model import Model, load_model


def session(path: Path, **kw):
    model = load_model(path)
    return run_session(path, model, Oracle(model, device="cpu"), **kw)


@pytest.fixture(scope="module")
def canonical_run():
    return session(CANONICAL)


def test_canonical_initial_diagnosis_is_both_with_the_worked_shares(canonical_run):
    report, _ = canonical_run
    assert report["initial"]["choices"] == {"agent": "continue", "human": "swerve"}
    d = report["initial"]["diagnosis"]
    assert d["kind"] == "both"
    assert d["belief_share"] == pytest.approx(0.479850, abs=1e-6)
    assert d["value_share"] == pytest.approx(0.520150, abs=1e-6)
    assert d["cells"] == {
        "agent beliefs, agent values": "continue",
        "agent beliefs, human values": "brake",
        "human beliefs, agent values": "brake",
        "human beliefs, human values": "swerve",
    }


def test_canonical_agreement_part_way_is_broken_by_a_later_fact(canonical_run):
    report, _ = canonical_run
    agreed = [i for i, t in enumerate(report["turns"]) if t["choices"]["agent"] == t["choices"]["human"]]
    assert agreed, "the parties should agree part-way"
    later = report["turns"][agreed[0] + 1 :]
    assert any(t["choices"]["agent"] != t["choices"]["human"] for t in later), "a later fact must break the agreement"
    assert [t["fact"] for t in report["turns"]] == ["camera", "radar", "road_sensor", "fleet_logs"]
    assert all(t["response"] == "accepted" for t in report["turns"])


def test_canonical_final_is_value_and_the_human_decides(canonical_run):
    report, events = canonical_run
    final = report["final"]
    assert final["choices"] == {"agent": "brake", "human": "swerve"}
    assert final["diagnosis"]["kind"] == "value"
    assert final["diagnosis"]["belief_share"] + final["diagnosis"]["value_share"] == pytest.approx(1.0)
    [road] = final["unresolved_beliefs"]
    assert road["variable"] == "road" and road["agent"] == pytest.approx([1 / 7, 6 / 7], abs=1e-6)
    assert road["human"] == pytest.approx([0.5, 0.5]) and road["causes"] == ["human's priors"]
    assert road["value_of_information"] > 0
    top = final["value_conflicts"][0]
    assert (top["outcome"], top["state"]) == ("harm", "cat")
    assert top["agent"] == pytest.approx(-50 / 450) and top["human"] == pytest.approx(-300 / 550)
    assert final["tradeoff"] == "you would risk crash=crash to avoid harm=cat; the agent would not"
    assert report["decision"]["action"] == "swerve" and report["decision"]["by"] == "human"
    # the decision comes after the final diagnosis, never before
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Decided") > kinds.index("Concluded")


def test_replay_of_the_transcript_equals_the_report(tmp_path):
    path = tmp_path / "t.jsonl"
    report, _ = session(CANONICAL, transcript=path)
    assert build_report(read_events(path)) == report
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize("torn", [False, True])
def test_resume_after_a_kill_at_every_event_gives_the_same_report(tmp_path, torn):
    full = tmp_path / "full.jsonl"
    report, _ = session(CANONICAL, transcript=full)
    lines = full.read_text().splitlines(keepends=True)
    for k in range(1, len(lines)):
        cut = tmp_path / f"cut{k}.jsonl"
        cut.write_text("".join(lines[:k]) + (lines[k][: len(lines[k]) // 2] if torn else ""))
        resumed, _ = session(CANONICAL, resume=cut)
        assert resumed == report, f"resumed after {k} events"
        assert [json.loads(x) for x in cut.read_text().splitlines()] == [json.loads(x) for x in lines]


def test_resume_refuses_another_model(tmp_path):
    path = tmp_path / "t.jsonl"
    session(CANONICAL, transcript=path)
    other = tmp_path / "other.yaml"
    other.write_text(CANONICAL.read_text().replace("strength: 20", "strength: 25"))
    from crux.worldmodel.errors import CruxError

    with pytest.raises(CruxError, match="another version"):
        session(other, resume=path)


def test_decision_gate_and_bad_messages():
    model = load_model(CANONICAL)
    engine = Engine(model, Oracle(model, device="cpu"))
    with pytest.raises(EngineError, match="start"):
        engine.handle(Decide(action="swerve"))
    events = engine.start()
    offer = events[-1]
    assert isinstance(offer, Offered)
    with pytest.raises(EngineError, match="only after the final diagnosis"):
        engine.handle(Decide(action="swerve"))
    with pytest.raises(EngineError, match="expected a response to"):
        engine.handle(Respond(fact="not-offered", accepted=True))
    with pytest.raises(EngineError, match="out of range"):
        engine.handle(Respond(fact=offer.fact, accepted=True, reliability=1.5))


def _write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


PAIR = {
    "crux": 1,
    "name": "pair",
    "world": {
        "variables": {
            "x": {"states": ["lo", "hi"], "prior": [0.5, 0.5]},
            "y": {"states": ["lo", "hi"], "prior": [0.5, 0.5]},
            "d": {"states": ["a", "b"]},
            "o": {
                "states": ["ok", "bad"],
                "parents": ["d", "x", "y"],
                "table": {
                    **{f"a, {x}, {y}": [0.9, 0.1] for x in ("lo", "hi") for y in ("lo", "hi") if (x, y) != ("hi", "hi")},
                    "a, hi, hi": [0.1, 0.9],
                    **{f"b, {x}, {y}": [0.45, 0.55] for x in ("lo", "hi") for y in ("lo", "hi")},
                },
            },
        },
        "decision": "d",
        "outcomes": ["o"],
    },
    "facts": {
        "fx": {"text": "x is high", "source": "s1", "observe": {"x": "hi"}},
        "fy": {"text": "y is high", "source": "s2", "observe": {"y": "hi"}},
        "noise": {"text": "x is high, says a weak sensor", "source": "s3", "reliability": 0.51, "observe": {"x": "hi"}},
    },
    "parties": {
        "agent": {"beliefs": {"knows": ["fx", "fy"]}, "values": {"o": {"bad": -1}}},
        "human": {"beliefs": {"knows": []}, "values": {"o": {"bad": -1}}},
    },
}


def test_pair_of_facts_inert_alone_is_shared(tmp_path):
    """Single facts change no choice while the pair is decisive: the session must share both."""
    report, events = session(_write(tmp_path, PAIR))
    assert report["initial"]["choices"] == {"agent": "b", "human": "a"}
    assert report["initial"]["diagnosis"]["kind"] == "belief"
    assert sorted(t["fact"] for t in report["turns"]) == ["fx", "fy"]
    assert report["final"]["diagnosis"]["kind"] == "agree"
    assert report["final"]["choices"] == {"agent": "b", "human": "b"}


def test_an_irrelevant_fact_is_never_offered(tmp_path):
    data = copy.deepcopy(PAIR)
    data["parties"]["agent"]["beliefs"]["knows"] = ["fx", "fy", "noise"]
    # the human already sees y; only fx decides now, noise (weak, about x too) is dominated by it
    data["parties"]["human"]["beliefs"]["knows"] = ["fy"]
    report, events = session(_write(tmp_path, data))
    offered = [e.fact for e in events if isinstance(e, Offered)]
    assert offered == ["fx"]
    assert report["final"]["diagnosis"]["kind"] == "agree"
    assert report["final"]["why"] == (
        "no unshared fact (noise), alone or pooled with the others, would change any of the four choices of the swap test"
    )


def test_a_rejected_fact_stays_a_belief_disagreement(tmp_path):
    data = copy.deepcopy(PAIR)
    data["parties"]["human"]["beliefs"]["knows"] = ["fy"]
    data["parties"]["human"]["responds"] = {"rejects_sources": ["s1"]}
    report, _ = session(_write(tmp_path, data))
    assert report["turns"][0]["response"] == "rejected"
    final = report["final"]
    assert final["diagnosis"]["kind"] == "belief"
    assert final["value_conflicts"] == []
    [gap] = final["unresolved_beliefs"]
    assert gap["variable"] == "x" and "human rejected fx" in gap["causes"]
    assert gap["settle"].startswith("observe x")
    assert report["final"]["why"].endswith("rejected facts (fx) stay unresolved beliefs")


def test_predict_only_without_agent_values(tmp_path):
    data = yaml.safe_load(CANONICAL.read_text())
    del data["parties"]["agent"]["values"]
    path = _write(tmp_path, data)
    report, events = session(path, mode="predict-only")
    assert report["mode"] == "predict-only"
    for stage in (report["initial"], *report["turns"], report["final"]):
        assert set(stage["choices"]) == {"human"}
    assert report["initial"]["diagnosis"]["kind"] == "belief"
    assert report["final"]["value_conflicts"] == []
    for e in events:
        if isinstance(e, Diagnosed):
            assert "agent" not in e.choices
            assert all("agent values" not in cell for cell in e.cells)
        if isinstance(e, Offered):
            assert "agent's best action" not in e.why and "its best action" not in e.why
    assert report["decision"]["by"] == "human"
    assert report["final"]["choices"]["human"] == report["decision"]["action"]


def test_values_can_be_restated_during_a_session(tmp_path):
    from crux.dialogue.protocol import SetValues, ValuesChanged
    from crux.dialogue.session import LiveSession

    model = load_model(CANONICAL)
    t = tmp_path / "t.jsonl"
    live = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), transcript=t)
    events = live.send(SetValues(party="human", values=dict(model.scenario.parties.agent.values)))
    assert isinstance(events[0], ValuesChanged) and isinstance(events[1], Diagnosed)
    assert events[1].kind in ("agree", "belief")  # same values: what is left is about beliefs
    live.close()
    resumed = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), resume=t)
    assert resumed.engine.values["human"] == dict(model.scenario.parties.agent.values)
    assert [type(e) for e in resumed.events] == [type(e) for e in live.events]


def test_the_human_states_a_position_shares_and_observes(tmp_path):
    from crux.dialogue.protocol import Observe, Observed, Share, State, Stated
    from crux.dialogue.session import LiveSession

    model = load_model(CANONICAL)
    t = tmp_path / "t.jsonl"
    live = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), transcript=t)
    [stated] = live.send(State(action="brake"))
    assert isinstance(stated, Stated) and stated.implied == "swerve" and not stated.matches
    [offer] = live.send(Share(fact="camera"))
    assert offer.shared and offer.sender == "human" and offer.receiver == "agent"
    live.send(Respond(fact="camera", accepted=True))
    events = live.send(Observe(variable="road", state="dry", reliability=0.8, source="my own eyes"))
    assert isinstance(events[0], Observed) and events[0].fact == "observation-1"
    assert live.engine.pending.fact == "observation-1" and live.engine.pending.shared
    live.send(Respond(fact="observation-1", accepted=True))
    with pytest.raises(EngineError, match="unknown state of road 'damp'"):
        live.send(Observe(variable="road", state="damp"))
    with pytest.raises(EngineError, match="does not hold"):
        live.send(Share(fact="radar"))
    live.close()
    resumed = LiveSession(CANONICAL, model, Oracle(model, device="cpu"), resume=t)
    assert resumed.report() == live.report()
    assert resumed.engine.graphs["agent"].holds("observation-1")
