"""Read Bayesian networks in BIF (``.bif``, ``.bif.gz``), as bnlearn's repository writes them.

A BIF network is a world without parties, facts or a decision: it serves
``crux ask``, ``crux validate`` and ``crux serve``.  Its numbers are point
values, so answers on it carry no parameter uncertainty (intervals are
points).  Problems are reported like the scenario loader's:
``FILE: line N: probability(tub)."(yes)": sums to 0.97, not 1``.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from crux.worldmodel.errors import CruxError, ModelError, PathPart, Problem, clip, short, shown, unknown
from crux.worldmodel.files import read_bytes
from crux.worldmodel.limits import limit, over
from crux.worldmodel.rows import all_keys, join_key, missing_keys, table_size

if TYPE_CHECKING:
    from crux.worldmodel.compile import BeliefState, Network

BIF_SUFFIXES = (".bif", ".bif.gz")
SUM_TOLERANCE = 1e-3
"""BIF files round their numbers; rows within this of 1 are renormalised, others are errors."""

_TOKEN = re.compile(r"//[^\n]*|/\*.*?\*/|(?P<punct>[{}()\[\];,|])|(?P<word>[^\s{}()\[\];,|]+)|(?P<space>\s+)", re.S)


@dataclass
class _Token:
    text: str
    line: int


def is_bif(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(BIF_SUFFIXES)


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of a BIF text, one at a time (a list of them would take many times the text)."""
    line = 1
    for m in _TOKEN.finditer(text):
        if m.group("punct") or m.group("word"):
            yield _Token(m.group(0), line)
        line += m.group(0).count("\n")


class _Parser:
    """A recursive-descent reader over a stream of tokens, with one token of look-ahead."""

    def __init__(self, file: str, tokens: Iterator[_Token]):
        self.file, self.tokens = file, tokens
        self.current: _Token | None = next(tokens, None)

    def error(self, message: str, token: _Token | None = None) -> ModelError:
        token = token or self.current
        where = f"line {token.line}: " if token else "at the end: "
        return ModelError(self.file, [Problem((), where + message)])

    def peek(self) -> str | None:
        return self.current.text if self.current is not None else None

    def take(self, expected: str | None = None) -> _Token:
        token = self.current
        if token is None:
            raise self.error(f"the file ends early (expected {expected or 'more'})")
        if expected is not None and token.text != expected:
            raise self.error(f"expected {expected!r}, found {short(token.text)}", token)
        self.current = next(self.tokens, None)
        return token

    def next(self, hint: str) -> _Token:
        """The next token, whatever it is (``hint`` names what was expected, for an early end)."""
        if self.current is None:
            raise self.error(f"the file ends early (expected {hint})")
        return self.take()

    def until(self, stop: str) -> list[_Token]:
        out = []
        while self.peek() != stop:
            out.append(self.next(repr(stop)))
        return out

    def skip_block(self) -> None:
        """Skip a ``{ ... }`` block (network properties)."""
        self.take("{")
        depth = 1
        while depth:
            text = self.next("'}'").text
            depth += {"{": 1, "}": -1}.get(text, 0)


@dataclass
class _Probability:
    variable: str
    parents: list[str]
    rows: dict[tuple[str, ...], tuple[list[float], int]]
    line: int


def read_bif(path: str | Path) -> tuple[Network, BeliefState, str]:
    """The network, its (certain) numbers and its name; every problem reported with its line."""
    # here: checking a file (:func:`check_bif`) builds no tensors
    import torch
    from crux.worldmodel.compile import BeliefState, Network

    name, states, probabilities = _read(path)
    network = Network.build(states=states, parents={v: probabilities[v].parents for v in states})
    tables = {}
    for var in network.order:
        prob = probabilities[var]
        table = torch.empty(network.shape(var), dtype=torch.float64)
        parent_states = [network.states[q] for q in prob.parents]
        for key in all_keys(parent_states) if prob.parents else [()]:
            row = torch.tensor(prob.rows[key][0], dtype=torch.float64)
            table[network.row_index(var, dict(zip(prob.parents, key)))] = row / row.sum()
        tables[var] = table
    return network, BeliefState(concentration=tables, certain=True), name


def check_bif(path: str | Path) -> dict[str, list[str]]:
    """Each variable's states, once the file is read and checked as :func:`read_bif` does (the
    same errors), without building its tables: what ``crux validate`` needs, without torch."""
    return _read(path)[1]


def _read(path: str | Path) -> tuple[str, dict[str, list[str]], dict[str, _Probability]]:
    """The network's name, each variable's states and its probability block, every problem
    reported with its line."""
    path = Path(path)
    file = str(path)
    raw = read_bytes(path, "a BIF network", limit_name="MAX_FILE_BYTES")
    try:
        text = (_gunzip(raw, file) if file.lower().endswith(".gz") else raw).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise CruxError(f"{file}: cannot read a BIF network: {err}") from None
    p = _Parser(file, _tokens(text))
    name = "network"
    states: dict[str, tuple[list[str], int]] = {}
    probabilities: dict[str, _Probability] = {}
    problems: list[Problem] = []
    while p.peek() is not None:
        keyword = p.next("network, variable or probability")
        if keyword.text == "network":
            name = p.next("a network name").text
            p.skip_block()
        elif keyword.text == "variable":
            var = p.next("a variable name")
            p.take("{")
            declared = None
            while p.peek() != "}":
                word = p.next("'}'")
                if word.text == "type":
                    p.take("discrete")
                    p.take("[")
                    count = p.next("a number of states")
                    p.take("]")
                    p.take("{")
                    names = [t.text for t in p.until("}") if t.text != ","]
                    p.take("}")
                    p.take(";")
                    if not re.fullmatch(r"[0-9]+", count.text) or int(count.text) != len(names):
                        problems.append(Problem(("variable", var.text), f"line {count.line}: declares [{count.text}] states but lists {len(names)}"))
                    declared = names
                else:  # property ... ;
                    p.until(";")
                    p.take(";")
            p.take("}")
            if declared is None:
                problems.append(Problem(("variable", var.text), f"line {var.line}: has no `type discrete [ n ] {{ ... }}`"))
            elif var.text in states:
                problems.append(Problem(("variable", var.text), f"line {var.line}: declared twice"))
            else:
                states[var.text] = (declared, var.line)
        elif keyword.text == "probability":
            p.take("(")
            head = [t.text for t in p.until(")") if t.text != ","]
            p.take(")")
            if not head or "|" in head[:1]:
                raise p.error("probability ( VARIABLE | PARENTS ) needs a variable", keyword)
            var, parents = head[0], [h for h in head[2:]] if len(head) > 1 and head[1] == "|" else []
            rows: dict[tuple[str, ...], tuple[list[float], int]] = {}
            p.take("{")
            while p.peek() != "}":
                first = p.next("'}'")
                if first.text == "table":
                    values = [t for t in p.until(";") if t.text != ","]
                    key: tuple[str, ...] = ()
                    if parents:
                        problems.append(Problem(("probability", var), f"line {first.line}: a `table` for a variable with parents is not supported: give one row per parent combination"))
                elif first.text == "(":
                    key = tuple(t.text for t in p.until(")") if t.text != ",")
                    p.take(")")
                    values = [t for t in p.until(";") if t.text != ","]
                elif first.text == "default":
                    problems.append(Problem(("probability", var), f"line {first.line}: `default` rows are not supported: list every parent combination"))
                    p.until(";")
                    values, key = [], ()
                else:  # property ... ;
                    p.until(";")
                    p.take(";")
                    continue
                p.take(";")
                numbers = []
                for t in values:
                    try:
                        x = float(t.text)
                    except ValueError:
                        problems.append(Problem(("probability", var), f"line {t.line}: {short(t.text)} is not a number"))
                        continue
                    if not math.isfinite(x):
                        problems.append(Problem(("probability", var), f"line {t.line}: {short(t.text)} is not a finite number"))
                    numbers.append(x)
                if key in rows:
                    problems.append(Problem(("probability", var, join_key(key)), f"line {first.line}: repeats a row"))
                rows[key] = (numbers, first.line)
            p.take("}")
            if var in probabilities:
                problems.append(Problem(("probability", var), f"line {keyword.line}: a second probability block for {var}"))
            probabilities[var] = _Probability(var, parents, rows, keyword.line)
        else:
            raise p.error(f"expected `network`, `variable` or `probability`, found {short(keyword.text)}", keyword)
    if not states and not probabilities and not problems:
        raise ModelError(file, [Problem((), "no variables: a BIF network declares `variable NAME { type discrete [ n ] { ... }; }` blocks")])
    problems += _check(states, probabilities)
    if problems:
        raise ModelError(file, problems)
    return name, {v: s for v, (s, _) in states.items()}, probabilities


def _gunzip(raw: bytes, file: str) -> bytes:
    """A gzip stream decompressed in bounded chunks, stopped past ``MAX_DECOMPRESSED_BYTES``
    (two megabytes of gzip can expand to two gigabytes)."""
    cap = limit("MAX_DECOMPRESSED_BYTES")
    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        while chunk := stream.read(1 << 20):
            out += chunk
            if len(out) > cap:
                raise CruxError(f"{file}: decompresses to more than {cap:,} bytes, {over('MAX_DECOMPRESSED_BYTES')}")
    return bytes(out)


def _check(states: dict[str, tuple[list[str], int]], probabilities: dict[str, _Probability]) -> list[Problem]:
    out: list[Problem] = []
    per_table, per_model = limit("MAX_TABLE_NUMBERS"), limit("MAX_MODEL_NUMBERS")
    total = 0
    for var, (names, line) in states.items():
        if len(set(names)) != len(names):
            out.append(Problem(("variable", var), f"line {line}: a state is listed twice"))
        if len(names) < 2:
            out.append(Problem(("variable", var), f"line {line}: needs at least two states"))
        if var not in probabilities:
            out.append(Problem(("variable", var), f"line {line}: has no probability block"))
    for var, prob in probabilities.items():
        at: tuple[PathPart, ...] = ("probability", var)
        if var not in states:
            out.append(Problem(at, f"line {prob.line}: " + unknown("variable", var, states)))
            continue
        bad_parent = False
        for parent in prob.parents:
            if parent not in states:
                out.append(Problem(at, f"line {prob.line}: " + unknown("parent", parent, states)))
                bad_parent = True
        for parent, n in Counter(prob.parents).items():
            if n > 1:
                out.append(Problem(at, f"line {prob.line}: parent {short(parent)} is listed {n} times: name each parent once"))
                bad_parent = True
        if bad_parent:
            continue
        names = states[var][0]
        parent_states = [states[q][0] for q in prob.parents]
        rows, size = table_size([len(s) for s in parent_states], len(names))
        total += size
        if size > per_table:
            out.append(
                Problem(
                    at,
                    f"line {prob.line}: the table of {var} would hold {rows:,} rows x {len(names):,} states = {size:,} numbers, "
                    f"{over('MAX_TABLE_NUMBERS')}",
                )
            )
            continue
        state_sets = [set(s) for s in parent_states]
        present: set[tuple[str, ...]] = set()
        for key, (row, line) in prob.rows.items():
            where = (*at, join_key(key)) if key else at
            if len(key) != len(prob.parents) or any(part not in known for part, known in zip(key, state_sets)):
                out.append(Problem(where, f"line {line}: ({clip(join_key(key))}) is not a combination of the states of {shown(prob.parents) or 'no parents'}"))
                continue
            present.add(key)
            if len(row) != len(names):
                out.append(Problem(where, f"line {line}: {len(row)} numbers for {len(names)} states ({shown(names)})"))
            elif not all(math.isfinite(x) for x in row):
                pass  # reported where the number was read
            elif any(x < 0 for x in row):
                out.append(Problem(where, f"line {line}: a probability is negative"))
            elif abs(sum(row) - 1) > SUM_TOLERANCE:
                out.append(Problem(where, f"line {line}: sums to {sum(row):.6g}, not 1"))
        count, first = missing_keys(parent_states, present, 5)
        for key in first:
            out.append(Problem(at, f"line {prob.line}: missing row ({join_key(key)})" if key else f"line {prob.line}: no table"))
        if count > 5:
            out.append(Problem(at, f"... and {count - 5} more missing rows"))
    if total > per_model:
        out.append(Problem((), f"the tables would hold {total:,} numbers in all, {over('MAX_MODEL_NUMBERS')}"))
    graph = nx.DiGraph()
    graph.add_edges_from((q, v) for v, prob in probabilities.items() for q in prob.parents if q in states and v in states)
    try:
        cycle = nx.find_cycle(graph)
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        out.append(Problem((), f"cycle {' -> '.join(names)}: the parent graph must be acyclic"))
    except nx.NetworkXNoCycle:
        pass
    return out
