"""Continual learning: observed cases add counts to the Dirichlet rows of a model.

A row ``p`` of strength ``s`` is the mean of ``Dirichlet(s * p)``; a case in which a
variable and all its parents are observed adds 1 to the count of the variable's
state in the row its parents select (conjugate updating, one family at a time;
families with a missing member are left alone — the rows are not imputed).

* :func:`update` does it online, on a compiled :class:`BeliefState`.
* :func:`learn_file` does it for a model file and a CSV of cases and writes the
  learned model: each counted row becomes ``(s * p + counts) / (s + n)`` with
  ``row_strength`` ``s + n``.  In a scene, every entity of a type shares the type's
  table (parameter tying), so the counts of all of them pool into that table; the
  deterministic chains that fold a relation (``REL.attr.any``) are never learned.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import graphlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from crux.worldmodel.compile import BeliefState, Network
from crux.worldmodel.entities import ground, library_path
from crux.worldmodel.errors import CruxError, ModelError, PathPart, unknown
from crux.worldmodel.files import plain_data, read_data, read_text, same_file, write_atomically
from crux.worldmodel.load import validate_data
from crux.worldmodel.rows import split_key
from crux.worldmodel.spec import Scenario, Variable

MISSING = -1
_STEP = re.compile(r"@(\d+)$")

Target = tuple[PathPart, ...]
"""Where a learned table lives: ``("world", "variables", V)`` or ``("types", T, "attributes", A[, "next"])``."""


# -- online -------------------------------------------------------------------------------


def update(beliefs: BeliefState, network: Network, records: Iterable[Mapping[str, str]]) -> BeliefState:
    """``beliefs`` after seeing ``records`` (each ``{variable: state}``; a variable may be missing).

    For every record and every variable observed together with all its parents, the
    concentration of the state seen in the row the parents select grows by 1.  The
    decision (no table) is never counted but may select rows as a parent.  Returns a new
    belief state; ``beliefs`` is unchanged.  Unknown variables or states raise one
    :class:`CruxError` naming every one of them, before anything is counted.
    """
    if beliefs.certain:
        raise CruxError(
            "these numbers are stated without uncertainty (a BIF network): there is no Dirichlet to add counts to"
        )
    records = list(records)
    columns = {v: j for j, v in enumerate(network.order)}
    codes = np.full((len(records), len(columns)), MISSING, dtype=np.int64)
    problems: list[str] = []
    for i, record in enumerate(records):
        for var, state in record.items():
            if state is None or state == "":
                continue
            if var not in columns:
                problems.append(f"record {i + 1}: {unknown('variable', var, network.order)}")
                continue
            states = network.states[var]
            if not states:  # a continuous variable: nothing to count
                continue
            if state not in states:
                problems.append(f"record {i + 1}: {var}: {_unknown_state(state, var, states)}")
                continue
            codes[i, columns[var]] = states.index(state)
    if problems:
        raise CruxError("\n".join(problems))
    concentration = {}
    for var, alpha in beliefs.concentration.items():
        family = [columns[p] for p in network.parents[var]] + [columns[var]]
        counts = _family_counts(codes, family, tuple(alpha.shape))
        concentration[var] = alpha + torch.as_tensor(counts, dtype=alpha.dtype) if counts.any() else alpha.clone()
    return dataclasses.replace(beliefs, concentration=concentration)


def _family_counts(codes: np.ndarray, family: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """Counts over a table's shape of the records whose family (parents, then the child) is complete."""
    seen = codes[:, family]
    complete = seen[(seen >= 0).all(axis=1)]
    if len(complete) == 0:
        return np.zeros(shape, dtype=np.int64)
    flat = np.ravel_multi_index(tuple(complete.T), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


def _unknown_state(state: str, var: str, states: Sequence[str]) -> str:
    """``unknown state 'y' of X; did you mean 'x'? (valid: ...)``."""
    head = f"unknown state {state!r}"
    return f"{head} of {var}" + unknown("state", state, states)[len(head):]


# -- from a file --------------------------------------------------------------------------


@dataclass
class RowLearned:
    """One row that data moved."""

    n: int
    counts: dict[str, int]
    strength: float
    """The row's concentration after learning (its ``row_strength``)."""
    p: list[float]


@dataclass
class LearnReport:
    """What :func:`learn_file` read and learned."""

    model: str
    data: str
    out: str
    rows: int = 0
    """Data rows read."""
    skipped: int = 0
    """Rows that completed no family (every family had a missing value)."""
    families: dict[str, int] = field(default_factory=dict)
    """Families counted per learned table (``crash``, ``Forklift.hazard``, ``Forklift.motion.next``)."""
    incomplete: dict[str, int] = field(default_factory=dict)
    """Per table: cases where the variable was seen but a parent was missing (not counted)."""
    learned: dict[str, dict[str, RowLearned]] = field(default_factory=dict)
    """Per table, per row key: the counts and the new row."""
    libraries: dict[str, str] = field(default_factory=dict)
    """Library file (as `use` names it) -> the learned copy written next to the model."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_out(model_path: str | Path) -> Path:
    """``NAME.learned.yaml`` next to the model."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.learned.yaml")


def learn_file(
    model_path: str | Path, data_csv: str | Path, out_path: str | Path | None = None, *, force: bool = False
) -> tuple[dict[str, Any], LearnReport]:
    """Fit a model's rows to a CSV of cases and write the learned model.

    The CSV's header names variables (a scene's grounded ``entity.attribute``, with
    ``@t`` for the steps of time-varying attributes); an empty cell is missing.  Rows
    seen in the data become ``(s * p + counts) / (s + n)`` with ``row_strength`` ``s + n``;
    every other part of the file is kept.  A party's own numbers for a learned row
    (``parties.X.beliefs.priors``) take the same counts, so that each party's beliefs are
    its old ones plus the data.  Learned types that come from a library (``use``) are
    written to a learned copy of that library next to the output, and ``use`` points to it.

    ``out_path`` defaults to ``NAME.learned.yaml`` next to the model; writing over the
    model itself needs ``force``.  Every bad cell is reported at once (``FILE: line N:
    column X: ...``) and nothing is written.  Returns the written data and a report.
    """
    model_path, data_csv = Path(model_path), Path(data_csv)
    out = Path(out_path) if out_path is not None else default_out(model_path)
    if same_file(out, model_path) and not force:
        raise CruxError(f"{out}: is the model file itself: give another --out, or --force to overwrite it")
    if same_file(out, data_csv):
        raise CruxError(f"{out}: is the data file: give another --out")
    if not out.parent.is_dir():
        raise CruxError(f"{out}: no such folder {out.parent}")
    base_dir = model_path.parent
    raw = read_data(model_path)
    header, lines = _read_csv(data_csv)
    if out.exists() and not force:
        raise CruxError(f"{out}: exists; crux learn writes no file over another: give another --out, or --force to replace it")
    steps = max((int(m.group(1)) for h in header if (m := _STEP.search(h))), default=None)
    scenario, problems = validate_data(raw, base_dir=base_dir, steps=steps)
    if scenario is None:
        raise ModelError(str(model_path), problems)
    spec = Scenario.model_validate(raw)
    grounding, _ = ground(spec, base_dir, steps)
    plain, _ = ground(spec, base_dir, None)
    assert grounding is not None and plain is not None  # the file is valid
    variables = scenario.world.variables
    decision = scenario.world.decision
    origin = grounding.origin

    order = list(graphlib.TopologicalSorter({v: spec_.parents for v, spec_ in variables.items()}).static_order())
    discrete = [v for v in order if variables[v].states is not None]
    columns = {v: j for j, v in enumerate(discrete)}
    codes = _encode(str(data_csv), header, lines, variables, columns)
    deterministic = {v for v in discrete if _is_aggregate(v, origin)}
    _fill_deterministic(codes, discrete, columns, variables, deterministic)

    def target_of(var: str) -> Target | None:
        v = variables[var]
        if var == decision or var in deterministic or v.states is None:
            return None
        if any(variables[p].states is None for p in v.parents):
            return None
        return origin.get(var, ("world", "variables", var))

    report = LearnReport(model=str(model_path), data=str(data_csv), out=str(out), rows=len(lines))
    pooled: dict[Target, dict[tuple[str, ...], np.ndarray]] = {}
    counted_rows = np.zeros(len(lines), dtype=bool)
    for var in discrete:
        target = target_of(var)
        if target is None:
            continue
        v = variables[var]
        family = [columns[p] for p in v.parents] + [columns[var]]
        seen = codes[:, family]
        complete = (seen >= 0).all(axis=1)
        label = _label(target)
        n_complete = int(complete.sum())
        n_incomplete = int(((seen[:, -1] >= 0) & ~complete).sum())
        if n_complete:
            report.families[label] = report.families.get(label, 0) + n_complete
            counted_rows |= complete
        if n_incomplete:
            report.incomplete[label] = report.incomplete.get(label, 0) + n_incomplete
        if not n_complete:
            continue
        shape = (*(len(variables[p].states) for p in v.parents), len(v.states))
        counts = _family_counts(codes, family, shape)
        rows = pooled.setdefault(target, {})
        for index in np.ndindex(*shape[:-1]):
            row = counts[index]
            if row.any():
                key = tuple(variables[p].states[i] for p, i in zip(v.parents, index))
                rows[key] = rows.get(key, 0) + row
    report.skipped = int((~counted_rows).sum())

    out_data = copy.deepcopy(plain_data(raw))
    libraries = _Libraries(out_data, base_dir)
    before: dict[Target, dict[tuple[str, ...], tuple[float, np.ndarray]]] = {}
    for target, rows in pooled.items():
        attr, mech = libraries.mechanism(target)
        states = _states_at(target, variables, origin)
        learned, before[target] = _learn_rows(mech, attr.get("strength", 10), rows, states)
        report.learned[_label(target)] = learned
    _learn_party_rows(out_data, plain.origin, before, report)

    written = libraries.rebase(out, model_path, data_csv, report)
    check = libraries.inlined(out_data)
    for s in dict.fromkeys([steps, None]):
        ok, problems = validate_data(check, base_dir=base_dir, steps=s)
        if ok is None:  # a bug in learning, not in the user's file
            raise CruxError("the learned model would not be valid (a bug in crux learn):\n" + ModelError(str(out), problems).args[0])
    written_data = libraries.rebased(out_data)
    for path, _ in written:
        if path.exists() and not force:
            raise CruxError(f"{path}: exists (the learned copy of a library); give another --out, or --force to replace it")
    comments = _comment_lines(model_path)
    if comments:
        report.notes.append(
            f"the {comments} comment line{'s' if comments != 1 else ''} of {model_path} "
            f"{'are' if comments != 1 else 'is'} not kept in {out}: it is written anew from the model's data"
        )
    for path, data in written:
        _write(path, data)
    _write(out, written_data)
    return written_data, report


def _comment_lines(path: Path) -> int:
    """How many lines of a YAML file hold a comment (quoted text set aside); 0 for JSON."""
    if path.suffix.lower() == ".json":
        return 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    return sum(1 for line in lines if _COMMENT.search(_QUOTED.sub("", line)))


_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
_COMMENT = re.compile(r"(^|\s)#")


# -- the CSV --------------------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows with their line numbers (blank lines skipped)."""
    text = read_text(path, "a CSV file", encoding="utf-8-sig")
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    lines: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue
            cells = [c.strip() for c in cells]
            if header is None:
                header = cells
            else:
                lines.append((reader.line_num, cells))
    except csv.Error as err:
        raise CruxError(f"{path}: line {reader.line_num}: not valid CSV: {err}") from None
    if header is None:
        raise CruxError(f"{path}: empty: give a header of variable names, then one row per case")
    if not lines:
        raise CruxError(f"{path}: no data rows after the header (one row per case, an empty cell for a missing value)")
    return header, lines


def _encode(
    file: str,
    header: list[str],
    lines: list[tuple[int, list[str]]],
    variables: Mapping[str, Variable],
    columns: Mapping[str, int],
) -> np.ndarray:
    """The cases as state indices (``MISSING`` where empty); every bad cell reported at once."""
    problems: list[str] = []
    for j, name in enumerate(header):
        if not name:
            problems.append(f"{file}: line 1: column {j + 1} has no name: the header names a variable per column")
        elif name not in variables:
            problems.append(f"{file}: line 1: {unknown('variable', name, variables)}")
        elif header.index(name) != j:
            problems.append(f"{file}: line 1: column {name} appears twice")
    if problems:
        raise CruxError("\n".join(problems))
    codes = np.full((len(lines), len(columns)), MISSING, dtype=np.int64)
    lookup = {name: {s: i for i, s in enumerate(variables[name].states or ())} for name in header}
    for r, (line, cells) in enumerate(lines):
        if len(cells) != len(header):
            problems.append(f"{file}: line {line}: has {len(cells)} cells for {len(header)} columns")
            continue
        for name, value in zip(header, cells):
            if value == "":
                continue
            states = variables[name].states
            if states is None:  # a continuous variable: read, never counted
                try:
                    float(value)
                except ValueError:
                    problems.append(f"{file}: line {line}: column {name}: {value!r} is not a number ({name} is continuous)")
                continue
            index = lookup[name].get(value)
            if index is None:
                problems.append(f"{file}: line {line}: column {name}: {_unknown_state(value, name, states)}")
            else:
                codes[r, columns[name]] = index
    if problems:
        raise CruxError("\n".join(problems))
    return codes


def _is_aggregate(var: str, origin: Mapping[str, tuple[PathPart, ...]]) -> bool:
    """A variable of the deterministic chain that folds a relation (``f1.in_path_of.x.any``, ``...#k``)."""
    name = _STEP.sub("", var)
    at = origin.get(var, ())
    return "#" in name or name.endswith(".any") or (len(at) >= 6 and at[-2] == "parents")  # (..., parents, i)


def _fill_deterministic(
    codes: np.ndarray,
    order: Sequence[str],
    columns: Mapping[str, int],
    variables: Mapping[str, Variable],
    deterministic: set[str],
) -> None:
    """Fill the aggregate chains where the observed values determine them (``any`` is yes as soon as
    one related entity is seen moving, whatever the others): each case carries the set of states
    a variable can still take, and a deterministic variable takes the states its rows allow."""
    n = codes.shape[0]
    possible: dict[str, np.ndarray] = {}

    def seen_or_all(var: str) -> np.ndarray:
        """One state where observed, every state where missing."""
        col = codes[:, columns[var]]
        p = np.ones((n, len(variables[var].states)), dtype=bool)
        seen = col >= 0
        p[seen] = False
        p[seen, col[seen]] = True
        return p

    for var in order:
        if var not in deterministic:
            continue
        v = variables[var]
        k = len(v.states)
        if not v.parents:
            out = np.broadcast_to(np.asarray(v.prior or [1.0] * k) > 0, (n, k)).copy()
        else:
            parent_states = [variables[p].states for p in v.parents]
            parents = [possible[p] if p in possible else seen_or_all(p) for p in v.parents]
            rows = {split_key(key): row for key, row in (v.table or {}).items()}
            out = np.zeros((n, k), dtype=bool)
            for combo in np.ndindex(*(len(s) for s in parent_states)):
                reach = np.ones(n, dtype=bool)
                for pp, i in zip(parents, combo):
                    reach &= pp[:, i]
                support = np.asarray(rows[tuple(s[i] for s, i in zip(parent_states, combo))]) > 0
                out |= reach[:, None] & support[None, :]
        col = codes[:, columns[var]]  # a view: filling it fills codes
        determined = (col < 0) & (out.sum(axis=1) == 1)
        col[determined] = out[determined].argmax(axis=1)
        possible[var] = np.where((col >= 0)[:, None], seen_or_all(var), out)


# -- writing the rows -------------------------------------------------------------------------


def _label(target: Target) -> str:
    if target[0] == "world":
        return str(target[2])
    return ".".join(str(t) for t in (target[1], target[3], *target[4:]))


def _states_at(target: Target, variables: Mapping[str, Variable], origin: Mapping[str, tuple[PathPart, ...]]) -> list[str]:
    if target[0] == "world":
        return list(variables[str(target[2])].states or [])
    var = next(v for v, at in origin.items() if at == target)
    return list(variables[var].states or [])


def _learn_rows(
    mech: dict[str, Any], strength: float, rows: Mapping[tuple[str, ...], np.ndarray], states: Sequence[str]
) -> tuple[dict[str, RowLearned], dict[tuple[str, ...], tuple[float, np.ndarray]]]:
    """Add counts to the rows of one mechanism (its dict, changed in place)."""
    root = not mech.get("parents")
    written = {(): ""} if root else {split_key(k): k for k in mech["table"]}
    old_strength = dict(mech.get("row_strength") or {})
    strengths = {(() if root else split_key(k)): (k, s) for k, s in old_strength.items()}
    learned: dict[str, RowLearned] = {}
    before: dict[tuple[str, ...], tuple[float, np.ndarray]] = {}
    for row_key in sorted(rows, key=lambda r: list(written).index(r)):
        counts = rows[row_key]
        key = written[row_key]
        old_key, s = strengths.get(row_key, (None, strength))
        p = mech["prior"] if root else mech["table"][key]
        n = int(counts.sum())
        new = _posterior_mean(p, s, counts)
        if root:
            mech["prior"] = new
        else:
            mech["table"][key] = new
        if old_key is not None and old_key != key:
            old_strength.pop(old_key)
        old_strength[key] = s + n
        before[row_key] = (s, counts)
        learned[key] = RowLearned(
            n=n, counts={st: int(c) for st, c in zip(states, counts) if c}, strength=s + n, p=new
        )
    if learned:
        mech["row_strength"] = old_strength
    return learned, before


def _posterior_mean(p: Sequence[float], s: float, counts: np.ndarray) -> list[float]:
    n = int(counts.sum())
    return [(s * float(pi) + int(c)) / (s + n) for pi, c in zip(p, counts)]


def _learn_party_rows(
    data: dict[str, Any],
    plain_origin: Mapping[str, tuple[PathPart, ...]],
    before: Mapping[Target, Mapping[tuple[str, ...], tuple[float, np.ndarray]]],
    report: LearnReport,
) -> None:
    """A party's own numbers for a learned row take the data's counts too.

    The learned row carries the strength ``s + n``, and a party's override of it is read
    with that strength: without the counts, the party's old guess would weigh as much as
    all the data.  With them, the party believes its old numbers plus the data."""
    parties = data.get("parties") or {}
    for party in ("agent", "human"):
        priors = ((parties.get(party) or {}).get("beliefs") or {}).get("priors") or {}
        for var, override in priors.items():
            target = plain_origin.get(var, ("world", "variables", var))
            rows = before.get(target)
            if not rows:
                continue
            if isinstance(override, list):
                if () in rows:
                    s, counts = rows[()]
                    priors[var] = _posterior_mean(override, s, counts)
                    report.notes.append(f"{party}'s own prior of {var} takes the data's {int(counts.sum())} counts too")
                continue
            for key in list(override):
                if split_key(key) in rows:
                    s, counts = rows[split_key(key)]
                    override[key] = _posterior_mean(override[key], s, counts)
                    report.notes.append(
                        f"{party}'s own row {key!r} of {var} takes the data's {int(counts.sum())} counts too"
                    )


class _Libraries:
    """Where each type's mechanisms are written: this file's `types`, or a learned copy of a library."""

    def __init__(self, data: dict[str, Any], base_dir: Path):
        self.data = data
        self.base_dir = base_dir
        self.loaded: dict[int, dict[str, Any]] = {}
        self.learned: set[int] = set()
        self.copies: dict[int, Path] = {}

    def _library_of(self, type_name: str) -> int | None:
        if type_name in (self.data.get("types") or {}):
            return None
        for i, ref in enumerate(self.data.get("use") or []):
            if i not in self.loaded:
                where = library_path(self.base_dir, ref)  # confined to the scenario's folder, as validation was
                if isinstance(where, str):
                    raise CruxError(f"use[{i}]: {where}")
                self.loaded[i] = copy.deepcopy(plain_data(read_data(where, regular_only=True)))
            if type_name in (self.loaded[i].get("types") or {}):
                return i
        raise CruxError(f"type {type_name!r} is in no file (a bug in crux learn)")

    def mechanism(self, target: Target) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the attribute's or variable's dict, the mechanism's dict) of a learned table."""
        if target[0] == "world":
            var = self.data["world"]["variables"][target[2]]
            return var, var
        type_name, attr_name = str(target[1]), str(target[3])
        i = self._library_of(type_name)
        types = self.data["types"] if i is None else self.loaded[i]["types"]
        if i is not None:
            self.learned.add(i)
        attr = types[type_name]["attributes"][attr_name]
        return attr, (attr["next"] if target[4:] == ("next",) else attr)

    def inlined(self, data: dict[str, Any]) -> dict[str, Any]:
        """The scene as it will read: learned libraries' types in place of their `use` entries."""
        if not self.learned:
            return data
        check = copy.deepcopy(data)
        use = check.get("use") or []
        check["use"] = [ref for i, ref in enumerate(use) if i not in self.learned]
        types = dict(check.get("types") or {})
        for i in sorted(self.learned):
            types.update(self.loaded[i]["types"])
        check["types"] = types
        return check

    def rebase(self, out: Path, model_path: Path, data_csv: Path, report: LearnReport) -> list[tuple[Path, dict]]:
        """Name the learned library copies (next to ``out``); the files to write."""
        files = []
        taken = {out.resolve()}
        for i in sorted(self.learned):
            ref = self.data["use"][i]
            stem = f"{out.name.split('.')[0]}.{Path(ref).stem}.learned"
            path = out.parent / f"{stem}.yaml"
            k = 2
            while path.resolve() in taken:
                path, k = out.parent / f"{stem}{k}.yaml", k + 1
            source = (self.base_dir / ref).resolve()
            for other in (model_path, data_csv, source):
                if same_file(path, other):
                    raise CruxError(f"{path}: the learned copy of {ref} would overwrite {other}: give another --out")
            taken.add(path.resolve())
            self.copies[i] = path
            report.libraries[ref] = str(path)
            files.append((path, self.loaded[i]))
        self.out_dir = out.parent
        return files

    def rebased(self, data: dict[str, Any]) -> dict[str, Any]:
        """`use` paths as seen from the output's folder (the learned copies for learned libraries)."""
        use = data.get("use")
        if not use:
            return data
        moved = self.out_dir.resolve() != self.base_dir.resolve()
        new = []
        for i, ref in enumerate(use):
            if i in self.copies:
                new.append(Path(os.path.relpath(self.copies[i].resolve(), self.out_dir.resolve())).as_posix())
            elif moved:
                new.append(Path(os.path.relpath((self.base_dir / ref).resolve(), self.out_dir.resolve())).as_posix())
            else:
                new.append(ref)
        return {**data, "use": new}




def _write(path: Path, data: dict[str, Any]) -> None:
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    write_atomically(path, text)
