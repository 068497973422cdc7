"""Read Bayesian networks in BIF (``.bif``, ``.bif.gz``), as bnlearn's repository writes them.

A BIF network is a world without parties, facts or a decision: it serves
``crux ask``, ``crux validate`` and ``crux serve``.  Its numbers are point
values, so answers on it carry no parameter uncertainty (intervals are
points).  Problems are reported like the scenario loader's:
``FILE: line N: probability(tub)."(yes)": sums to 0.97, not 1``.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import torch

from worldmodel.compile import BeliefState, Network
from worldmodel.errors import CruxError, ModelError, PathPart, Problem, unknown
from worldmodel.rows import all_keys, join_key

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


def _tokens(text: str) -> list[_Token]:
    out, line = [], 1
    for m in _TOKEN.finditer(text):
        if m.group("punct") or m.group("word"):
            out.append(_Token(m.group(0), line))
        line += m.group(0).count("\n")
    return out


class _Parser:
    def __init__(self, file: str, tokens: list[_Token]):
        self.file, self.tokens, self.i = file, tokens, 0

    def error(self, message: str, token: _Token | None = None) -> ModelError:
        token = token or (self.tokens[self.i] if self.i < len(self.tokens) else None)
        where = f"line {token.line}: " if token else "at the end: "
        return ModelError(self.file, [Problem((), where + message)])

    def peek(self) -> str | None:
        return self.tokens[self.i].text if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> _Token:
        if self.i >= len(self.tokens):
            raise self.error(f"the file ends early (expected {expected or 'more'})")
        token = self.tokens[self.i]
        if expected is not None and token.text != expected:
            raise self.error(f"expected {expected!r}, found {token.text!r}", token)
        self.i += 1
        return token

    def next(self, hint: str) -> _Token:
        """The next token, whatever it is (``hint`` names what was expected, for an early end)."""
        if self.i >= len(self.tokens):
            raise self.error(f"the file ends early (expected {hint})")
        self.i += 1
        return self.tokens[self.i - 1]

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
    path = Path(path)
    file = str(path)
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if file.lower().endswith(".gz") else raw).decode("utf-8")
    except FileNotFoundError:
        raise CruxError(f"{file}: no such file") from None
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as err:
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
                    if not count.text.isdigit() or int(count.text) != len(names):
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
                        numbers.append(float(t.text))
                    except ValueError:
                        problems.append(Problem(("probability", var), f"line {t.line}: {t.text!r} is not a number"))
                if key in rows:
                    problems.append(Problem(("probability", var, join_key(key)), f"line {first.line}: repeats a row"))
                rows[key] = (numbers, first.line)
            p.take("}")
            if var in probabilities:
                problems.append(Problem(("probability", var), f"line {keyword.line}: a second probability block for {var}"))
            probabilities[var] = _Probability(var, parents, rows, keyword.line)
        else:
            raise p.error(f"expected `network`, `variable` or `probability`, found {keyword.text!r}", keyword)
    problems += _check(states, probabilities)
    if problems:
        raise ModelError(file, problems)
    network = Network.build(
        states={v: s for v, (s, _) in states.items()},
        parents={v: probabilities[v].parents for v in states},
    )
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


def _check(states: dict[str, tuple[list[str], int]], probabilities: dict[str, _Probability]) -> list[Problem]:
    out: list[Problem] = []
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
        if bad_parent:
            continue
        names = states[var][0]
        expected = all_keys([states[q][0] for q in prob.parents]) if prob.parents else [()]
        for key, (row, line) in prob.rows.items():
            where = (*at, join_key(key)) if key else at
            if key not in expected:
                out.append(Problem(where, f"line {line}: ({join_key(key)}) is not a combination of the states of {', '.join(prob.parents) or 'no parents'}"))
            elif len(row) != len(names):
                out.append(Problem(where, f"line {line}: {len(row)} numbers for {len(names)} states ({', '.join(names)})"))
            elif any(x < 0 for x in row):
                out.append(Problem(where, f"line {line}: a probability is negative"))
            elif abs(sum(row) - 1) > SUM_TOLERANCE:
                out.append(Problem(where, f"line {line}: sums to {sum(row):.6g}, not 1"))
        missing = [join_key(k) for k in expected if k not in prob.rows]
        for key in missing[:5]:
            out.append(Problem(at, f"line {prob.line}: missing row ({key})" if key else f"line {prob.line}: no table"))
        if len(missing) > 5:
            out.append(Problem(at, f"... and {len(missing) - 5} more missing rows"))
    graph = nx.DiGraph()
    graph.add_edges_from((q, v) for v, prob in probabilities.items() for q in prob.parents if q in states and v in states)
    try:
        cycle = nx.find_cycle(graph)
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        out.append(Problem((), f"cycle {' -> '.join(names)}: the parent graph must be acyclic"))
    except nx.NetworkXNoCycle:
        pass
    return out
