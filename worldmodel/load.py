"""Load a scenario from YAML or JSON, reporting every problem as ``FILE: path: message``."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from crux.worldmodel.checks import View, check
from crux.worldmodel.entities import ground, own_type_problems
from crux.worldmodel.errors import CruxError, ModelError, PathPart, Problem, clip, short, unknown
from crux.worldmodel.jsontext import loads as strict_json
from crux.worldmodel.limits import limit, note, over
from crux.worldmodel.spec import STATED_TAG, UNKNOWN_TAG, Agent, Fact, Human, Scenario, Variable, YamlBoolean

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a repeated key is an error instead of silently winning.

    The pure-Python parser, not libyaml's: slower on huge scenes (about 3x), but its syntax
    errors say what was expected and what was found, and they are the same on every machine.

    Two guards for hostile files: nesting deeper than ``MAX_NESTING`` is refused while the file
    is composed (before Python's recursion limit is reached), and a scalar that a constructor
    cannot turn into its value (``2001-13-45``, an integer of 5,000 digits) is a YAML error at
    its line instead of a bare ``ValueError``."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth, self._max_depth = 0, limit("MAX_NESTING")

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > self._max_depth and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {self._max_depth} levels deep {note('MAX_NESTING')}", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):  # type: ignore[override]
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as err:
            text = short(node.value) if isinstance(node, yaml.ScalarNode) else f"this {node.id}"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {text} as {node.tag.rsplit(':', 1)[-1]}: {_first_line(err)}", node.start_mark
            ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).split("\n", 1)[0]
    return text.split(";", 1)[0] if "integer string conversion" in text else text


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
                None, None, f"the key {key!r} is given twice in one mapping: give each key once", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _construct_boolean(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> YamlBoolean:
    return YamlBoolean(loader.construct_scalar(node))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:bool", _construct_boolean)


def read_bytes(path: str | Path, kind: str, *, limit_name: str | None = "MAX_FILE_BYTES", regular_only: bool = False) -> bytes:
    """A file's bytes; a missing, unreadable or too large file is one clear error.

    ``limit_name`` names the limit of :mod:`worldmodel.limits` on its size (checked from the
    file's size before reading, and while reading, for pipes and files that grow); None reads
    any size.  ``regular_only`` refuses anything but a regular file (a named pipe, a device)
    without blocking on it: the file is opened non-blocking and checked before it is read."""
    path = Path(path)
    flags = os.O_RDONLY | (getattr(os, "O_NONBLOCK", 0) if regular_only else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise CruxError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CruxError(f"{path}: is a directory, not {kind}") from None
    except OSError as err:
        raise CruxError(f"{path}: cannot read: {err}") from None
    info = os.fstat(fd)
    try:
        if stat.S_ISDIR(info.st_mode):
            raise CruxError(f"{path}: is a directory, not {kind}")
        if regular_only and not stat.S_ISREG(info.st_mode):
            raise CruxError(f"{path}: is not a regular file (a pipe, a device or a socket), not {kind}")
        cap = limit(limit_name) if limit_name else None
        if cap is not None and stat.S_ISREG(info.st_mode) and info.st_size > cap:
            raise CruxError(f"{path}: is {info.st_size:,} bytes, {over(limit_name)}")
    except CruxError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as f:
        chunks, total = [], 0
        try:
            while chunk := f.read(1 << 20):
                total += len(chunk)
                if cap is not None and total > cap:
                    raise CruxError(f"{path}: is more than {cap:,} bytes, {over(limit_name)}")
                chunks.append(chunk)
        except OSError as err:
            raise CruxError(f"{path}: cannot read: {err}") from None
    return b"".join(chunks)


def read_text(path: str | Path, kind: str, encoding: str = "utf-8", *, limit_name: str | None = None, regular_only: bool = False) -> str:
    """A text file's content (newlines as ``\\n``); a missing, unreadable or undecodable file is one
    clear error.  ``limit_name`` and ``regular_only`` as for :func:`read_bytes` (no size limit
    unless one is named: this also reads data files)."""
    raw = read_bytes(path, kind, limit_name=limit_name, regular_only=regular_only)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise CruxError(f"{path}: cannot read: {err}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def unknown_format(path: str | Path, more: str = "") -> CruxError:
    """The error for a model file whose name ends in no known way (``more``: the other formats the
    command takes, e.g. " or a Bayesian network (.bif, .bif.gz)")."""
    suffix = Path(path).suffix or "(no suffix)"
    return CruxError(f"{path}: unknown model format {suffix!r}: use a scenario file ({', '.join(SCENARIO_SUFFIXES)}){more}")


def read_data(path: str | Path, *, regular_only: bool = False) -> Any:
    """The parsed content of a YAML or JSON file (syntax errors as one :class:`ModelError`).

    The file is at most ``MAX_FILE_BYTES``; its data at most ``MAX_NESTING`` levels deep and
    ``MAX_VALUES`` values once YAML aliases are expanded, never refers to itself, and holds only
    valid Unicode text.  ``regular_only``: refuse anything but a regular file (for ``use``)."""
    path = Path(path)
    file = str(path)
    if path.suffix.lower() not in SCENARIO_SUFFIXES:
        raise unknown_format(path)
    text = read_text(path, "a model file", limit_name="MAX_FILE_BYTES", regular_only=regular_only)
    if path.suffix.lower() == ".json":
        try:
            data = strict_json(text, finite=False)  # NaN and Infinity are refused where they stand, by the checks
        except json.JSONDecodeError as err:
            raise ModelError(file, [Problem((), f"line {err.lineno}, column {err.colno}: {err.msg}")]) from None
        except RecursionError:
            raise ModelError(file, [Problem((), f"nested too deeply for the JSON parser: at most {limit('MAX_NESTING')} levels are read {note('MAX_NESTING')}")]) from None
        except ValueError as err:
            raise ModelError(file, [Problem((), _first_line(err))]) from None
    else:
        loader = None
        try:
            loader = _UniqueKeyLoader(text)  # a SafeLoader: no arbitrary objects; reads the text's first characters
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ModelError(file, [Problem((), f"{where}{err.problem or err.context}")]) from None
        except yaml.YAMLError as err:
            raise ModelError(file, [Problem((), f"not valid YAML: {err}")]) from None
        finally:
            if loader is not None:
                loader.dispose()
    problem = _shape_problem(data)
    if problem is not None:
        raise ModelError(file, [problem])
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _shape_problem(data: Any) -> Problem | None:
    """What makes parsed data too large to handle, or None: nesting deeper than ``MAX_NESTING``,
    more than ``MAX_VALUES`` values with YAML aliases expanded (a shared part is walked once and
    counted each time it is used), data that contains itself, or text with unpaired surrogates
    (``"\\ud800"``; no terminal or file can show it).  Walked without recursion."""
    max_depth, max_values = limit("MAX_NESTING"), limit("MAX_VALUES")
    sizes: dict[int, tuple[int, int]] = {}  # id of a finished container -> (values, levels)
    open_ids: set[int] = set()
    # each frame: container, its path, its children still to visit, values and levels so far
    stack: list[tuple[Any, tuple[PathPart, ...], Any, list[int]]] = []

    def enter(value: Any, path: tuple[PathPart, ...]) -> tuple[int, int] | Problem | None:
        """(values, levels) of a leaf or a container walked before; a Problem; None: walk it."""
        if isinstance(value, str):
            if not value.isascii() and (m := _SURROGATE.search(value)):
                return Problem(path, f"text with the unpaired surrogate {m.group()!r}: not valid Unicode")
            return 1, 0
        if not isinstance(value, (dict, list)):
            return 1, 0
        if id(value) in open_ids:
            return Problem(path, "contains itself (a YAML alias inside its own anchor)")
        if id(value) in sizes:
            done = sizes[id(value)]
            if len(path) + done[1] > max_depth:
                return Problem(path, f"nested more than {max_depth} levels deep (through a YAML alias) {note('MAX_NESTING')}")
            return done
        if len(path) + 1 > max_depth:
            return Problem(path, f"nested more than {max_depth} levels deep {note('MAX_NESTING')}")
        return None

    def children(value: Any, path: tuple[PathPart, ...]):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key, path
                yield item, (*path, key if isinstance(key, (str, int)) else str(key))
        else:
            for i, item in enumerate(value):
                yield item, (*path, i)

    first = enter(data, ())
    if isinstance(first, Problem):
        return first
    if first is not None:
        return None
    open_ids.add(id(data))
    stack.append((data, (), children(data, ()), [1, 1]))
    while stack:
        value, path, todo, acc = stack[-1]
        item = next(todo, _END)
        if item is _END:
            stack.pop()
            open_ids.discard(id(value))
            sizes[id(value)] = (acc[0], acc[1])
            if acc[0] > max_values:
                return Problem(path, f"holds more than {max_values:,} values once YAML aliases are expanded {note('MAX_VALUES')}")
            if stack:
                parent = stack[-1][3]
                parent[0] += acc[0]
                parent[1] = max(parent[1], acc[1] + 1)
            continue
        child, where = item
        got = enter(child, where)
        if isinstance(got, Problem):
            return got
        if got is None:
            open_ids.add(id(child))
            stack.append((child, where, children(child, where), [1, 1]))
            continue
        acc[0] += got[0]
        acc[1] = max(acc[1], got[1] + 1)
        if acc[0] > max_values:
            return Problem(path, f"holds more than {max_values:,} values once YAML aliases are expanded {note('MAX_VALUES')}")
    return None


_END = object()


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
        return Problem(tuple(loc[:-1]), f"key {schema_message(e)}")
    if kind == "missing":
        return Problem(tuple(loc[:-1]), f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        return Problem(tuple(loc[:-1]), unknown("key", loc[-1], fields))
    if tuple(loc) == ("crux",):
        return Problem(("crux",), f"unsupported format version {e.get('input')!r}: this Crux reads version 1 (`crux: 1`)")
    return Problem(tuple(loc), schema_message(e))


def schema_message(e: dict) -> str:
    """One pydantic error as a message that says the fix (the path is rendered apart)."""
    if e["type"] == "value_error":
        return str(e["ctx"]["error"])
    message = e["msg"][0].lower() + e["msg"][1:]
    given = e.get("input")
    if e["type"] in ("float_type", "string_type", "list_type", "dict_type", "model_type", "int_type", "bool_type", "values_shape"):
        message += f", got {short(given)}" if not isinstance(given, (dict, list)) else f", got a {type(given).__name__}"
    if e["type"] == "float_type" and isinstance(given, str):
        message += number_hint(given)
    return message


_YAML11_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?$")
_EXPONENT = re.compile(r"^([-+]?)([0-9]+)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)$")


def number_hint(text: str) -> str:
    """Why a text that looks like a number is not one, and what to write (or "" if it does not).

    YAML 1.1 (PyYAML) reads a number in exponent notation only with a '.' and a signed
    exponent: ``6e-1`` and ``6.0e1`` are text, ``6.0e-1`` and ``0.6`` are numbers."""
    try:
        value = float(text)
    except ValueError:
        return ""
    if not math.isfinite(value):
        return f": {short(text)} is text, and a number must be finite"
    m = _EXPONENT.match(text.strip())
    if m and not _YAML11_FLOAT.match(text.strip()):
        sign, whole, fraction, exp_sign, exp = m.groups()
        written = f"{sign}{whole}.{fraction or '0'}e{exp_sign or '+'}{exp}"
        return f": YAML reads {clip(text)} as text; write {value!r} or {clip(written)}"
    return ": it is quoted text; write the number without quotes"


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
