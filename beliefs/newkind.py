"""The "new kind" hypothesis of world revision: a type that no library holds, learned from one
entity's own observations.

When an entity fits none of the library's small models, the comparison must have somewhere else
to go, as the "Chinese restaurant" prior of nonparametric models always keeps a table for a new
kind.  The new kind of an entity is built from the entity's own type in the scene:

- the same attributes, with the same states (so the scene's relations, facts, values and
  outcomes that read them still ground), plus any attribute the stream observes for the entity
  that its type lacks (taken from the first library type that has it);
- the dependencies among its own attributes (``self.`` parents, within a step and through
  ``next`` from one step to the next), and none on other entities or world variables: how a
  new kind interacts with the rest of the scene is not something one entity's observations
  can teach;
- every row a uniform Dirichlet(1, ..., 1): strength ``k`` over ``k`` states, each state
  ``1/k``.

Its rows learn as the observations come: the counts of the entity's complete families (an
observed attribute whose parents are observed too, as ``crux learn`` counts) are added to the
prior, shared by every step's copy of a table.  The predictive of an observation is then the
posterior mean, which for a complete family is the Dirichlet-multinomial (Polya) predictive
``(1 + n_x) / (k + n)``; where a parent is hidden, the filter averages over it with the rows
learned so far.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from crux.worldmodel.compile import Network
from crux.worldmodel.rows import all_keys, join_key
from crux.worldmodel.spec import Attribute, EntityType

Table = tuple[str, bool]
"""One table of a type: (attribute, whether it is the attribute's ``next``)."""


@dataclass(frozen=True)
class NewKind:
    """The new-kind hypothesis of one entity: its type's name and its prior rows (as data)."""

    name: str
    entity: str
    spec: dict
    """The type as a library file writes it: ``{"description", "attributes": {...}}``."""

    def table_of(self, variable: str) -> Table | None:
        """The table a grounded variable of the entity takes its numbers from (None: another
        entity's variable, or a fold over relations)."""
        head, dot, rest = variable.partition(".")
        if head != self.entity or not dot:
            return None
        attr, at, step = rest.partition("@")
        spec = self.spec["attributes"].get(attr)
        if spec is None:
            return None
        return attr, bool(at) and int(step) > 0 and "next" in spec

    def families(self, network: Network) -> list[tuple[str, tuple[str, ...], Table]]:
        """(variable, its parents, its table) for every grounded variable of the entity."""
        out = []
        for var in network.order:
            table = self.table_of(var)
            if table is not None and network.states[var]:
                out.append((var, network.parents[var], table))
        return out


def kind_name(entity: str, taken: Iterable[str]) -> str:
    """``New`` and the entity's name in CamelCase (``unknown_object`` -> ``NewUnknownObject``),
    numbered when a type of that name exists already."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", entity) if w]
    base = "New" + "".join(w[:1].upper() + w[1:] for w in words) if words else "NewKind"
    taken = set(taken)
    name, k = base, 2
    while name in taken:
        name, k = f"{base}{k}", k + 1
    return name


def new_kind(
    entity: str, own: EntityType, observed: Sequence[str], library: Mapping[str, EntityType], taken: Iterable[str] = ()
) -> NewKind | str:
    """The new kind of ``entity`` (typed ``own`` in the scene, its attributes ``observed`` in the
    stream), or why there can be none (a continuous attribute: rows are learned for discrete
    ones only)."""
    sources: dict[str, Attribute] = dict(own.attributes)
    for attr in observed:
        if attr not in sources:
            holder = next((t for t in library.values() if attr in t.attributes), None)
            if holder is not None:
                sources[attr] = holder.attributes[attr]
    attributes: dict[str, dict] = {}
    for attr, spec in sources.items():
        if spec.states is None:
            return f"{attr} is continuous: a new kind is learned over discrete attributes only"
    for attr, spec in sources.items():
        data: dict = {"states": list(spec.states or ())}
        data.update(_uniform(spec.parents, sources))
        data["strength"] = len(spec.states or ())
        if spec.next is not None:
            data["next"] = _uniform(spec.next.parents, sources)
        attributes[attr] = data
    for attr, data in attributes.items():
        states = data["states"]
        for mech in (data, data.get("next") or {}):
            if "prior" in mech:
                mech["prior"] = [1.0 / len(states)] * len(states)
            elif "table" in mech:
                mech["table"] = {
                    join_key(key): [1.0 / len(states)] * len(states)
                    for key in all_keys([attributes[p.partition(".")[2]]["states"] for p in mech["parents"]])
                }
    name = kind_name(entity, [*library, *taken])
    spec = {
        "description": f"A new kind, learned by crux watch from the observations of {entity}: no library type fit them.",
        "attributes": attributes,
    }
    return NewKind(name=name, entity=entity, spec=spec)


def _uniform(parents: Sequence[str], attributes: Mapping[str, Attribute]) -> dict:
    """A mechanism's skeleton: its ``self.`` parents among the kind's attributes (rows filled in
    once every attribute's states are known)."""
    own = [p for p in parents if p.startswith("self.") and p.partition(".")[2] in attributes]
    return {"parents": own, "table": {}} if own else {"prior": []}


# -- learning its rows --------------------------------------------------------------------------


def family_counts(
    kind: NewKind, families: Sequence[tuple[str, tuple[str, ...], Table]], network: Network, evidence: Mapping[str, int]
) -> dict[Table, torch.Tensor]:
    """The counts of the entity's complete families in ``evidence`` ({variable: state index}),
    pooled by table: every step's copy of a table adds to one count tensor (parents' axes, then
    the attribute's)."""
    counts: dict[Table, torch.Tensor] = {}
    for var, parents, table in families:
        if var not in evidence or any(p not in evidence for p in parents):
            continue
        if table not in counts:
            counts[table] = torch.zeros(network.shape(var), dtype=torch.float64)
        counts[table][(*(evidence[p] for p in parents), evidence[var])] += 1.0
    return counts


def learned_type(kind: NewKind, counts: Mapping[Table, torch.Tensor], observations: int, source: str) -> dict:
    """The kind as a library type: each row its prior plus the counts of its family,
    ``(1 + n_x) / (k + n)``, with ``row_strength`` ``k + n`` (what ``crux learn`` writes)."""
    attributes = {}
    for attr, data in kind.spec["attributes"].items():
        out = {k: v for k, v in data.items() if k != "next"}
        _learn(out, counts.get((attr, False)), data["strength"])
        if "next" in data:
            nxt = dict(data["next"])
            _learn(nxt, counts.get((attr, True)), data["strength"])
            out["next"] = nxt
        attributes[attr] = out
    return {
        "description": (
            f"A new kind, learned by crux watch from {observations} observation{'s' if observations != 1 else ''} "
            f"of {kind.entity} ({source}): uniform Dirichlet rows plus the counts of what was seen."
        ),
        "attributes": attributes,
    }


def _learn(mech: dict, counts: torch.Tensor | None, strength: float) -> None:
    """Add a table's counts to its rows (in place), as a posterior mean with its row strength."""
    if counts is None:
        return
    strengths = {}
    if "prior" in mech:
        mech["prior"], n = _mean(mech["prior"], strength, counts)
        if n:
            strengths[""] = strength + n
    else:
        rows = {}
        for i, (key, row) in enumerate(mech["table"].items()):
            rows[key], n = _mean(row, strength, counts.reshape(-1, counts.shape[-1])[i])
            if n:
                strengths[key] = strength + n
        mech["table"] = rows
    if strengths:
        mech["row_strength"] = strengths


def _mean(row: Sequence[float], strength: float, counts: torch.Tensor) -> tuple[list[float], int]:
    n = int(counts.sum())
    return [(strength * p + float(c)) / (strength + n) for p, c in zip(row, counts.tolist())], n
