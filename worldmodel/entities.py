"""Ground an object-centric scene into the flat variables the oracle answers on.

Every attribute ``a`` of every entity ``e`` becomes a variable ``e.a`` (``e.a@t``
for each step when the scene is unrolled and ``a`` changes over time).  A parent
``self.x`` is the entity's own ``e.x``; ``REL.x`` is ``x`` of the entities that
``e`` reaches by relations of type ``REL`` (a networkx MultiDiGraph, one edge
key per relation type), folded by ``any`` into a chain of deterministic
variables when there can be several; any other parent is a world variable.
Only the types of entities in the scene are grounded, so the cost grows with
the scene, not with the library.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
from pydantic import TypeAdapter, ValidationError

from crux.worldmodel.errors import CruxError, PathPart, Problem, render_path, schema_message, short, shown, unknown
from crux.worldmodel.files import read_data
from crux.worldmodel.limits import limit, over
from crux.worldmodel.rows import all_keys, join_key, split_key
from crux.worldmodel.spec import UNKNOWN, Attribute, EntityType, Mechanism, Normal, Scenario, Variable

NO, YES = "no", "yes"
TYPES = TypeAdapter(dict[str, EntityType])


def scene_graph(scenario: Scenario) -> nx.MultiDiGraph:
    """Entities as nodes (with their type), relations as edges keyed by relation type."""
    graph = nx.MultiDiGraph()
    for name, type_name in scenario.entities.items():
        graph.add_node(name, type=type_name)
    for r in scenario.relations:
        graph.add_edge(r.source, r.target, key=r.type)
    return graph


def var_name(entity: str, attribute: str, step: int | None) -> str:
    return f"{entity}.{attribute}" if step is None else f"{entity}.{attribute}@{step}"


@dataclass
class Grounding:
    """The result of grounding: the flat scenario, and where each variable came from."""

    scenario: Scenario
    origin: dict[str, tuple[PathPart, ...]] = field(default_factory=dict)
    """Grounded variable -> the path of the attribute (or aggregate) it comes from."""
    steps: int | None = None
    series: dict[str, list[str]] = field(default_factory=dict)
    """For an unrolled scene: each time-varying ``e.a`` and its per-step variables."""


def library_path(base_dir: Path, ref: str) -> Path | str:
    """The real path of a ``use`` file, or why it is refused (a message).

    A scene reads library files in its own folder or below it, nowhere else: the path is made
    real (every link followed) and must lie inside the real folder of the scenario, so neither
    an absolute path, nor ``..``, nor a link leads out of it.  Nothing outside is opened, so no
    error can show what an outside file holds."""
    if not ref.strip() or "\x00" in ref:
        return f"{short(ref)}: give the path of a library file, relative to this file"
    if os.path.isabs(ref):
        return f"{short(ref)}: is an absolute path: give a path relative to this file, inside its folder"
    try:
        base = os.path.realpath(base_dir)
        real = os.path.realpath(os.path.join(base, ref))
    except (OSError, ValueError) as err:
        return f"{short(ref)}: cannot resolve the path: {err}"
    if os.path.commonpath([base, real]) != base:
        return f"{short(ref)}: is outside the scenario's folder: a scene uses library files in its own folder or below it"
    return Path(real)


def library_types(scenario: Scenario, base_dir: Path) -> tuple[dict[str, EntityType], list[Problem]]:
    """Types from ``use`` files, then this file's own; a type defined twice is an error.

    ``use`` files are read from the scenario's folder or below it only (:func:`library_path`),
    and only regular files (a named pipe is refused without blocking on it)."""
    found: dict[str, EntityType] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []
    for i, ref in enumerate(scenario.use):
        path = library_path(base_dir, ref)
        if isinstance(path, str):
            problems.append(Problem(("use", i), path))
            continue
        try:
            data = read_data(path, regular_only=True)
        except CruxError as err:  # a CruxError or ModelError naming the library file
            problems.append(Problem(("use", i), str(err)))
            continue
        if not isinstance(data, Mapping) or not isinstance(data.get("types"), Mapping):
            problems.append(Problem(("use", i), f"{ref}: a library file holds `types: {{...}}`"))
            continue
        try:
            types = TYPES.validate_python(data["types"])
        except ValidationError as err:
            for e in err.errors(include_url=False):
                inner = ".".join(str(p) for p in e["loc"])
                problems.append(Problem(("use", i), f"{ref}: types.{inner}: {schema_message(e)}"))
            continue
        for name, spec in types.items():
            if name in found:
                problems.append(Problem(("use", i), f"{ref}: type {name!r} is already defined in {where[name]}"))
            for sub, x in _non_finite(spec.model_dump(exclude_defaults=True)):
                problems.append(Problem(("use", i), f"{ref}: {render_path(('types', name, *sub))}: {x} is not a finite number"))
            found[name], where[name] = spec, ref
    for name, spec in scenario.types.items():
        if name in found:
            problems.append(Problem(("types", name), f"type {name!r} is already defined in {where[name]}"))
        found[name] = spec
    return found, problems + own_type_problems(scenario)


def own_type_problems(scenario: Scenario) -> list[Problem]:
    """The non-finite numbers of the types this file defines, grounded or not."""
    return [
        Problem(("types", name, *sub), f"{x} is not a finite number")
        for name, spec in scenario.types.items()
        for sub, x in _non_finite(spec.model_dump(exclude_defaults=True))
    ]


def _non_finite(value: object, path: tuple[PathPart, ...] = ()) -> list[tuple[tuple[PathPart, ...], float]]:
    """Every non-finite number in a type, with its path: a type's numbers are checked whether or
    not the scene grounds it (a ``next`` is grounded only when the scene is unrolled)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _non_finite(v, (*path, str(k)))]
    if isinstance(value, (list, tuple)):
        return [found for i, v in enumerate(value) for found in _non_finite(v, (*path, i))]
    return []


def ground(scenario: Scenario, base_dir: Path, steps: int | None = None) -> tuple[Grounding | None, list[Problem]]:
    """The flat scenario of a scene (unrolled ``steps`` steps when given)."""
    if not scenario.entities:
        return Grounding(scenario), []
    types, problems = library_types(scenario, base_dir)
    world = dict(scenario.world.variables)
    for entity, type_name in scenario.entities.items():
        if type_name not in types:
            problems.append(Problem(("entities", entity), unknown("type", type_name, types)))
        if "." in entity or "@" in entity:
            problems.append(Problem(("entities", entity), "an entity name cannot contain '.' or '@'"))
    for i, r in enumerate(scenario.relations):
        for end in (r.source, r.target):
            if end not in scenario.entities:
                problems.append(Problem(("relations", i), unknown("entity", end, scenario.entities)))
    if problems:
        return None, problems
    used = {scenario.entities[e] for e in scenario.entities}
    varying = _time_varying({t: types[t] for t in used}) if steps is not None else set()
    problems = _scene_size(scenario, types, varying, steps)
    if problems:
        return None, problems
    builder = _Builder(scenario, types, world, varying, steps)
    try:
        for entity, type_name in scenario.entities.items():
            for attr, spec in types[type_name].attributes.items():
                builder.attribute(entity, type_name, attr, spec)
    except _TooLarge as err:
        return None, [err.problem]
    problems += list(dict.fromkeys(builder.problems))  # once, not once per step
    if problems:
        return None, problems
    for name in builder.variables:
        if name in world:
            problems.append(Problem(("world", "variables", name), f"clashes with the attribute {name} of an entity"))
    if problems:
        return None, problems
    outcomes: list[str] = []
    for o in scenario.world.outcomes:
        outcomes += builder.series.get(o, [o])
    flat = scenario.world.model_copy(update={"variables": {**builder.variables, **world}, "outcomes": outcomes})
    grounded = scenario.model_copy(update={"world": flat})
    if steps is not None:
        grounded = _at_step_zero(grounded, builder.series)
    return Grounding(grounded, builder.origin, steps, builder.series), []


class _TooLarge(Exception):
    """Grounding stopped: the scene grew past a limit (the problem says which)."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def _written(mechanism: Mechanism) -> int:
    """The numbers a mechanism writes (its prior, or its table's rows): what each grounded copy holds."""
    if mechanism.table is not None:
        return sum(len(row) for row in mechanism.table.values())
    return len(mechanism.prior or ())


def _scene_size(scenario: Scenario, types: Mapping[str, EntityType], varying: set[tuple[str, str]], steps: int | None) -> list[Problem]:
    """The variables and numbers grounding would create, counted before anything is built:
    every attribute of every entity is a variable, one per step (``steps + 1``) for those that
    change over time, and each holds its own copy of the numbers of its mechanism."""
    max_variables, max_numbers = limit("MAX_SCENE_VARIABLES"), limit("MAX_MODEL_NUMBERS")
    variables = numbers = 0
    for type_name in scenario.entities.values():
        for attr, spec in types[type_name].attributes.items():
            if steps is not None and (type_name, attr) in varying:
                variables += steps + 1
                numbers += _written(spec) + steps * _written(spec.next or spec)
            else:
                variables += 1
                numbers += _written(spec)
        if variables > max_variables or numbers > max_numbers:
            break
    entities = f"{len(scenario.entities):,} entit{'y' if len(scenario.entities) == 1 else 'ies'}"
    if variables > max_variables:
        if steps is None:
            return [Problem(("entities",), f"the scene would have more than {max_variables:,} variables ({entities} x their attributes), {over('MAX_SCENE_VARIABLES')}")]
        return [
            Problem(
                ("entities",),
                f"the scene unrolled over {steps:,} steps would have more than {max_variables:,} variables ({entities} x their "
                f"attributes x steps), {over('MAX_SCENE_VARIABLES')}: unroll fewer steps (--steps, or the largest `t` of a "
                "watched stream)",
            )
        ]
    if numbers > max_numbers:
        at_steps = f" at each of {steps + 1:,} steps" if steps is not None and varying else ""
        return [
            Problem(
                ("entities",),
                f"the scene's tables would hold more than {max_numbers:,} numbers once grounded (each of {entities} holds "
                f"its own copy of its type's tables{at_steps}), {over('MAX_MODEL_NUMBERS')}",
            )
        ]
    return []


def _time_varying(types: Mapping[str, EntityType]) -> set[tuple[str, str]]:
    """(type, attribute) pairs that change over time: those with ``next`` and those that read
    one (through ``self.``; a relation may reach any type, so through any attribute of that name)."""
    varying = {(t, a) for t, spec in types.items() for a, attr in spec.attributes.items() if attr.next is not None}
    changed = True
    while changed:
        changed = False
        names = {a for _, a in varying}
        for t, spec in types.items():
            for a, attr in spec.attributes.items():
                if (t, a) in varying:
                    continue
                for parent in attr.parents:
                    head, _, tail = parent.partition(".")
                    if (head == "self" and (t, tail) in varying) or (head != "self" and tail and tail in names):
                        varying.add((t, a))
                        changed = True
                        break
    return varying


@dataclass(frozen=True)
class _Reach:
    """What one entity reaches by one relation type, for one attribute of the reached."""

    targets: list[str]
    missing: str | None
    """The first reached entity whose type lacks the attribute."""
    continuous: int
    """How many reached entities have the attribute continuous."""
    shapeless: str | None
    """The first reached entity whose attribute has neither states nor a normal law."""
    varying: bool
    """Whether the attribute of some reached entity changes over time."""


class _Builder:
    def __init__(self, scenario: Scenario, types, world, varying, steps):
        self.scenario, self.types, self.world, self.varying, self.steps = scenario, types, world, varying, steps
        self.graph = scene_graph(scenario)
        self.variables: dict[str, Variable] = {}
        self.origin: dict[str, tuple[PathPart, ...]] = {}
        self.series: dict[str, list[str]] = {}
        self.problems: list[Problem] = []
        self.max_variables = limit("MAX_SCENE_VARIABLES")
        self._reach: dict[tuple[str, str, str], _Reach] = {}
        self._labels: dict[tuple[int, int], tuple[list[str] | None, Problem | None]] = {}

    def put(self, name: str, variable: Variable, at: tuple[PathPart, ...]) -> None:
        """Add a grounded variable; past ``MAX_SCENE_VARIABLES`` (the chains that fold related
        entities come on top of the attributes counted beforehand) grounding stops."""
        if name not in self.variables and len(self.variables) >= self.max_variables:
            raise _TooLarge(
                Problem(
                    at,
                    f"grounding the scene makes more than {self.max_variables:,} variables (with the chains that fold "
                    f"related entities), {over('MAX_SCENE_VARIABLES')}",
                )
            )
        self.variables[name] = variable
        self.origin[name] = at

    def is_varying(self, entity: str, attr: str) -> bool:
        return (self.scenario.entities[entity], attr) in self.varying

    def name(self, entity: str, attr: str, step: int) -> str:
        return var_name(entity, attr, step if self.is_varying(entity, attr) else None)

    def attribute(self, entity: str, type_name: str, attr: str, spec: Attribute) -> None:
        at: tuple[PathPart, ...] = ("types", type_name, "attributes", attr)
        if not self.is_varying(entity, attr):
            self.add(entity, type_name, attr, spec, spec, None, 0, at)
            return
        names = []
        for t in range(self.steps + 1):  # type: ignore[operator]
            mechanism, read_at = (spec, t) if t == 0 or spec.next is None else (spec.next, t - 1)
            where = at if mechanism is spec else (*at, "next")
            names.append(self.add(entity, type_name, attr, spec, mechanism, t, read_at, where))
        self.series[var_name(entity, attr, None)] = names

    def add(self, entity, type_name, attr, spec: Attribute, mechanism: Mechanism, step, read_at, at) -> str:
        name = var_name(entity, attr, step)
        parents = []
        for i, ref in enumerate(mechanism.parents):
            parent = self.parent(entity, type_name, ref, mechanism, read_at, (*at, "parents", i), i)
            if parent is None:
                return name
            parents.append(parent)
        normal = None
        if spec.normal is not None:  # weights and offsets are keyed by the references in `parents`
            grounded = dict(zip(mechanism.parents, parents))
            normal = spec.normal.model_copy(
                update={
                    "weights": {grounded.get(k, k): w for k, w in spec.normal.weights.items()},
                    "offsets": {grounded.get(k, k): o for k, o in spec.normal.offsets.items()},
                }
            )
        variable = Variable(
            states=spec.states,
            normal=normal,
            prior=mechanism.prior,
            parents=parents,
            table=mechanism.table,
            strength=spec.strength,
            row_strength=mechanism.row_strength,
        )
        self.put(name, variable, at)
        return name

    def parent(self, entity, type_name, ref: str, mechanism: Mechanism, step: int, at, position: int) -> str | None:
        head, dot, attr = ref.partition(".")
        if not dot:
            if ref not in self.world:
                self.problems.append(Problem(at, unknown("parent (self.ATTR, RELATION.ATTR or a world variable)", ref, self.world)))
                return None
            return ref
        if head == "self":
            if attr not in self.types[type_name].attributes:
                self.problems.append(Problem(at, unknown(f"attribute of {type_name}", attr, self.types[type_name].attributes)))
                return None
            return self.name(entity, attr, step)
        reach = self.reach(entity, head, attr)
        targets = reach.targets
        if reach.missing is not None:
            self.problems.append(
                Problem(at, f"{entity} reaches {reach.missing} by {head}, but {reach.missing}'s type has no attribute {attr!r}")
            )
            return None
        if mechanism.aggregate is None:
            if len(targets) != 1:
                self.problems.append(
                    Problem(at, f"{entity} reaches {len(targets)} entities by {head}: give `aggregate` (any, count, sum, mean) to fold them")
                )
                return None
            return self.name(targets[0], attr, step)
        if mechanism.aggregate in ("sum", "mean"):
            if reach.continuous != len(targets):
                self.problems.append(Problem(at, f"`{mechanism.aggregate}` folds continuous attributes; {attr} is discrete: use any or count"))
                return None
            return self.total(entity, head, attr, targets, step, at, mechanism.aggregate)
        if reach.continuous:
            self.problems.append(Problem(at, f"`{mechanism.aggregate}` folds discrete attributes; {attr} is continuous: use sum or mean"))
            return None
        if reach.shapeless is not None:  # the attribute itself is reported where it is grounded
            self.problems.append(Problem(at, f"{reach.shapeless}'s {attr} has no `states` to fold"))
            return None
        if mechanism.aggregate == "count":
            labels = self.count_labels(mechanism, position, at)
            return None if labels is None else self.count_of(entity, head, attr, targets, step, at, labels)
        return self.any_of(entity, head, attr, targets, step, at)

    def reach(self, entity: str, relation: str, attr: str) -> _Reach:
        """The entities ``entity`` reaches by ``relation`` and what their ``attr`` is, worked out
        once (not once per step: a hub with many relations, unrolled, would cost steps x edges)."""
        key = (entity, relation, attr)
        if key not in self._reach:
            targets = [t for _, t, k in self.graph.out_edges(entity, keys=True) if k == relation]
            specs = [self.types[self.scenario.entities[t]].attributes.get(attr) for t in targets]
            missing = next((t for t, spec in zip(targets, specs) if spec is None), None)
            present = [(t, spec) for t, spec in zip(targets, specs) if spec is not None]
            self._reach[key] = _Reach(
                targets=targets,
                missing=missing,
                continuous=sum(1 for _, spec in present if spec.normal is not None),
                shapeless=next((t for t, spec in present if spec.normal is None and spec.states is None), None),
                varying=any(self.is_varying(t, attr) for t in targets),
            )
        return self._reach[key]

    def step_of(self, entity: str, relation: str, attr: str, step: int) -> int | None:
        """The step a fold over the reached entities is named with (None: it does not change)."""
        return step if self.reach(entity, relation, attr).varying else None

    def chain(self, base: str, targets, attr, step, at, states: list[str], first, then) -> str:
        """A chain of deterministic variables over the targets: ``first(x)`` and ``then(previous, x)``
        give the index of the state each link takes."""
        previous = None
        widest = max(len(self.types[self.scenario.entities[t]].attributes[attr].states or ()) for t in targets)
        size = len(states) * widest * len(states)
        if size > limit("MAX_TABLE_NUMBERS"):
            raise _TooLarge(
                Problem(
                    at,
                    f"folding {attr} of {len(targets):,} entities into {len(states):,} states takes tables of {size:,} numbers, "
                    f"{over('MAX_TABLE_NUMBERS')}: use fewer states (a lower \"k+\")",
                )
            )
        for k, target in enumerate(targets, 1):
            name = base if k == len(targets) else f"{base}#{k}"
            x = self.name(target, attr, step)
            own = self.types[self.scenario.entities[target]].attributes[attr].states
            if previous is None:
                parents, table = [x], {s: _hot(len(states), first(s != own[0])) for s in own}
            else:
                parents = [previous, x]
                table = {
                    join_key(key): _hot(len(states), then(states.index(key[0]), key[1] != own[0]))
                    for key in all_keys([states, own])
                }
            self.put(name, Variable(states=states, parents=parents, table=table, strength=1.0), at)
            previous = name
        return base

    def any_of(self, entity, relation, attr, targets, step, at) -> str:
        """no, yes: whether some target's ``attr`` is not in its first state."""
        base = var_name(f"{entity}.{relation}", f"{attr}.any", self.step_of(entity, relation, attr, step))
        if base in self.variables:
            return base
        if not targets:
            self.put(base, Variable(states=[NO, YES], prior=[1.0, 0.0], strength=1.0), at)
            return base
        return self.chain(base, targets, attr, step, at, [NO, YES], lambda on: int(on), lambda i, on: max(i, int(on)))

    def count_labels(self, mechanism: Mechanism, position: int, at) -> list[str] | None:
        """The count parent's states, read from the table's row keys: "0", "1", ..., "k+" (read
        once per mechanism, not once per entity and step)."""
        key = (id(mechanism), position)
        if key not in self._labels:
            before = len(self.problems)
            labels = self._count_labels(mechanism, position, at)
            self._labels[key] = (labels, self.problems[before] if len(self.problems) > before else None)
            return labels
        labels, problem = self._labels[key]
        if problem is not None:
            self.problems.append(Problem(at, problem.message))
        return labels

    def _count_labels(self, mechanism: Mechanism, position: int, at) -> list[str] | None:
        found = {split_key(key)[position] for key in (mechanism.table or {}) if len(split_key(key)) > position}
        top = [x for x in found if x.endswith("+")]
        if len(top) != 1 or not _COUNT.match(top[0]):
            self.problems.append(Problem(at, 'a `count` parent takes row keys "0", "1", ..., "k+" (k or more): give them in the table'))
            return None
        k = int(top[0][:-1])
        if k + 1 != len(found) and k > 40:  # not all there: never list a billion labels to say so
            self.problems.append(Problem(at, f"a `count` parent's row keys must be 0, 1, ..., {k}+ ({k + 1:,} in all; the table has {len(found):,})"))
            return None
        labels = [str(i) for i in range(k)] + [f"{k}+"]
        if found != set(labels):
            self.problems.append(Problem(at, f"a `count` parent's row keys must be {shown(labels)}"))
            return None
        return labels

    def count_of(self, entity, relation, attr, targets, step, at, labels) -> str:
        """How many targets have ``attr`` not in its first state, capped at the top label ("k+")."""
        base = var_name(f"{entity}.{relation}", f"{attr}.count", self.step_of(entity, relation, attr, step))
        if base in self.variables:
            return base
        if not targets:
            self.put(base, Variable(states=labels, prior=_hot(len(labels), 0), strength=1.0), at)
            return base
        cap = len(labels) - 1
        return self.chain(base, targets, attr, step, at, labels, lambda on: min(int(on), cap), lambda i, on: min(i + int(on), cap))

    def total(self, entity, relation, attr, targets, step, at, how: str) -> str:
        """The sum (or mean) of the targets' continuous ``attr``: a normal variable with no noise."""
        base = var_name(f"{entity}.{relation}", f"{attr}.{how}", self.step_of(entity, relation, attr, step))
        if base not in self.variables:
            xs = [self.name(t, attr, step) for t in targets]
            weight = 1.0 if how == "sum" or not xs else 1.0 / len(xs)
            law = Normal.model_construct(intercept=0.0, weights={x: weight for x in xs}, offsets={}, scale=0.0)
            variable = Variable.model_construct(
                states=None, normal=law, prior=None, parents=xs, table=None, strength=1.0, row_strength={}
            )
            self.put(base, variable, at)
        return base


_COUNT = re.compile(r"^[0-9]{1,9}\+$")
"""The top row key of a `count` parent: ASCII digits, then "+"."""


def _hot(n: int, i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(n)]


def _at_step_zero(scenario: Scenario, series: dict[str, list[str]]) -> Scenario:
    """Facts and priors about a time-varying attribute speak of step 0; values score every step."""
    if not series:
        return scenario

    def rename(var: str) -> str:
        return series[var][0] if var in series else var

    facts = {}
    for fid, fact in scenario.facts.items():
        update = {}
        if fact.observe:
            update["observe"] = {rename(v): s for v, s in fact.observe.items()}
        if fact.counts:
            update["counts"] = fact.counts.model_copy(
                update={"variable": rename(fact.counts.variable), "given": {rename(v): s for v, s in fact.counts.given.items()}}
            )
        facts[fid] = fact.model_copy(update=update)
    def every_step(values):
        if values == UNKNOWN:
            return values
        return {name: u for o, u in values.items() for name in series.get(o, [o])}

    parties = {}
    for party in ("agent", "human"):
        spec = getattr(scenario.parties, party)
        beliefs = spec.beliefs.model_copy(update={"priors": {rename(v): p for v, p in spec.beliefs.priors.items()}})
        update = {"beliefs": beliefs, "values": every_step(spec.values)}
        if party == "human":
            update["responds"] = spec.responds.model_copy(update={"values": every_step(spec.responds.values)})
        parties[party] = spec.model_copy(update=update)
    return scenario.model_copy(
        update={"facts": facts, "parties": scenario.parties.model_copy(update=parties)}
    )
