"""Loading scenario files: every rule of SCENARIO.md, broken on purpose, and the message it must give.

Most cases start from the canonical example (``examples/squirrel_or_cat.yaml``)
as plain data, break one rule, write the result as YAML and as JSON, and
check the exact lines of the :class:`ModelError` (``FILE: path.to.field:
message``).  Where YAML itself matters (bare ``yes``/``no``, duplicate keys,
syntax errors) the file is written as literal text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app
from crux.worldmodel.errors import CruxError, ModelError, Problem
from crux.worldmodel.files import read_data
from crux.worldmodel.load import load_scenario, validate_data
from crux.worldmodel.spec import Scenario

Mutation = Callable[[dict[str, Any]], None]

VARIABLES = "road, animal, oncoming, action, animal_hit, crash, harm"
FACTS = "road_sensor, radar, camera, fleet_logs"
QUOTE_HINT = "not a name: YAML reads bare yes, no, on, off, true, false as booleans; quote the name"
CYCLE_FIX = "the parent graph must be acyclic (remove one of these edges)"
EVERY_ROW = "every combination of parent states needs a row"


# -- helpers -------------------------------------------------------------------------------


def var(name: str, *rest: str) -> tuple[str, ...]:
    return ("world", "variables", name, *rest)


def _parent(data: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    for part in path[:-1]:
        data = data[part]
    return data


def put(path: tuple[Any, ...], value: Any) -> Mutation:
    """Set (or add) the value at ``path``."""

    def mutate(data: dict[str, Any]) -> None:
        _parent(data, path)[path[-1]] = value

    return mutate


def drop(path: tuple[Any, ...]) -> Mutation:
    """Remove the key at ``path``."""

    def mutate(data: dict[str, Any]) -> None:
        del _parent(data, path)[path[-1]]

    return mutate


def rename(path: tuple[Any, ...], new: str) -> Mutation:
    """Rename the key at ``path``, keeping its place and value."""

    def mutate(data: dict[str, Any]) -> None:
        mapping = _parent(data, path)
        items = [(new if k == path[-1] else k, v) for k, v in mapping.items()]
        mapping.clear()
        mapping.update(items)

    return mutate


def rename_state_in_keys(variable: str, position: int, names: dict[str, str]) -> Mutation:
    """Rename parent states in the row keys of ``variable``'s table (the parent at ``position``)."""

    def mutate(data: dict[str, Any]) -> None:
        table = data["world"]["variables"][variable]["table"]
        rows = list(table.items())
        table.clear()
        for key, row in rows:
            parts = [p.strip() for p in key.split(",")]
            parts[position] = names.get(parts[position], parts[position])
            table[", ".join(parts)] = row

    return mutate


def chain(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


def problem_lines(path: Path) -> list[str]:
    """The rendered lines of the ModelError that loading ``path`` must raise."""
    with pytest.raises(ModelError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(path)
    lines = str(err).splitlines()
    assert lines == [p.render(str(path)) for p in err.problems]
    return lines


def expect_problems(path: Path, *messages: str) -> None:
    """Loading ``path`` fails with exactly these lines (given without the ``FILE: `` prefix)."""
    assert problem_lines(path) == [f"{path}: {m}" for m in messages]


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
        assert "internal error" not in stream
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# -- the canonical example -----------------------------------------------------------------


def test_example_loads(example_path: Path) -> None:
    scenario = load_scenario(example_path)
    assert isinstance(scenario, Scenario)
    assert scenario.name == "squirrel-or-cat"
    assert list(scenario.world.variables) == VARIABLES.split(", ")
    assert list(scenario.facts) == FACTS.split(", ")
    assert scenario.world.decision == "action"
    assert scenario.world.outcomes == ["harm", "crash"]
    # strength: optional, default 10
    assert scenario.world.variables["road"].strength == 10
    assert scenario.world.variables["crash"].strength == 20
    # reliability: default 1.0 for an observe fact that gives none
    assert scenario.facts["radar"].weight == 0.95


def test_example_round_trip_through_yaml_dump_is_valid(example: dict, write) -> None:
    """The harness itself: the example, dumped unchanged, still loads (so every failure below is the mutation)."""
    assert load_scenario(write(example)) == load_scenario(write(example, "same.json"))


# -- one broken rule at a time -------------------------------------------------------------

BROKEN = [
    # ---- table rows
    pytest.param(
        drop(var("animal_hit", "table", "wet, brake")),
        [f'world.variables.animal_hit.table: missing row "wet, brake": {EVERY_ROW}'],
        id="row-missing",
    ),
    pytest.param(
        put(var("animal_hit", "table", "damp, brake"), [0.5, 0.5]),
        ["world.variables.animal_hit.table.\"damp, brake\": unknown state of road 'damp' (valid: dry, wet)"],
        id="row-extra",
    ),
    pytest.param(
        put(var("animal_hit", "table", "dry, brake, car"), [0.5, 0.5]),
        [
            'world.variables.animal_hit.table."dry, brake, car": row key names 3 states for 2 parents '
            '(road, action): write it as "<road state>, <action state>"'
        ],
        id="row-key-too-many-states",
    ),
    pytest.param(
        rename(var("animal_hit", "table", "dry, brake"), "dry"),
        [
            'world.variables.animal_hit.table.dry: row key names 1 state for 2 parents '
            '(road, action): write it as "<road state>, <action state>"',
            f'world.variables.animal_hit.table: missing row "dry, brake": {EVERY_ROW}',
        ],
        id="row-key-too-few-states",
    ),
    pytest.param(
        rename(var("animal_hit", "table", "dry, brake"), "dry, brak"),
        [
            "world.variables.animal_hit.table.\"dry, brak\": unknown state of action 'brak'; "
            "did you mean 'brake'? (valid: brake, swerve, continue)",
            f'world.variables.animal_hit.table: missing row "dry, brake": {EVERY_ROW}',
        ],
        id="row-key-unknown-parent-state",
    ),
    pytest.param(
        put(var("animal_hit", "table", "dry,brake "), [0.5, 0.5]),
        ["world.variables.animal_hit.table.\"dry,brake \": repeats row 'dry, brake' of animal_hit"],
        id="row-key-repeats-after-trimming",
    ),
    pytest.param(
        put(var("animal_hit", "table", "dry, brake"), [0.8, 0.15]),
        ['world.variables.animal_hit.table."dry, brake": sums to 0.95, not 1 (tolerance 1e-06)'],
        id="row-sum",
    ),
    pytest.param(
        put(var("animal_hit", "table", "dry, brake"), [0.85, 0.1, 0.05]),
        [
            'world.variables.animal_hit.table."dry, brake": has 3 probabilities for 2 states (missed, hit): '
            "give one per state, in that order"
        ],
        id="row-length",
    ),
    pytest.param(
        put(var("harm", "table", "cat, hit"), [0.5, 0.6, -0.1]),
        ["world.variables.harm.table.\"cat, hit\": probability -0.1 for state 'cat' is negative"],
        id="row-negative",
    ),
    # ---- priors
    pytest.param(
        put(var("road", "prior"), [0.6, 0.5]),
        ["world.variables.road.prior: sums to 1.1, not 1 (tolerance 1e-06)"],
        id="prior-sum",
    ),
    pytest.param(
        put(var("road", "prior"), [0.6, 0.40001]),
        ["world.variables.road.prior: sums to 1.00001, not 1 (tolerance 1e-06)"],
        id="prior-sum-just-outside-tolerance",
    ),
    pytest.param(
        put(var("road", "prior"), [1.2, -0.2]),
        ["world.variables.road.prior: probability -0.2 for state 'wet' is negative"],
        id="prior-negative",
    ),
    pytest.param(
        put(var("road", "prior"), [1.0]),
        ["world.variables.road.prior: has 1 probability for 2 states (dry, wet): give one per state, in that order"],
        id="prior-length",
    ),
    pytest.param(
        put(var("road", "prior"), [math.nan, 0.4]),
        ["world.variables.road.prior: probability nan for state 'dry' is not a finite number"],
        id="prior-nan",
    ),
    pytest.param(
        put(var("road", "prior"), ["0.6", 0.4]),
        ["world.variables.road.prior[0]: input should be a valid number, got '0.6': it is quoted text; write the number without quotes"],
        id="prior-quoted-number",
    ),
    pytest.param(
        put(var("crash", "strength"), 0),
        ["world.variables.crash.strength: input should be greater than 0"],
        id="strength-zero",
    ),
    # ---- states
    pytest.param(
        chain(put(var("animal", "states"), ["squirrel", "cat", "cat"]), put(var("animal", "prior"), [0.7, 0.2, 0.1])),
        ["world.variables.animal.states: duplicate state 'cat': states must be unique"],
        id="states-duplicate",
    ),
    pytest.param(
        put(var("road", "states"), ["dry"]),
        ["world.variables.road.states: list should have at least 2 items after validation, not 1"],
        id="states-fewer-than-two",
    ),
    pytest.param(
        put(var("weather"), {"states": ["sun", "rain, hail"], "prior": [0.5, 0.5]}),
        [
            "world.variables.weather.states[1]: state 'rain, hail' must be non-empty, without ',' "
            "(it separates row keys) and without white space around it"
        ],
        id="state-with-comma",
    ),
    pytest.param(
        put(var("oncoming", "states"), [True, False]),
        [
            f'world.variables.oncoming.states[0]: read as the boolean true, {QUOTE_HINT} ("true")',
            f'world.variables.oncoming.states[1]: read as the boolean false, {QUOTE_HINT} ("false")',
        ],
        id="states-booleans",
    ),
    pytest.param(
        put(var("road", "states"), [1, 2]),
        [
            'world.variables.road.states[0]: read as the number 1, not a name: quote it ("1")',
            'world.variables.road.states[1]: read as the number 2, not a name: quote it ("2")',
        ],
        id="states-numbers",
    ),
    # ---- parents and the graph
    pytest.param(
        put(var("animal_hit", "parents"), ["rood", "action"]),
        [
            "world.variables.animal_hit.parents[0]: unknown variable 'rood'; did you mean 'road'? "
            f"(valid: {VARIABLES})"
        ],
        id="parent-unknown",
    ),
    pytest.param(
        put(var("animal_hit", "parents"), ["animal_hit", "action"]),
        ["world.variables.animal_hit.parents[0]: animal_hit cannot be its own parent"],
        id="parent-self",
    ),
    pytest.param(
        put(var("animal_hit", "parents"), ["road", "road"]),
        ["world.variables.animal_hit.parents: parent 'road' is listed 2 times"],
        id="parent-twice",
    ),
    pytest.param(
        chain(
            put(
                var("road"),
                {"states": ["dry", "wet"], "parents": ["crash"], "table": {"safe": [0.6, 0.4], "crash": [0.5, 0.5]}},
            ),
            drop(("parties", "human", "beliefs", "priors", "road")),
        ),
        [f"world.variables.crash.parents: cycle crash -> road -> crash: {CYCLE_FIX}"],
        id="cycle-of-two",
    ),
    pytest.param(
        chain(
            drop(var("road", "prior")),
            put(var("road", "parents"), ["harm"]),
            put(var("road", "table"), {s: [0.5, 0.5] for s in ("none", "squirrel", "cat")}),
            drop(("parties", "human", "beliefs", "priors", "road")),
        ),
        [f"world.variables.harm.parents: cycle harm -> road -> animal_hit -> harm: {CYCLE_FIX}"],
        id="cycle-of-three",
    ),
    pytest.param(
        drop(var("road", "prior")),
        ["world.variables.road: a root variable needs a `prior` (or name it as world.decision if it is the decision)"],
        id="root-without-prior",
    ),
    pytest.param(
        put(var("animal_hit", "prior"), [0.5, 0.5]),
        ["world.variables.animal_hit.prior: a variable with parents takes a `table`, not a `prior`"],
        id="prior-on-child",
    ),
    pytest.param(
        drop(var("animal_hit", "table")),
        ["world.variables.animal_hit: has parents but no `table`: give one row per combination of parent states"],
        id="child-without-table",
    ),
    pytest.param(
        put(var("road", "table"), {"dry": [1, 0], "wet": [0, 1]}),
        ["world.variables.road.table: a table needs `parents`; a root variable takes a `prior`"],
        id="table-on-root",
    ),
    # ---- decision and outcomes
    pytest.param(
        put(var("action", "prior"), [0.3, 0.3, 0.4]),
        [
            "world.variables.action.prior: action is the decision: a root without a prior "
            "(its states are the actions); remove `prior`"
        ],
        id="decision-with-prior",
    ),
    pytest.param(
        put(var("action", "parents"), ["road"]),
        [
            "world.variables.action.parents: action is the decision: a root without a prior "
            "(its states are the actions); remove `parents`"
        ],
        id="decision-with-parents",
    ),
    pytest.param(
        put(("world", "decision"), "acton"),
        [
            "world.variables.action: a root variable needs a `prior` (or name it as world.decision if it is the decision)",
            f"world.decision: unknown variable 'acton'; did you mean 'action'? (valid: {VARIABLES})",
        ],
        id="decision-unknown",
    ),
    pytest.param(
        put(("world", "outcomes"), ["harm", "crash", "harms"]),
        [f"world.outcomes[2]: unknown variable 'harms'; did you mean 'harm'? (valid: {VARIABLES})"],
        id="outcome-unknown",
    ),
    pytest.param(
        put(("world", "outcomes"), ["harm", "crash", "action"]),
        ["world.outcomes[2]: the decision cannot be an outcome: outcomes are what actions lead to"],
        id="outcome-is-decision",
    ),
    pytest.param(
        put(("world", "outcomes"), ["harm", "crash", "harm"]),
        ["world.outcomes: outcome 'harm' is listed 2 times"],
        id="outcome-twice",
    ),
    # ---- observe facts
    pytest.param(
        put(("facts", "radar", "observe"), {"oncoming": "truck"}),
        ["facts.radar.observe.oncoming: unknown state of oncoming 'truck' (valid: clear, car)"],
        id="observe-unknown-state",
    ),
    pytest.param(
        put(("facts", "radar", "observe"), {"traffic": "car"}),
        [f"facts.radar.observe: unknown variable 'traffic' (valid: {VARIABLES})"],
        id="observe-unknown-variable",
    ),
    pytest.param(
        put(("facts", "radar", "observe"), {"action": "brake"}),
        ["facts.radar.observe: action is the decision: it is chosen, not observed"],
        id="observe-decision",
    ),
    pytest.param(
        put(("facts", "radar", "observe"), {}),
        ["facts.radar.observe: observes nothing: give {variable: state}"],
        id="observe-nothing",
    ),
    pytest.param(
        put(("facts", "road_sensor", "observe"), {"road": True}),
        [f'facts.road_sensor.observe.road: read as the boolean true, {QUOTE_HINT} ("true")'],
        id="observe-boolean-state",
    ),
    pytest.param(
        put(("facts", "radar", "reliability"), 1.5),
        ["facts.radar.reliability: reliability 1.5 is out of range: use a probability in [0, 1]"],
        id="reliability-above-1",
    ),
    pytest.param(
        put(("facts", "radar", "reliability"), -0.1),
        ["facts.radar.reliability: reliability -0.1 is out of range: use a probability in [0, 1]"],
        id="reliability-below-0",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "reliability"), 0.9),
        ["facts.fleet_logs.reliability: reliability applies to observe facts; a counts fact weighs by its counts"],
        id="reliability-on-counts-fact",
    ),
    pytest.param(
        put(
            ("facts", "radar", "counts"),
            {"variable": "crash", "given": {"road": "wet", "action": "swerve", "oncoming": "car"}, "counts": {"crash": 1}},
        ),
        ["facts.radar: a fact takes exactly one of `observe` (about the case) or `counts` (about the world)"],
        id="fact-with-observe-and-counts",
    ),
    pytest.param(
        drop(("facts", "radar", "observe")),
        ["facts.radar: a fact takes exactly one of `observe` (about the case) or `counts` (about the world)"],
        id="fact-with-neither",
    ),
    pytest.param(
        drop(("facts", "radar", "text")),
        ["facts.radar: missing required key 'text'"],
        id="fact-without-text",
    ),
    pytest.param(
        rename(("facts", "radar", "reliability"), "relability"),
        [
            "facts.radar: unknown key 'relability'; did you mean 'reliability'? "
            "(valid: text, source, reliability, observe, counts)"
        ],
        id="fact-key-typo",
    ),
    # ---- counts facts
    pytest.param(
        drop(("facts", "fleet_logs", "counts", "given", "oncoming")),
        [
            "facts.fleet_logs.counts.given: does not select one row of crash: "
            "give a state for every parent; missing oncoming"
        ],
        id="counts-given-missing-parent",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "given", "animal"), "cat"),
        ["facts.fleet_logs.counts.given.animal: 'animal' is not a parent of crash (parents: road, action, oncoming)"],
        id="counts-given-extra-variable",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts"), {"variable": "road", "given": {"animal": "cat"}, "counts": {"wet": 3}}),
        ["facts.fleet_logs.counts.given.animal: 'animal' is not a parent of road (parents: none, so `given` must be empty)"],
        id="counts-given-on-root",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "given", "road"), "icy"),
        ["facts.fleet_logs.counts.given.road: unknown state of road 'icy' (valid: dry, wet)"],
        id="counts-given-unknown-state",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "counts", "wreck"), 3),
        ["facts.fleet_logs.counts.counts.wreck: unknown state of crash 'wreck' (valid: safe, crash)"],
        id="counts-unknown-state",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "counts", "crash"), -1.5),
        ["facts.fleet_logs.counts.counts.crash: count -1.5 must be a non-negative number"],
        id="counts-negative",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "counts"), {"crash": 0}),
        ["facts.fleet_logs.counts.counts: all counts are 0: the fact adds nothing"],
        id="counts-all-zero",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "variable"), "crsh"),
        [f"facts.fleet_logs.counts.variable: unknown variable 'crsh'; did you mean 'crash'? (valid: {VARIABLES})"],
        id="counts-unknown-variable",
    ),
    pytest.param(
        put(("facts", "fleet_logs", "counts", "variable"), "action"),
        ["facts.fleet_logs.counts.variable: action is the decision: it has no table to count"],
        id="counts-decision",
    ),
    # ---- parties: beliefs
    pytest.param(
        put(("parties", "human", "beliefs", "knows"), ["camra"]),
        [f"parties.human.beliefs.knows[0]: unknown fact 'camra'; did you mean 'camera'? (valid: {FACTS})"],
        id="knows-unknown-fact",
    ),
    pytest.param(
        put(("parties", "agent", "beliefs", "knows"), ["radar", "radar"]),
        ["parties.agent.beliefs.knows: fact 'radar' is listed 2 times"],
        id="knows-twice",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "road"), {"dry": [0.5, 0.5]}),
        ["parties.human.beliefs.priors.road: road is a root variable: give its prior as a list [p1, p2, ...]"],
        id="party-prior-rows-for-root",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "crash"), [0.5, 0.5]),
        ['parties.human.beliefs.priors.crash: crash has parents: give rows as {"row key": [p1, p2, ...]}'],
        id="party-prior-list-for-table",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "road"), "half"),
        [
            'parties.human.beliefs.priors.road: give a list [p1, p2, ...] for a root variable, '
            'or {"row key": [p1, ...]} for a table'
        ],
        id="party-prior-neither-list-nor-rows",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "road"), [0.5, 0.3, 0.2]),
        [
            "parties.human.beliefs.priors.road: has 3 probabilities for 2 states (dry, wet): "
            "give one per state, in that order"
        ],
        id="party-prior-length",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "road"), [0.9, 0.2]),
        ["parties.human.beliefs.priors.road: sums to 1.1, not 1 (tolerance 1e-06)"],
        id="party-prior-sum",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "animal_hit"), {"dry, brak": [0.5, 0.5]}),
        [
            "parties.human.beliefs.priors.animal_hit.\"dry, brak\": unknown state of action 'brak'; "
            "did you mean 'brake'? (valid: brake, swerve, continue)"
        ],
        id="party-prior-row-unknown-state",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "animal_hit"), {"wet, brake": [0.5, 0.6]}),
        ['parties.human.beliefs.priors.animal_hit."wet, brake": sums to 1.1, not 1 (tolerance 1e-06)'],
        id="party-prior-row-sum",
    ),
    pytest.param(
        put(("parties", "human", "beliefs", "priors", "rood"), [0.5, 0.5]),
        [f"parties.human.beliefs.priors.rood: unknown variable 'rood'; did you mean 'road'? (valid: {VARIABLES})"],
        id="party-prior-unknown-variable",
    ),
    pytest.param(
        put(("parties", "agent", "beliefs", "priors"), {"action": [0.3, 0.3, 0.4]}),
        ["parties.agent.beliefs.priors.action: action is the decision: it has no prior to override"],
        id="party-prior-decision",
    ),
    # ---- parties: values
    pytest.param(
        put(("parties", "agent", "values", "harms"), {"cat": -1}),
        ["parties.agent.values.harms: unknown outcome 'harms'; did you mean 'harm'? (valid: harm, crash)"],
        id="values-unknown-outcome",
    ),
    pytest.param(
        put(("parties", "agent", "values", "road"), {"wet": -1}),
        ["parties.agent.values.road: unknown outcome 'road' (valid: harm, crash); add it to world.outcomes to score it"],
        id="values-variable-not-an-outcome",
    ),
    pytest.param(
        put(("parties", "agent", "values", "harm", "dog"), -1),
        ["parties.agent.values.harm.dog: unknown state of harm 'dog' (valid: none, squirrel, cat)"],
        id="values-unknown-state",
    ),
    pytest.param(
        put(("parties", "agent", "values", "harm", "cat"), math.inf),
        ["parties.agent.values.harm.cat: utility inf is not a finite number"],
        id="values-infinite",
    ),
    # ---- parties: unknown values (asked in a session)
    pytest.param(
        put(("parties", "agent", "values"), "unknown"),
        [
            "parties.agent.values: only the human's values may be `unknown` (a session asks the human for them): "
            "state the agent's utilities {outcome: {state: utility}} (in a predict-only session they are never "
            "read: leave `values` out)"
        ],
        id="values-agent-unknown",
    ),
    pytest.param(
        put(("parties", "agent", "values", "crash"), "unknown"),
        [
            "parties.agent.values.crash: only the human's values may be `unknown` (a session asks the human for them): "
            "state the agent's utilities {state: utility} (in a predict-only session they are never read: leave "
            "`values` out)"
        ],
        id="values-agent-outcome-unknown",
    ),
    pytest.param(
        put(("parties", "human", "values"), "unknwon"),
        ["parties.human.values: give {outcome: {state: utility}}, or `unknown`, got 'unknwon'"],
        id="values-misspelt-unknown",
    ),
    pytest.param(
        put(("parties", "human", "values", "harm"), "unkown"),
        ["parties.human.values.harm: give {state: utility}, or `unknown`, got 'unkown'"],
        id="values-outcome-misspelt-unknown",
    ),
    pytest.param(
        put(("parties", "human", "values", "harm", "cat"), "-300"),
        ["parties.human.values.harm.cat: input should be a valid number, got '-300': it is quoted text; write the number without quotes"],
        id="values-quoted-number",
    ),
    pytest.param(
        put(("parties", "human", "responds", "values"), {"harm": {"cat": -300}}),
        [
            "parties.human.responds.values: the human's values are all stated, so no value question is asked: "
            "remove responds.values, or mark the outcomes to ask about `unknown` in parties.human.values"
        ],
        id="responds-values-without-unknown-values",
    ),
    pytest.param(
        chain(
            put(("parties", "human", "values", "harm"), "unknown"),
            put(("parties", "human", "responds", "values"), {"harm": {"cat": -300}, "crash": {"crash": -250}}),
        ),
        [
            "parties.human.responds.values.crash: the human's values of crash are stated in parties.human.values: "
            "responds.values gives the outcomes marked `unknown` there (harm); remove crash here or mark it "
            "`unknown` there"
        ],
        id="responds-values-of-a-stated-outcome",
    ),
    pytest.param(
        chain(
            put(("parties", "human", "values"), "unknown"),
            put(("parties", "human", "responds", "values"), {"harm": {"dog": -300}, "crsh": {"crash": -250}}),
        ),
        [
            "parties.human.responds.values.harm.dog: unknown state of harm 'dog' (valid: none, squirrel, cat)",
            "parties.human.responds.values.crsh: unknown outcome 'crsh'; did you mean 'crash'? (valid: harm, crash)",
        ],
        id="responds-values-unknown-names",
    ),
    # ---- parties: responds
    pytest.param(
        put(("parties", "human", "responds", "rejects"), ["radr"]),
        [f"parties.human.responds.rejects[0]: unknown fact 'radr'; did you mean 'radar'? (valid: {FACTS})"],
        id="responds-rejects-unknown-fact",
    ),
    pytest.param(
        put(("parties", "human", "responds", "rejects_sources"), ["radar gun"]),
        [
            "parties.human.responds.rejects_sources[0]: unknown source 'radar gun'; did you mean 'radar'? "
            "(valid: dash camera, fleet logs, radar, road-surface sensor)"
        ],
        id="responds-rejects-unknown-source",
    ),
    pytest.param(
        put(("parties", "human", "responds", "accept_min_reliability"), 1.5),
        ["parties.human.responds.accept_min_reliability: input should be less than or equal to 1"],
        id="responds-min-reliability-above-1",
    ),
    pytest.param(
        put(("parties", "robot"), {}),
        ["parties: unknown key 'robot' (valid: agent, human)"],
        id="party-unknown",
    ),
    pytest.param(
        rename(("parties", "agent", "beliefs"), "belief"),
        ["parties.agent: unknown key 'belief'; did you mean 'beliefs'? (valid: beliefs, values)"],
        id="party-key-typo",
    ),
    # ---- the top of the file
    pytest.param(
        rename(var("crash", "strength"), "stregth"),
        [
            "world.variables.crash: unknown key 'stregth'; did you mean 'strength'? "
            "(valid: states, normal, prior, parents, table, strength, row_strength)"
        ],
        id="variable-key-typo-stregth",
    ),
    pytest.param(
        rename(("facts",), "facs"),
        [
            "unknown key 'facs'; did you mean 'facts'? (valid: crux, name, description, world, facts, parties, use, types, entities, relations)",
            # `facts` is optional, so without it the facts the parties know really are unknown
            "parties.agent.beliefs.knows[0]: unknown fact 'road_sensor' (there are none)",
            "parties.agent.beliefs.knows[1]: unknown fact 'radar' (there are none)",
            "parties.agent.beliefs.knows[2]: unknown fact 'fleet_logs' (there are none)",
            "parties.human.beliefs.knows[0]: unknown fact 'camera' (there are none)",
        ],
        id="top-key-typo",
    ),
    pytest.param(
        put(("crux",), 2),
        ["crux: unsupported format version 2: this Crux reads version 1 (`crux: 1`)"],
        id="version-2",
    ),
    pytest.param(drop(("crux",)), ["missing required key 'crux'"], id="missing-crux"),
    pytest.param(drop(("name",)), ["missing required key 'name'"], id="missing-name"),
    pytest.param(
        drop(("world", "decision")),
        [
            "world: missing required key 'decision'",
            "world.variables.action: a root variable needs a `prior` (or name it as world.decision if it is the decision)",
        ],
        id="missing-decision",
    ),
    pytest.param(
        drop(("facts", "radar", "source")), ["facts.radar: missing required key 'source'"], id="missing-source"
    ),
    pytest.param(
        drop(var("road", "states")),
        ["world.variables.road: needs `states` (a discrete variable) or `normal` (a continuous one)"],
        id="missing-states"
    ),
    pytest.param(
        put(("world", "reference"), {"harm": "ct", "road": "dry"}),
        [
            "world.reference.harm: unknown state of harm 'ct'; did you mean 'cat'? (valid: none, squirrel, cat)",
            "world.reference.road: unknown outcome 'road' (valid: harm, crash)",
        ],
        id="reference-state-and-outcome",
    ),
    pytest.param(
        chain(
            put(("parties", "human", "values"), {"harm": "unknown", "crash": {"crash": -250}}),
            put(("parties", "human", "responds", "values"), {"harm": {"cat": -300}}),
            put(
                ("parties", "human", "value_signs"),
                {"worse": ["harm=cat", "harm", "harm=none", "crash=crash", "harm=dog"], "better": ["harm=cat", "wind=calm"]},
            ),
        ),
        [
            "parties.human.value_signs.worse[1]: 'harm': write OUTCOME=state, e.g. harm=cat",
            "parties.human.value_signs.worse[2]: harm=none is the reference state (utility 0): it is neither worse nor better",
            "parties.human.value_signs.worse[3]: the human's values of crash are stated: their signs follow from the numbers; "
            "remove crash=crash",
            "parties.human.value_signs.worse[4]: unknown state of harm 'dog' (valid: none, squirrel, cat)",
            "parties.human.value_signs.better[0]: harm=cat is listed as both worse and better: keep one",
            "parties.human.value_signs.better[1]: unknown outcome 'wind' (valid: harm, crash)",
        ],
        id="value-signs",
    ),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("mutate", "messages"), BROKEN)
def test_broken_rule_is_reported(example: dict, write, mutate: Mutation, messages: list[str], suffix: str) -> None:
    mutate(example)
    expect_problems(write(example, "broken" + suffix), *messages)


# -- what the rules accept -----------------------------------------------------------------

ACCEPTED = [
    pytest.param(
        chain(
            rename(var("animal_hit", "table", "dry, brake"), "  dry ,brake"),
            rename(var("crash", "table", "wet, swerve, car"), "wet,swerve,   car "),
        ),
        id="row-keys-match-after-trimming",
    ),
    pytest.param(put(var("road", "prior"), [0.6, 0.4 + 5e-7]), id="prior-sum-within-1e-6-above"),
    pytest.param(put(var("road", "prior"), [0.6, 0.4 - 5e-7]), id="prior-sum-within-1e-6-below"),
    pytest.param(put(var("animal_hit", "table", "dry, brake"), [0.85, 0.15 + 9e-7]), id="row-sum-within-1e-6"),
    pytest.param(put(var("road", "prior"), [1, 0]), id="prior-integers"),
    pytest.param(put(("facts", "radar", "reliability"), 0), id="reliability-0"),
    pytest.param(put(("facts", "radar", "reliability"), 1), id="reliability-1"),
    pytest.param(drop(("facts", "radar", "reliability")), id="reliability-default"),
    pytest.param(drop(var("crash", "strength")), id="strength-default"),
    pytest.param(
        put(("facts", "fleet_logs", "counts"), {"variable": "road", "counts": {"wet": 3}}), id="counts-for-a-root-prior"
    ),
    pytest.param(
        put(("parties", "agent", "beliefs", "priors"), {"crash": {" wet , swerve , car ": [0.5, 0.5]}}),
        id="party-prior-some-rows-trimmed",
    ),
    pytest.param(
        chain(
            put(var("oncoming", "states"), ["yes", "no"]),
            rename_state_in_keys("crash", 2, {"clear": "yes", "car": "no"}),
            put(("facts", "radar", "observe"), {"oncoming": "no"}),
            put(("facts", "fleet_logs", "counts", "given", "oncoming"), "no"),
        ),
        id="string-yes-no-states",
    ),
    pytest.param(put(("parties", "human", "values"), "unknown"), id="human-values-unknown"),
    pytest.param(
        chain(
            put(("parties", "human", "values"), "unknown"),
            put(("parties", "human", "responds", "values"), {"harm": {"cat": -300}, "crash": {"crash": -250}}),
        ),
        id="human-values-unknown-with-answers",
    ),
    pytest.param(
        chain(
            put(("parties", "human", "values", "harm"), "unknown"),
            put(("parties", "human", "responds", "values"), {"harm": {"squirrel": -10, "cat": -300}}),
        ),
        id="human-values-partly-unknown",
    ),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("mutate", ACCEPTED)
def test_valid_variant_loads(example: dict, write, mutate: Mutation, suffix: str) -> None:
    mutate(example)
    scenario = load_scenario(write(example, "ok" + suffix))
    assert len(scenario.world.variables) == 7


def test_default_strength_is_10(example: dict, write) -> None:
    drop(var("crash", "strength"))(example)
    assert load_scenario(write(example)).world.variables["crash"].strength == 10


# -- YAML written by hand: booleans, quoting, duplicate keys, syntax -----------------------

MINI = """\
crux: 1
name: mini
world:
  variables:
    light:
      states: [{s1}, {s2}]
      prior: [0.5, 0.5]
    go:
      states: [stop, drive]
    crash:
      states: [safe, crash]
      parents: [light]
      table:
        {k1}: [0.9, 0.1]
        {k2}: [0.2, 0.8]
  decision: go
  outcomes: [crash]
"""


def mini(s1: str, s2: str, k1: str | None = None, k2: str | None = None) -> str:
    return MINI.format(s1=s1, s2=s2, k1=s1 if k1 is None else k1, k2=s2 if k2 is None else k2)


def test_mini_scenario_is_valid(write) -> None:
    scenario = load_scenario(write(mini("green", "red")))
    assert scenario.world.variables["light"].states == ["green", "red"]


@pytest.mark.parametrize(
    ("states", "messages"),
    [
        (
            ("yes", "no"),
            [
                f'world.variables.light.states[0]: read as the boolean true, {QUOTE_HINT} ("yes")',
                f'world.variables.light.states[1]: read as the boolean false, {QUOTE_HINT} ("no")',
            ],
        ),
        (
            ("True", "FALSE"),
            [
                f'world.variables.light.states[0]: read as the boolean true, {QUOTE_HINT} ("True")',
                f'world.variables.light.states[1]: read as the boolean false, {QUOTE_HINT} ("FALSE")',
            ],
        ),
        (
            ("Yes", "red"),
            [f'world.variables.light.states[0]: read as the boolean true, {QUOTE_HINT} ("Yes")'],
        ),
    ],
    ids=["yes-no", "true-false", "Yes"],
)
def test_bare_yaml_booleans_as_states_are_rejected(write, states: tuple[str, str], messages: list[str]) -> None:
    expect_problems(write(mini(*states, k1=f'"{states[0]}"', k2=f'"{states[1]}"')), *messages)


@pytest.mark.parametrize(
    ("k1", "k2", "message"),
    [
        ("yes", '"no"', f'world.variables.crash.table: key read as the boolean true, {QUOTE_HINT} ("yes")'),
        ('"yes"', "no", f'world.variables.crash.table: key read as the boolean false, {QUOTE_HINT} ("no")'),
    ],
    ids=["bare-yes", "bare-no"],
)
def test_bare_yaml_boolean_as_single_parent_row_key_is_rejected(write, k1: str, k2: str, message: str) -> None:
    expect_problems(write(mini('"yes"', '"no"', k1, k2)), message)


@pytest.mark.parametrize(("s1", "s2"), [('"yes"', '"no"'), ("'yes'", "'no'"), ('"on"', '"off"'), ('"true"', "'false'")])
def test_quoted_yaml_booleans_are_names(write, s1: str, s2: str) -> None:
    scenario = load_scenario(write(mini(s1, s2)))
    names = [s1.strip("'\""), s2.strip("'\"")]
    assert scenario.world.variables["light"].states == names
    assert list(scenario.world.variables["crash"].table) == names


def test_bare_yes_inside_a_multi_parent_row_key_is_a_string(write, example_path: Path) -> None:
    """``dry, yes: [...]`` is one plain scalar, the string "dry, yes": no quoting needed."""
    text = (
        example_path.read_text(encoding="utf-8")
        .replace("states: [clear, car]", 'states: ["yes", "no"]')
        .replace(", clear:", ", yes:")
        .replace(", car:", ", no:")
        .replace("{oncoming: car}", '{oncoming: "no"}')
        .replace("oncoming: car}", 'oncoming: "no"}')
    )
    scenario = load_scenario(write(text))
    assert "wet, swerve, no" in scenario.world.variables["crash"].table
    assert scenario.facts["fleet_logs"].counts.given == {"road": "wet", "action": "swerve", "oncoming": "no"}


def test_duplicate_top_level_key(write) -> None:
    expect_problems(
        write("crux: 1\nname: a\nname: b\n"), "line 3, column 1: the key 'name' is given twice in one mapping: give each key once"
    )


def test_duplicate_row_key_names_its_line(write, example_path: Path) -> None:
    text = example_path.read_text(encoding="utf-8").replace(
        "        wet, continue:  [0.10, 0.90]\n",
        "        wet, continue:  [0.10, 0.90]\n        wet, continue:  [0.20, 0.80]\n",
    )
    line = text.splitlines().index("        wet, continue:  [0.20, 0.80]") + 1
    expect_problems(write(text), f"line {line}, column 9: the key 'wet, continue' is given twice in one mapping: give each key once")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("crux: 1\nname: mini\nworld:\n  variables: {road: [dry, wet}\n", "line 4, column 30: expected ',' or ']', but got '}'"),
        ("crux: 1\nname: mini\n  world: 3\n", "line 3, column 8: mapping values are not allowed here"),
        ("crux: 1\n\tname: mini\n", "line 2, column 1: found character '\\t' that cannot start any token"),
        ("crux: 1\n---\ncrux: 1\n", "line 2, column 1: but found another document"),
        (
            "crux: !!python/object/apply:os.system ['true']\n",
            "line 1, column 7: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        ("? [a, b]\n: 1\n", "line 1, column 3: a mapping key must be a plain value"),
    ],
    ids=["unclosed-flow", "bad-indent", "tab", "two-documents", "python-tag", "list-as-key"],
)
def test_yaml_syntax_error_gives_line(write, text: str, message: str) -> None:
    expect_problems(write(text), message)


# -- the file as a whole -------------------------------------------------------------------

NOT_A_MAPPING = "a scenario file holds a mapping (crux, name, world, ...), not"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.yaml", "", f"{NOT_A_MAPPING} empty"),
        ("comment.yaml", "# nothing here\n", f"{NOT_A_MAPPING} empty"),
        ("list.yaml", "- crux: 1\n- name: x\n", f"{NOT_A_MAPPING} a list"),
        ("scalar.yaml", "hello\n", f"{NOT_A_MAPPING} a string"),
        ("list.json", "[1, 2]", f"{NOT_A_MAPPING} a list"),
        ("dup.json", '{"crux": 1, "crux": 1}', "the key 'crux' is given twice in one object: give each key once"),
        (
            "syntax.json",
            '{\n  "crux": 1,\n  "name": "x",\n}\n',
            "line 4, column 1: Expecting property name enclosed in double quotes",
        ),
        ("empty.json", "", "line 1, column 1: Expecting value"),
    ],
    ids=["empty", "comment-only", "list", "scalar", "json-list", "json-duplicate-key", "json-syntax", "json-empty"],
)
def test_file_that_is_not_a_scenario(write, name: str, text: str, message: str) -> None:
    expect_problems(write(text, name), message)


def test_json_with_the_same_content_loads_equal(example_path: Path, example: dict, write) -> None:
    from_yaml = load_scenario(example_path)
    from_json = load_scenario(write(example, "example.json"))
    assert from_json == from_yaml
    assert from_json.model_dump() == from_yaml.model_dump()


def test_yml_suffix_and_upper_case_suffix(example_path: Path, write) -> None:
    text = example_path.read_text(encoding="utf-8")
    expected = load_scenario(example_path)
    assert load_scenario(write(text, "example.yml")) == expected
    assert load_scenario(write(text, "example.YAML")) == expected


def test_unknown_suffix(tmp_path: Path, example_path: Path) -> None:
    path = tmp_path / "example.txt"
    path.write_text(example_path.read_text(encoding="utf-8"))
    with pytest.raises(CruxError) as info:
        load_scenario(path)
    assert not isinstance(info.value, ModelError)
    assert str(info.value) == f"{path}: unknown model format '.txt': use a scenario file (.yaml, .yml, .json)"


def test_no_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    path.write_text("crux: 1\n")
    with pytest.raises(CruxError, match=re.escape(f"{path}: unknown model format '(no suffix)'")):
        load_scenario(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(CruxError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: no such file"


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    with pytest.raises(CruxError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: is a directory, not a model file"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("crux: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(CruxError, match=re.escape(f"{path}: cannot read: ")):
        load_scenario(path)


# -- every problem, not the first ----------------------------------------------------------


def test_all_problems_are_reported(example: dict, write) -> None:
    put(var("road", "prior"), [0.6, 0.5])(example)
    put(("parties", "human", "beliefs", "knows"), ["camra"])(example)
    put(("facts", "radar", "reliability"), 1.5)(example)
    rename(var("crash", "strength"), "stregth")(example)  # a schema problem alongside the rule problems
    expect_problems(
        write(example),
        "world.variables.crash: unknown key 'stregth'; did you mean 'strength'? "
        "(valid: states, normal, prior, parents, table, strength, row_strength)",
        "world.variables.road.prior: sums to 1.1, not 1 (tolerance 1e-06)",
        "facts.radar.reliability: reliability 1.5 is out of range: use a probability in [0, 1]",
        f"parties.human.beliefs.knows[0]: unknown fact 'camra'; did you mean 'camera'? (valid: {FACTS})",
    )


def test_one_broken_variable_does_not_hide_others_or_cascade(example: dict, write) -> None:
    """A variable that fails the schema is reported once; references to it are not called unknown."""
    put(var("road", "states"), "dry")(example)  # not a list: road is broken
    put(var("animal", "prior"), [0.7, 0.4])(example)  # a separate problem, still found
    expect_problems(
        write(example),
        "world.variables.road.states: input should be a valid list, got 'dry'",
        "world.variables.animal.prior: sums to 1.1, not 1 (tolerance 1e-06)",
    )


# -- the functions beneath load_scenario ---------------------------------------------------


def test_validate_data(example: dict) -> None:
    scenario, problems = validate_data(example)
    assert problems == [] and isinstance(scenario, Scenario)
    assert validate_data([example]) == (
        None,
        [Problem((), "a scenario file holds a mapping (crux, name, world, ...), not a list")],
    )
    put(var("road", "states"), "dry")(example)
    scenario, problems = validate_data(example)
    assert scenario is None
    assert problems == [Problem(var("road", "states"), "input should be a valid list, got 'dry'")]


def test_read_data(example_path: Path, example: dict) -> None:
    assert read_data(example_path) == example
    assert read_data(str(example_path)) == example


# -- crux validate ---------------------------------------------------------------------------


def test_cli_validate_ok(example_path: Path) -> None:
    result = run_cli("validate", str(example_path))
    assert result.exit_code == 0
    assert result.stdout == "ok: 7 variables, 4 facts\n"
    assert result.stderr == ""


def test_cli_validate_ok_json(example_path: Path) -> None:
    result = run_cli("validate", "--json", str(example_path))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True, "file": str(example_path), "variables": 7, "facts": 4, "problems": []
    }
    assert result.stderr == ""


@pytest.fixture
def two_problem_file(example: dict, write) -> Path:
    put(var("road", "prior"), [0.6, 0.5])(example)
    put(("parties", "human", "beliefs", "knows"), ["camra"])(example)
    return write(example, "bad.yaml")


TWO_PROBLEMS = [
    ("world.variables.road.prior", "sums to 1.1, not 1 (tolerance 1e-06)"),
    ("parties.human.beliefs.knows[0]", f"unknown fact 'camra'; did you mean 'camera'? (valid: {FACTS})"),
]


def test_cli_validate_bad_file(two_problem_file: Path) -> None:
    result = run_cli("validate", str(two_problem_file))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"{two_problem_file}: {p}: {m}" for p, m in TWO_PROBLEMS]


def test_cli_validate_bad_file_json(two_problem_file: Path) -> None:
    result = run_cli("validate", "--json", str(two_problem_file))
    assert result.exit_code == 1
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["file"] == str(two_problem_file)
    assert [{k: p[k] for k in ("file", "path", "message")} for p in report["problems"]] == [
        {"file": str(two_problem_file), "path": p, "message": m} for p, m in TWO_PROBLEMS
    ]
    assert [p["msg"] for p in report["problems"]] == [m for _, m in TWO_PROBLEMS]  # the error object of every --json


@pytest.mark.parametrize(("mutate", "messages"), BROKEN)
def test_cli_validate_reports_every_broken_rule(example: dict, write, mutate: Mutation, messages: list[str]) -> None:
    mutate(example)
    path = write(example, "broken.yaml")
    result = run_cli("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"{path}: {m}" for m in messages]


@pytest.mark.parametrize(
    ("name", "content", "stderr"),
    [
        ("nowhere.yaml", None, "error: {path}: no such file"),
        ("model.txt", "crux: 1\n", "error: {path}: unknown model format '.txt': use a scenario file (.yaml, .yml, .json) "
         "or a Bayesian network (.bif, .bif.gz)"),
        ("syntax.yaml", "crux: 1\nname: [x\n", "{path}: line 3, column 1: expected ',' or ']', but got '<stream end>'"),
        ("empty.yaml", "", "{path}: " + NOT_A_MAPPING + " empty"),
    ],
    ids=["missing", "suffix", "yaml-syntax", "empty"],
)
def test_cli_validate_unreadable_file(tmp_path: Path, name: str, content: str | None, stderr: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = run_cli("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == stderr.format(path=path) + "\n"


# -- once bugs, now fixed: each test says what must happen ------------------------------------------


def test_sum_just_outside_tolerance_shows_the_difference(example: dict, write) -> None:
    put(var("road", "prior"), [0.6, 0.400003])(example)
    [line] = problem_lines(write(example))
    assert "sums to 1, not 1" not in line
    shown = float(re.search(r"sums to ([0-9.e+-]+), not 1", line).group(1))
    assert shown != 1.0 and abs(shown - 1.000003) < 1e-9


def test_bare_on_off_hint_quotes_what_was_written(write) -> None:
    expect_problems(
        write(mini("on", "off", '"on"', '"off"')),
        f'world.variables.light.states[0]: read as the boolean true, {QUOTE_HINT} ("on")',
        f'world.variables.light.states[1]: read as the boolean false, {QUOTE_HINT} ("off")',
    )


def test_null_state_message_does_not_say_None(write) -> None:
    first = problem_lines(write(mini("~", "red", '"x"', "red")))[0]
    assert "world.variables.light.states[0]: " in first
    assert "None" not in first and "null" in first


def test_date_state_says_to_quote_it(write) -> None:
    [line] = problem_lines(write(mini("2024-01-01", "red", '"2024-01-01"', "red")))
    assert "world.variables.light.states[0]: " in line
    assert "quote" in line and "datetime" not in line


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (drop(("world",)), "missing required key 'world'"),
        (put(("world",), None), "world: input should be a valid dictionary or instance of World, got None"),
        (put(("world", "variables"), 5), "world.variables: input should be a valid dictionary, got 5"),
        (
            put(("world", "variables"), {}),
            "world.variables: dictionary should have at least 1 item after validation, not 0",
        ),
        (drop(("world", "outcomes")), "world: missing required key 'outcomes'"),
    ],
    ids=["missing", "null", "variables-not-a-mapping", "no-variables", "outcomes-missing"],
)
def test_missing_world_is_one_problem(example: dict, write, mutate: Mutation, message: str) -> None:
    mutate(example)
    expect_problems(write(example), message)


def test_boolean_variable_name_path(write) -> None:
    text = mini("green", "red").replace("  decision: go", "    yes:\n      prior: [0.5, 0.5]\n  decision: go")
    lines = problem_lines(write(text))
    assert lines[0].endswith(f'world.variables: key read as the boolean true, {QUOTE_HINT} ("yes")')
    assert not any("world.variables[1]" in line for line in lines)


def test_top_level_int_article(write) -> None:
    expect_problems(write("5\n"), f"{NOT_A_MAPPING} an int")


def test_cli_json_for_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    result = run_cli("validate", "--json", str(path))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"]


def test_validate_data_returns_none_for_an_invalid_scenario(example: dict) -> None:
    put(var("road", "prior"), [0.6, 0.5])(example)
    scenario, problems = validate_data(example)
    assert problems == [Problem(var("road", "prior"), "sums to 1.1, not 1 (tolerance 1e-06)")]
    assert scenario is None
