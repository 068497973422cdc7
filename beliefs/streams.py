"""Streams of observations drawn from an entity type's own rows: what an entity of that type would
show a watcher, step by step (for the tests and ``python -m bench.watch``).

At step 0 every attribute is drawn from its mechanism (its ``prior`` or its ``table`` row); at a
later step an attribute with ``next`` is drawn from ``next`` (its parents read at the step
before), and one without is drawn again from its mechanism when it changes over time (it reads
an attribute that does), else kept.  Parents are drawn before their children.  A parent that is
not the entity's own (``REL.attr`` or a world variable) takes its state from ``context``; a fold
over a relation defaults to its first state (``no`` for ``any``, ``0`` for ``count``: nothing
related is active), as for an entity with no such relation in a scene.

Each attribute that changes over time is observed at each step with probability ``observe``;
one that does not is observed once, at step 0.  The last step always shows at least one
observation, so that the stream unrolls the scene as far as it was drawn.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from crux.beliefs.revision import Observation
from crux.worldmodel.rows import join_key
from crux.worldmodel.spec import EntityType, Mechanism


def sample_stream(
    spec: EntityType,
    entity: str,
    steps: int,
    seed: int,
    *,
    attributes: Sequence[str] | None = None,
    observe: float = 1.0,
    context: Mapping[str, str] | None = None,
) -> list[Observation]:
    """Observations of ``entity``, of type ``spec``, at steps 0 .. ``steps`` (see the module's
    docstring); ``attributes`` limits what is observed (default: every attribute).  The same
    ``seed`` gives the same stream."""
    if steps < 0:
        raise ValueError("steps must be 0 or more")
    rng = random.Random(seed)
    shown = list(spec.attributes) if attributes is None else [a for a in attributes if a in spec.attributes]
    varying = _varying(spec)
    order = _order(spec, shown)
    state: dict[str, str] = {}
    out: list[Observation] = []
    for t in range(steps + 1):
        before = dict(state)
        for attr in order:
            a = spec.attributes[attr]
            if a.states is None:
                raise ValueError(f"{attr} is continuous: streams are drawn for discrete attributes")
            if t == 0 or (attr in varying and a.next is None):
                state[attr] = _draw(rng, a, a, a.states, state, context or {})
            elif a.next is not None:
                state[attr] = _draw(rng, a.next, a, a.states, before, context or {})
        seen = [
            attr for attr in shown
            if (attr in varying and rng.random() < observe) or (attr not in varying and t == 0)
        ]
        if t == steps and not seen and shown:
            seen = [next((a for a in shown if a in varying), shown[0])]
        out += [Observation(t, entity, attr, state[attr]) for attr in seen]
    return out


def _draw(rng: random.Random, mechanism: Mechanism, attr, states: Sequence[str], values: Mapping[str, str], context: Mapping[str, str]) -> str:
    """A state drawn from a mechanism's prior, or from the row its parents' states select."""
    if not mechanism.parents:
        row = mechanism.prior
    else:
        key = join_key([_parent(ref, mechanism, values, context) for ref in mechanism.parents])
        row = (mechanism.table or {}).get(key)
        if row is None:
            raise ValueError(f"no row {key!r} in the table of {attr}")
    return rng.choices(list(states), weights=list(row or ()))[0]


def _parent(ref: str, mechanism: Mechanism, values: Mapping[str, str], context: Mapping[str, str]) -> str:
    head, _, tail = ref.partition(".")
    if head == "self":
        return values[tail]
    if ref in context:
        return context[ref]
    if mechanism.aggregate == "any":
        return "no"
    if mechanism.aggregate == "count":
        return "0"
    raise ValueError(f"give the state of {ref} in context: it is not the entity's own attribute")


def _varying(spec: EntityType) -> set[str]:
    """The attributes that change over time: those with ``next`` and those that read one."""
    varying = {a for a, attr in spec.attributes.items() if attr.next is not None}
    changed = True
    while changed:
        changed = False
        for a, attr in spec.attributes.items():
            if a not in varying and any(p.startswith("self.") and p[5:] in varying for p in attr.parents):
                varying.add(a)
                changed = True
    return varying


def _order(spec: EntityType, shown: Sequence[str]) -> list[str]:
    """The attributes to draw: those shown and their own parents (within a step and through
    ``next``), each after its parents within a step."""
    done: list[str] = []

    def own(parents: Sequence[str]) -> list[str]:
        return [p[5:] for p in parents if p.startswith("self.") and p[5:] in spec.attributes]

    def visit(a: str, path: tuple[str, ...]) -> None:
        if a in done or a in path:
            return
        attr = spec.attributes[a]
        for p in own(attr.parents):
            visit(p, (*path, a))
        done.append(a)
        for p in own(attr.next.parents if attr.next is not None else ()):
            visit(p, ())

    for a in shown:
        visit(a, ())
    return done
