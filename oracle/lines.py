"""Many queries as lines of JSON, answered in columns: ``crux ask --batch``.

Reading, checking and writing cost more than answering when every query is an object of its
own, so here a file's lines are read with a fast JSON reader, checked by their shape (not one
model validation each), grouped by what they set, see and ask (the names checked once per
group, each line's states by a dictionary lookup), answered group by group through the
oracle's engines, and written back in input order, each answer built from its group's
tensors.  A line the fast path cannot take as it is (a misspelling the checks forgive, a
number for a continuous variable, anything odd) takes the general path, one query at a time,
with the very checks and messages of a single query.  Answers are those of
:meth:`~oracle.oracle.Oracle.ask_many` (the same JSON); a line that cannot be read or answered
gets an error object on its own line, and the others are answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import torch
from pydantic import ValidationError

from crux.oracle.engine import Batch, Engine, Posterior, masked
from crux.oracle.exact import ImpossibleEvidence
from crux.oracle.oracle import Oracle, collector_paused, interval_bounds
from crux.oracle.query import Query, QueryError, Resolved, variable_name
from crux.oracle.validate import checked
from crux.worldmodel.jsontext import loads as strict_json

try:  # a fast reader where installed (a dependency of Crux), else the standard library's
    from orjson import loads as _read
except ImportError:  # pragma: no cover - orjson is a dependency
    _read = json.loads


def _write(data: Any) -> str:
    """JSON as ``crux ask --json`` writes it (the standard library's separators and numbers)."""
    return json.dumps(data, allow_nan=False)


_KEYS = frozenset(("do", "given", "outcomes", "as"))


def error_line(n: int, message: str, problems: Sequence[dict] = ()) -> dict:
    """The output of a line that cannot be read or answered."""
    return {"line": n, "error": {"message": message, "problems": list(problems)}}


NOT_FINITE = (
    "the answer holds numbers that are not finite (NaN or infinity), which JSON cannot carry: "
    "check that the values set and seen are in a sensible range and the evidence is possible"
)

Failed = Callable[[int, QueryError], None]
"""What becomes of a query (by its number) that cannot be answered."""

Row = Union[Resolved, tuple[Resolved, Sequence[int]]]
"""A query to answer: resolved, or a resolved query of its structure (a template) and the state
index of each variable it sets and sees, in the template's order (as a :class:`Reader` reads
queries, without a query object each)."""


def answer_rows(oracle: Oracle, rows: Sequence[Row]) -> list[str]:
    """The JSON text of each row's answer, in order, as :meth:`~oracle.oracle.Oracle.ask_many`
    would write it: rows of one structure answered as one batch (those setting the decision in
    one tree pass where it holds them).  The first query that cannot be answered raises its
    :class:`~oracle.query.QueryError` (a server answers the request that sent it with a 422)."""
    out: dict[int, str] = {}

    def fail(n: int, err: QueryError) -> None:
        raise err

    with collector_paused(len(rows)):
        _answer_rows(oracle, enumerate(rows), out, fail)
    return [out[n] for n in range(len(rows))]


def _answer_rows(oracle: Oracle, rows: Iterable[tuple[int, Row]], out: dict[int, str], failed: Failed) -> None:
    """Numbered rows' answers into ``out``: in columns, group by group; on a model with
    continuous variables, query by query (as ``ask_many`` answers them)."""
    groups: dict[tuple, _Group] = {}
    continuous = bool(oracle.model.network.continuous)
    for n, row in rows:
        template, states = row if isinstance(row, tuple) else (row, [i for _, i in (*row.do, *row.given)])
        if not continuous:
            _group_of(groups, template).add(n, states)
            continue
        try:
            out[n] = _write(oracle.ask(_filled(oracle, template, states) if isinstance(row, tuple) else row).to_json())
        except QueryError as err:
            failed(n, err)
        except ValueError:  # JSON has no NaN or infinity
            failed(n, QueryError(NOT_FINITE))
    _answer(oracle, [g for g in groups.values() if g.numbers], out, failed)


def _filled(oracle: Oracle, template: Resolved, states: Sequence[int]) -> Resolved:
    """A template's structure with these states (of discrete variables), and its echo."""
    k, names = len(template.do), oracle.model.network.states
    do = tuple((v, s) for (v, _), s in zip(template.do, states[:k]))
    given = tuple((v, s) for (v, _), s in zip(template.given, states[k:]))
    echo = Query(
        do={v: names[v][i] for v, i in do}, given={v: names[v][i] for v, i in given},
        outcomes=list(template.outcomes), as_=template.party,
    )
    return Resolved(query=echo, party=template.party, do=do, given=given, outcomes=template.outcomes)


_MISSING = object()
_STATES_KEPT = 4096
"""Queries' states remembered per shape (names to indices: a query asked again is read by one lookup)."""


class Reader:
    """Parsed queries of the plain shape (``do`` and ``given`` objects of state names,
    ``outcomes``, ``as``) read as :data:`Row` s without a query object each: the names of each
    shape (what a query sets, sees and asks, and whose beliefs answer) checked once, with the
    full checks of a single query, and each query's states by one dictionary lookup each.
    Anything else (a name or state the full checks forgive or explain, a number for a
    continuous variable, a field of another type) is not read: :meth:`row` gives None, and the
    caller takes the general path, with its checks and messages.  At most ``limit`` shapes are
    kept (the oldest forgotten first)."""

    def __init__(self, oracle: Oracle, limit: int | None = None):
        self.oracle, self.limit = oracle, limit
        self._shapes: dict[tuple, tuple[Resolved, list[dict[str, int]], dict[tuple, tuple[int, ...]]] | None] = {}
        """Per shape: its template, each variable's state index by name, and the states of the
        queries met (their names -> their indices)."""

    def row(self, data: Any) -> Row | None:
        """``data`` (a parsed JSON object) as a row, or None (the general path decides)."""
        if type(data) is not dict or not data.keys() <= _KEYS:
            return None
        do, given = data.get("do", _EMPTY), data.get("given", _EMPTY)
        if type(do) is not dict or type(given) is not dict:
            return None
        outcomes = data.get("outcomes", ())
        try:
            key = (tuple(do), tuple(given), tuple(outcomes) if type(outcomes) is list else outcomes, data.get("as"))
            found = self._shapes.get(key, _MISSING)
        except TypeError:  # a list or an object where a name belongs
            return None
        if found is _MISSING:
            found = self._learn(key)
        if found is None:
            return None
        template, index, known = found
        values = (*do.values(), *given.values())
        try:
            states = known.get(values)
            if states is None:
                states = tuple([lookup[value] for lookup, value in zip(index, values)])
                if len(known) < _STATES_KEPT:
                    known[values] = states
        except (KeyError, TypeError):  # not a state's exact name (or not a name): the full checks forgive or explain
            return None
        return template, states

    def _learn(self, key: tuple) -> tuple[Resolved, list[dict[str, int]], dict[tuple, tuple[int, ...]]] | None:
        resolved = _resolve_shape(self.oracle, key)
        found = self._shapes[key] = None if resolved is None else (*resolved, {})
        if self.limit is not None and len(self._shapes) > self.limit:
            del self._shapes[next(iter(self._shapes))]
        return found


class _Group:
    """The lines of one structure (whose beliefs, what they set, see and ask): their distinct
    states as columns, one row per distinct query, and each line's row (a query asked again is
    answered once, and its answer written once)."""

    def __init__(self, structure: Resolved):
        self.party, self.outcomes = structure.party, structure.outcomes
        self.do, self.given = [v for v, _ in structure.do], [v for v, _ in structure.given]
        self.numbers: list[int] = []
        self.row_of: list[int] = []
        self.columns: list[list[int]] = [[] for _ in range(len(self.do) + len(self.given))]
        self._rows: dict[tuple, int] = {}

    @property
    def size(self) -> int:
        """Distinct queries."""
        return len(self._rows)

    def add(self, n: int, states: Sequence[int]) -> None:
        self.numbers.append(n)
        key = tuple(states)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._rows)
            for column, i in zip(self.columns, key):
                column.append(i)
        self.row_of.append(row)

    def settings(self, device: torch.device) -> tuple[dict, dict]:
        at = [torch.tensor(c, dtype=torch.long, device=device) for c in self.columns]
        k = len(self.do)
        return dict(zip(self.do, ((None, c) for c in at[:k]))), dict(zip(self.given, ((None, c) for c in at[k:])))


def answer_lines(oracle: Oracle, lines: Sequence[str]) -> tuple[list[str], int]:
    """The output line (JSON text) of every non-blank input line, in order, and how many of them
    are errors.  Blank lines are skipped (they get no output line); line numbers count them."""
    with collector_paused(len(lines)):
        return _answer_lines(oracle, lines)


def _answer_lines(oracle: Oracle, lines: Sequence[str]) -> tuple[list[str], int]:
    out: dict[int, str] = {}
    rows: list[tuple[int, Row]] = []
    continuous = bool(oracle.model.network.continuous)
    reader = Reader(oracle)
    seen: dict[str, Row | None] = {}  # a line's text read once, however often it comes
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = seen.get(line, _MISSING)
        if row is _MISSING:
            row = seen[line] = None if continuous else reader.row(_parse(line))
        if row is None:
            found = _general(oracle, n, line)
            if isinstance(found, dict):
                out[n] = _write(found)
                continue
            row = found
        rows.append((n, row))

    def failed(n: int, err: QueryError) -> None:
        out[n] = _write(error_line(n, str(err)))

    _answer_rows(oracle, rows, out, failed)
    return [out[n] for n in sorted(out)], sum(1 for text in out.values() if text.startswith('{"line"'))


def _group_of(groups: dict[tuple, _Group], resolved: Resolved) -> _Group:
    """The group of ``resolved``'s structure, made on first use."""
    group = groups.get(resolved.structure)
    if group is None:
        group = groups[resolved.structure] = _Group(resolved)
    return group


def _parse(line: str) -> Any:
    """A line read by the fast reader, or None where the general path must read it (not JSON,
    or a key given twice, which the fast reader would take as its last)."""
    try:
        data = _read(line)
    except (ValueError, TypeError):
        return None
    if type(data) is not dict:
        return None
    do, given = data.get("do", _EMPTY), data.get("given", _EMPTY)
    keys = len(data) + (len(do) if type(do) is dict else 0) + (len(given) if type(given) is dict else 0)
    if line.count(":") != keys:  # a key given twice, a ':' in a name, or an object deeper down: the general path
        return None
    return data


_EMPTY: dict = {}


def _resolve_shape(oracle: Oracle, key: tuple):
    """A shape's names checked once (with the full checks, on a query of the shape's names): the
    resolved template and each set and seen variable's state index by name; None where the
    names do not resolve or a variable set or seen is continuous (every query of the shape
    then takes the general path, and gets its own message)."""
    do, given, outcomes, as_ = key
    net = oracle.model.network
    try:
        names = [variable_name(net, v, "do") for v in do], [variable_name(net, v, "given") for v in given]
        if any(v in net.continuous for v in (*names[0], *names[1])):
            return None
        template = oracle.resolve(Query(
            do={v: net.states[v][0] for v in names[0]}, given={v: net.states[v][0] for v in names[1]},
            outcomes=list(outcomes), as_=as_,
        ))
    except (QueryError, ValidationError, TypeError):
        return None
    if len(template.do) != len(do) or len(template.given) != len(given):  # two spellings of one name
        return None
    return template, [net.state_index[v] for v, _ in (*template.do, *template.given)]


def _general(oracle: Oracle, n: int, line: str) -> Resolved | dict:
    """One line through the full checks: resolved, or its error object (each problem at its
    field, as the server reports them)."""
    try:
        query = Query.model_validate(strict_json(line))
    except ValidationError as err:
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors(include_url=False)]
        return error_line(n, "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems), problems)
    except json.JSONDecodeError as err:
        return error_line(n, f"not JSON: {err.msg} (column {err.colno})")
    except RecursionError:
        return error_line(n, "nested too deeply: one query object a line")
    except ValueError as err:  # a key twice, NaN, a number too long
        return error_line(n, str(err))
    resolved, problems = checked(query, oracle.model, ())
    if resolved is None:
        located = [{"loc": p["loc"], "msg": p["msg"]} for p in problems]
        return error_line(n, "; ".join(p["msg"] for p in located), located)
    return resolved


def _answer(oracle: Oracle, groups: list[_Group], out: dict[int, str], failed: Failed) -> None:
    """Answer the groups, writing each line's JSON into ``out``: the groups that set the decision
    in one junction tree pass where the tree holds them (several structures), each other group
    in one batch of its own, as :meth:`~oracle.oracle.Oracle.groups` arranges queries."""
    work, net = oracle.work, oracle.model.network
    decision = net.decision
    tree = oracle.router.engine("tree")
    together = [g for g in groups if decision is None or decision in g.do]
    if len(together) > 1 and tree is not None and tree in oracle.router.allowed:
        batch = _together(oracle, together)
        if tree.holds(batch):
            _write_group(oracle, together, batch, tree, out, failed)
            taken = {id(g) for g in together}
            groups = [g for g in groups if id(g) not in taken]
    for group in groups:
        do, given = group.settings(work.device)
        state = oracle.model.beliefs(group.party)
        batch = Batch(work, [state], group.size, group.outcomes, draws=True, do=do, given=given)
        _write_group(oracle, [group], batch, None, out, failed)


def _together(oracle: Oracle, groups: list[_Group]) -> Batch:
    """One batch of several structures: each variable's mask and states over every group's rows,
    and per target the rows that ask about it."""
    device = oracle.work.device
    size = sum(g.size for g in groups)
    found: tuple[dict[str, tuple[list[int], list[int]]], dict[str, tuple[list[int], list[int]]]] = ({}, {})
    asks: dict[str, list[int]] = {}
    start = 0
    for g in groups:
        count = g.size
        rows = range(start, start + count)
        k = len(g.do)
        for kept, names, columns in ((found[0], g.do, g.columns[:k]), (found[1], g.given, g.columns[k:])):
            for v, column in zip(names, columns):
                where, index = kept.setdefault(v, ([], []))
                where.extend(rows)
                index.extend(column)
        for t in g.outcomes:
            asks.setdefault(t, []).extend(rows)
        start += count

    states = [oracle.model.beliefs(g.party) for g in groups]
    if len({id(s) for s in states}) == 1:
        beliefs = states[:1]
    else:
        beliefs = [s for s, g in zip(states, groups) for _ in range(g.size)]
    return Batch(
        oracle.work, beliefs, size, list(asks), draws=True, one_structure=False,
        do=masked(found[0], size, device), given=masked(found[1], size, device),
        asks={t: torch.tensor(rows, dtype=torch.long, device=device) for t, rows in asks.items()},
    )


def _write_group(
    oracle: Oracle, groups: list[_Group], batch: Batch, engine: Engine | None, out: dict[int, str], failed: Failed
) -> None:
    """One batch's answers, line by line, into ``out`` (an error for the whole batch goes to
    ``failed`` for each of its lines; impossible evidence, or numbers JSON cannot carry, for
    its own line).  Each line is the JSON ``ask_many`` writes,
    put together from pieces written once: the names and states of the group, and each
    target's numbers written for all rows at once."""
    numbers = [n for g in groups for n in g.numbers]
    try:
        posterior = oracle.router.answer(batch, engine)
    except QueryError as err:  # the whole batch (a decision left unset, a query too large)
        for n in numbers:
            failed(n, err)
        return
    impossible = set() if posterior.impossible is None else set(posterior.impossible.nonzero().flatten().tolist())
    rows, broken = _rows(batch, posterior)
    net = oracle.model.network
    head = {t: '%s: {"states": %s, "p": ' % (_write(t), _write(list(net.states[t]))) for t in rows}
    tail = ', "method": %s, "device": %s, "outcomes": {' % (_write(posterior.method), _write(oracle.device.type))
    b = 0  # the batch row of a group's first row
    for g in groups:
        k = len(g.do)
        pairs = [[f"{_write(v)}: {_write(s)}" for s in net.states[v]] for v in (*g.do, *g.given)]
        rest = '}, "outcomes": %s, "as": %s}' % (_write(list(g.outcomes)), _write(g.party)) + tail
        texts: list[str | QueryError] = []
        for j in range(g.size):
            if b + j in impossible or b + j in broken:
                texts.append(ImpossibleEvidence(b + j) if b + j in impossible else QueryError(NOT_FINITE))
                continue
            shown = [states[c[j]] for states, c in zip(pairs, g.columns)]
            answers = []
            for t in g.outcomes:
                mean, interval, stderr = rows[t][b + j]
                answers.append(f'{head[t]}{mean}, "interval": {interval}' + ("}" if stderr is None else f', "stderr": {stderr}}}'))
            texts.append('{"query": {"do": {%s}, "given": {%s%s%s}}' % (", ".join(shown[:k]), ", ".join(shown[k:]), rest, ", ".join(answers)))
        for n, j in zip(g.numbers, g.row_of):
            text = texts[j]
            if isinstance(text, str):
                out[n] = text
            else:
                failed(n, text)
        b += g.size


def _rows(batch: Batch, posterior: Posterior) -> tuple[dict[str, dict[int, tuple[str, str, str | None]]], set[int]]:
    """Per target, per batch row asking about it: the JSON text of the mean, of the 90% interval
    and of the standard errors (sampled), from one quantile call and one writer call per target
    (``ask_many``'s numbers: the same quantiles of the same draws).  Rows alike (the same query
    asked again) are written once.  Also the batch rows whose numbers are not all finite
    (impossible evidence, or a computation gone out of range): JSON cannot carry them."""
    out: dict[str, dict[int, tuple[str, str, str | None]]] = {}
    broken: set[int] = set()
    for t, p in posterior.p.items():
        asking = range(batch.size) if batch.one_structure else batch.asks[t].tolist()
        p = p.cpu()
        bad = (~torch.isfinite(p)).any(0).any(-1)
        if bool(bad.any()):
            broken.update(asking[k] for k in bad.nonzero().flatten().tolist())
        card = p.shape[-1]
        if p.shape[0] == 1:  # the mean alone (certain numbers): a point interval
            rows, inverse = _distinct(p[0])
            means = _split(rows.tolist(), 2)
            intervals = ["[" + ", ".join(f"[{x}, {x}]" for x in row[1:-1].split(", ")) + "]" for row in means]
        else:
            bounds = interval_bounds(p[1:])
            rows, inverse = _distinct(torch.cat([p[0], bounds.permute(1, 2, 0).reshape(-1, 2 * card)], dim=1))
            means = _split(rows[:, :card].tolist(), 2)
            intervals = _split(rows[:, card:].reshape(-1, card, 2).tolist(), 3)
        errors = None if posterior.stderr is None or t not in posterior.stderr else _split(posterior.stderr[t].cpu().tolist(), 2)
        out[t] = {
            b: (means[inverse[k]], intervals[inverse[k]], None if errors is None else errors[k]) for k, b in enumerate(asking)
        }
    return out, broken


def _distinct(rows: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The distinct rows (NaN rows kept apart: they are never written) and each row's index
    among them."""
    if rows.shape[0] < 64 or bool(rows.isnan().any()):
        return rows, list(range(rows.shape[0]))
    found, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return found, inverse.tolist()


def _split(rows: list, depth: int) -> list[str]:
    """The JSON text of each row of a list of rows of numbers (``depth`` 2: ``[[x, ...], ...]``;
    3: ``[[[x, y], ...], ...]``), from one writer call: numbers hold no brackets or commas, so
    the rows part where one closes and the next opens."""
    if not rows:
        return []
    text = json.dumps(rows)  # NaN only in the rows of impossible evidence, which are not written
    inner, joint = text[depth : len(text) - depth], "]" * (depth - 1) + ", " + "[" * (depth - 1)
    return ["[" * (depth - 1) + part + "]" * (depth - 1) for part in inner.split(joint)]
