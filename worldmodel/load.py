"""Load a scenario from YAML or JSON, reporting every problem as ``FILE: path: message``."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from worldmodel.checks import View, check
from worldmodel.entities import ground
from worldmodel.errors import CruxError, ModelError, PathPart, Problem, unknown
from worldmodel.spec import STATED_TAG, UNKNOWN_TAG, Agent, Fact, Human, Scenario, Variable, YamlBoolean

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a repeated key is an error instead of silently winning.

    The pure-Python parser, not libyaml's: slower on huge scenes (about 3x), but its syntax
    errors say what was expected and what was found, and they are the same on every machine."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}: each key may appear once", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_boolean(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> YamlBoolean:
    return YamlBoolean(loader.construct_scalar(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:bool", _construct_boolean)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}: each key may appear once")
        out[key] = value
    return out


def read_text(path: str | Path, kind: str, encoding: str = "utf-8") -> str:
    """A text file's content; a missing, unreadable or undecodable file is one clear error."""
    path = Path(path)
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise CruxError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CruxError(f"{path}: is a directory, not {kind}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CruxError(f"{path}: cannot read: {err}") from None


def unknown_format(path: str | Path, more: str = "") -> CruxError:
    """The error for a model file whose name ends in no known way (``more``: the other formats the
    command takes, e.g. " or a Bayesian network (.bif, .bif.gz)")."""
    suffix = Path(path).suffix or "(no suffix)"
    return CruxError(f"{path}: unknown model format {suffix!r}: use a scenario file ({', '.join(SCENARIO_SUFFIXES)}){more}")


def read_data(path: str | Path) -> Any:
    """The parsed content of a YAML or JSON file (syntax errors as one :class:`ModelError`)."""
    path = Path(path)
    file = str(path)
    if path.suffix.lower() not in SCENARIO_SUFFIXES:
        raise unknown_format(path)
    text = read_text(path, "a model file")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as err:
            raise ModelError(file, [Problem((), f"line {err.lineno}, column {err.colno}: {err.msg}")]) from None
        except ValueError as err:
            raise ModelError(file, [Problem((), str(err))]) from None
    loader = _UniqueKeyLoader(text)  # a SafeLoader: no arbitrary objects
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ModelError(file, [Problem((), f"{where}{err.problem or err.context}")]) from None
    except yaml.YAMLError as err:
        raise ModelError(file, [Problem((), f"not valid YAML: {err}")]) from None
    finally:
        loader.dispose()


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
    problems = check(View.of(scenario))
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
            for name, model in (("agent", Agent), ("human", Human))
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
        return Problem(tuple(loc[:-1]), f"key {_message(e)}")
    if kind == "missing":
        return Problem(tuple(loc[:-1]), f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        return Problem(tuple(loc[:-1]), unknown("key", loc[-1], fields))
    if tuple(loc) == ("crux",):
        return Problem(("crux",), f"unsupported format version {e.get('input')!r}: this Crux reads version 1 (`crux: 1`)")
    return Problem(tuple(loc), _message(e))


def _message(e: dict) -> str:
    if e["type"] == "value_error":
        return str(e["ctx"]["error"])
    message = e["msg"][0].lower() + e["msg"][1:]
    given = e.get("input")
    if e["type"] in ("float_type", "string_type", "list_type", "dict_type", "model_type", "int_type", "bool_type", "values_shape"):
        message += f", got {given!r}" if not isinstance(given, (dict, list)) else f", got a {type(given).__name__}"
    return message


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
