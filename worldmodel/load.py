"""Load a scenario from YAML or JSON, reporting every problem as ``FILE: path: message``."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from crux.worldmodel.checks import View, check
from crux.worldmodel.entities import ground, own_type_problems
from crux.worldmodel.errors import ModelError, PathPart, Problem, schema_message, unknown
from crux.worldmodel.files import read_data
from crux.worldmodel.spec import STATED_TAG, UNKNOWN_TAG, AgentSpec, Fact, HumanSpec, Scenario, Variable


def load_scenario(path: str | Path, steps: int | None = None) -> Scenario:
    """Read, validate and return a scenario (its scene grounded, unrolled ``steps`` steps when
    given); raise :class:`ModelError` listing every problem."""
    scenario, problems = validate_data(read_data(path), base_dir=Path(path).parent, steps=steps)
    if scenario is None:
        raise ModelError(str(path), problems)
    return scenario


def validate_data(data: Any, base_dir: Path | None = None, steps: int | None = None) -> tuple[Scenario | None, list[Problem]]:
    """The scenario in ``data`` (None if invalid) and every problem found in it.  A scene
    (types, entities, relations) is grounded into flat variables first; library paths in
    ``use`` are relative to ``base_dir``."""
    if not isinstance(data, Mapping):
        name = {"list": "a list", "int": "an int", "float": "a number", "str": "a string"}
        kind = "empty" if data is None else name.get(type(data).__name__, f"a {type(data).__name__}")
        return None, [Problem((), f"a scenario file holds a mapping (crux, name, world, ...), not {kind}")]
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = _schema_problems(err)
        return None, _dedupe(problems + check(_partial_view(data)))
    if scenario.entities:
        grounding, problems = ground(scenario, base_dir or Path("."), steps)
        if grounding is None:
            return None, problems
        problems = _dedupe([_origin(p, grounding.origin) for p in check(View.of(grounding.scenario))])
        return (None if problems else grounding.scenario), problems
    problems = check(View.of(scenario)) + own_type_problems(scenario)
    return (None if problems else scenario), problems


def _origin(problem: Problem, origin: dict[str, tuple[PathPart, ...]]) -> Problem:
    """A problem in a grounded variable, told where it was written: the type's attribute."""
    path = problem.path
    if len(path) >= 3 and path[:2] == ("world", "variables") and path[2] in origin:
        return Problem((*origin[str(path[2])], *path[3:]), problem.message)
    return problem


def _partial_view(data: Mapping) -> View:
    """The parts of an invalid file that pass the schema on their own."""

    def each(raw: Any, model: type[BaseModel]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            return {}
        return {str(k): _try(model, v) for k, v in raw.items()}

    world = data.get("world") if isinstance(data.get("world"), Mapping) else {}
    parties = data.get("parties") if isinstance(data.get("parties"), Mapping) else {}
    decision = world.get("decision")
    outcomes = world.get("outcomes")
    return View(
        variables=each(world.get("variables"), Variable),
        decision=decision if isinstance(decision, str) else None,
        outcomes=[o for o in outcomes if isinstance(o, str)] if isinstance(outcomes, list) else None,
        facts=each(data.get("facts"), Fact),
        parties={
            name: _try(model, parties.get(name, {}))
            for name, model in (("agent", AgentSpec), ("human", HumanSpec))
        },
        reference=_reference(world.get("reference")),
    )


def _reference(raw: Any) -> dict[str, str]:
    """world.reference where it is readable ({outcome: state} of strings), else nothing."""
    if not isinstance(raw, Mapping):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def _try(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


_UNION_TAG = re.compile(r"^(list|dict)\[.*\]$")


def _schema_problems(err: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into problems with data paths and messages that say the fix."""
    problems: list[Problem] = []
    union_paths: dict[tuple[PathPart, ...], list[tuple[int, dict]]] = {}
    for e in err.errors(include_url=False):
        loc = [p for p in e["loc"] if p not in (STATED_TAG, UNKNOWN_TAG)]  # the shape of values is not a path
        e = {**e, "loc": tuple(loc)}
        if any(isinstance(p, str) and _UNION_TAG.match(p) for p in loc):
            path = tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))
            union_paths.setdefault(path[:5], []).append((len(path), e))  # parties.X.beliefs.priors.VAR
            continue
        problems.append(_problem(loc, e))
    for errors in union_paths.values():
        deepest = max(depth for depth, _ in errors)
        kept = [e for depth, e in errors if depth == deepest]
        if deepest == 5 and all(e["type"] in ("list_type", "dict_type") for e in kept):
            path = [p for p in kept[0]["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))]
            problems.append(
                Problem(tuple(path), "give a list [p1, p2, ...] for a root variable, or {\"row key\": [p1, ...]} for a table")
            )
        else:
            for e in kept:
                problems.append(_problem([p for p in e["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))], e))
    return problems


def _problem(loc: list, e: dict) -> Problem:
    kind = e["type"]
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        return Problem(tuple(loc[:-1]), f"key {schema_message(e)}")
    if kind == "missing":
        return Problem(tuple(loc[:-1]), f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        return Problem(tuple(loc[:-1]), unknown("key", loc[-1], fields))
    if tuple(loc) == ("crux",):
        return Problem(("crux",), f"unsupported format version {e.get('input')!r}: this Crux reads version 1 (`crux: 1`)")
    return Problem(tuple(loc), schema_message(e))


def _fields_at(loc: list) -> list[str]:
    """The keys allowed at a location of the scenario schema (for 'did you mean')."""
    tp: Any = Scenario
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    """Strip Optional and Annotated wrappers."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
