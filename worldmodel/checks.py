"""The rules of SCENARIO.md that need more than one field to check.

:func:`check` works on a :class:`View`: the parts of a file that passed the
schema, plus the names of the parts that did not, so that one broken variable
does not hide the problems of the others and a reference to a broken part is
not reported as unknown.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from crux.worldmodel.errors import PathPart, Problem, shown, unknown
from crux.worldmodel.limits import limit, over
from crux.worldmodel.rows import join_key, missing_keys, row_problems, split_key, table_size
from crux.worldmodel.spec import UNKNOWN, AgentSpec, Fact, HumanSpec, Scenario, Variable


@dataclass
class View:
    """A possibly partial scenario: ``None`` marks a part present in the file but invalid."""

    variables: dict[str, Variable | None]
    decision: str | None = None
    outcomes: list[str] | None = None
    facts: dict[str, Fact | None] = field(default_factory=dict)
    parties: dict[str, AgentSpec | None] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)
    _state_sets: dict[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    def state_set(self, name: str) -> frozenset[str]:
        """A discrete variable's states as a set, made once: checking many row keys against a
        parent with many states must not cost rows x states."""
        if name not in self._state_sets:
            self._state_sets[name] = frozenset(self.variables[name].states or ())  # type: ignore[union-attr]
        return self._state_sets[name]

    @classmethod
    def of(cls, scenario: Scenario) -> View:
        return cls(
            variables=dict(scenario.world.variables),
            decision=scenario.world.decision,
            outcomes=list(scenario.world.outcomes),
            facts=dict(scenario.facts),
            parties={"agent": scenario.parties.agent, "human": scenario.parties.human},
            reference=dict(scenario.world.reference),
        )

    def var(self, name: str) -> Variable | None:
        return self.variables.get(name)


VARS: tuple[PathPart, ...] = ("world", "variables")


def check(view: View) -> list[Problem]:
    """Every cross-field problem of the (partial) scenario.

    Without any readable variables (the schema has already said why), names
    cannot be checked against them, so only the checks that need none run.
    """
    problems, too_large = _check_sizes(view)
    for name, variable in view.variables.items():
        if variable is not None and name not in too_large:
            problems += _check_variable(view, name, variable)
    # a variable with neither states nor a normal law is reported above; elsewhere it is unreadable
    shapeless = [n for n, v in view.variables.items() if v is not None and v.states is None and v.normal is None]
    if shapeless:
        view = View(
            {n: (None if n in shapeless else v) for n, v in view.variables.items()},
            view.decision, view.outcomes, view.facts, view.parties, view.reference,
        )
    problems += _check_cycles(view)
    problems += _check_world(view)
    for fact_id, fact in view.facts.items():
        if fact is not None:
            problems += _check_fact(view, fact_id, fact)
    for party, spec in view.parties.items():
        if spec is not None:
            problems += _check_party(view, party, spec)
    return problems


# -- variables ---------------------------------------------------------------------------


def _check_sizes(view: View) -> tuple[list[Problem], set[str]]:
    """Tables too large to list or allocate, found from the cardinalities alone (rows = the
    product of the parents' state counts), before any row is listed: each against
    ``MAX_TABLE_NUMBERS``, all together against ``MAX_MODEL_NUMBERS``.  Returns the problems and
    the variables whose rows must not be checked (checking the others walks the rows written in
    the file, never every combination, so it costs no more than reading the file)."""
    per_table, per_model = limit("MAX_TABLE_NUMBERS"), limit("MAX_MODEL_NUMBERS")
    out: list[Problem] = []
    too_large: set[str] = set()
    total = 0
    for name, v in view.variables.items():
        if v is None or v.states is None or name == view.decision:
            continue
        cards = []
        for parent in v.parents:
            pv = view.var(parent) if parent != name else None
            if pv is not None and pv.states is not None:
                cards.append(len(pv.states))
        rows, size = table_size(cards, len(v.states))
        total += size
        if size > per_table:
            too_large.add(name)
            out.append(
                Problem(
                    (*VARS, name),
                    f"{name}'s table would hold {rows:,} rows x {len(v.states):,} states = {size:,} numbers, "
                    f"{over('MAX_TABLE_NUMBERS')}: give it fewer parents or states",
                )
            )
    if not too_large and total > per_model:
        out.append(
            Problem(VARS, f"the tables would hold {total:,} numbers in all, {over('MAX_MODEL_NUMBERS')}: make the model smaller")
        )
    return out, too_large


def _check_variable(view: View, name: str, v: Variable) -> list[Problem]:
    at = (*VARS, name)
    if v.states is None and v.normal is None:
        return [Problem(at, "needs `states` (a discrete variable) or `normal` (a continuous one)")]
    if v.states is not None and v.normal is not None:
        return [Problem(at, "takes `states` (discrete) or `normal` (continuous), not both")]
    if v.normal is not None:
        return _check_continuous(view, name, v)
    out: list[Problem] = []
    for parent in v.parents:
        pv = view.var(parent)
        if pv is not None and pv.normal is not None:
            out.append(
                Problem((*at, "parents"), f"a discrete variable cannot depend on the continuous {parent}: discretise it")
            )
    if out:
        return out
    for state, n in Counter(v.states).items():
        if n > 1:
            out.append(Problem((*at, "states"), f"duplicate state {state!r}: states must be unique"))
    for i, state in enumerate(v.states):
        if "," in state or state != state.strip() or not state:
            out.append(
                Problem(
                    (*at, "states", i),
                    f"state {state!r} must be non-empty, without ',' (it separates row keys) "
                    "and without white space around it",
                )
            )
    known_parents = True
    for i, parent in enumerate(v.parents):
        if parent in view.variables and view.var(parent) is not None and view.var(parent).states is None:
            known_parents = False
        if parent == name:
            out.append(Problem((*at, "parents", i), f"{name} cannot be its own parent"))
            known_parents = False
        elif parent not in view.variables:
            out.append(Problem((*at, "parents", i), unknown("variable", parent, view.variables)))
            known_parents = False
        elif view.var(parent) is None:
            known_parents = False  # reported where that variable is
    for parent, n in Counter(v.parents).items():
        if n > 1:
            out.append(Problem((*at, "parents"), f"parent {parent!r} is listed {n} times"))
            known_parents = False

    if name == view.decision:
        for key, present in (("prior", v.prior is not None), ("parents", bool(v.parents)), ("table", v.table is not None)):
            if present:
                out.append(
                    Problem((*at, key), f"{name} is the decision: a root without a prior (its states are the actions); remove `{key}`")
                )
        return out
    if v.parents:
        if v.prior is not None:
            out.append(Problem((*at, "prior"), "a variable with parents takes a `table`, not a `prior`"))
        if v.table is None:
            out.append(Problem(at, "has parents but no `table`: give one row per combination of parent states"))
    else:
        if v.table is not None:
            out.append(Problem((*at, "table"), "a table needs `parents`; a root variable takes a `prior`"))
        if v.prior is None:
            out.append(
                Problem(at, f"a root variable needs a `prior` (or name it as world.decision if it is the decision)")
            )
    if not math.isfinite(v.strength):
        out.append(Problem((*at, "strength"), f"strength {v.strength} must be a positive finite number"))
    if out:  # bad states or parents: rows cannot be read against them yet
        return out
    if v.prior is not None and not v.parents:
        out += [Problem((*at, "prior"), m) for m in row_problems(v.prior, v.states)]
    if v.table is not None and v.parents and known_parents:
        out += _check_rows(view, (*at, "table"), name, v, v.table, complete=True)
    for key, n in v.row_strength.items():
        where = (*at, "row_strength", key)
        if not math.isfinite(n) or n <= 0:
            out.append(Problem(where, f"strength {n} must be a positive number"))
        elif not v.parents and key != "":
            out.append(Problem(where, 'a root variable has one row, the prior: key it ""'))
        elif v.parents and known_parents:
            out += _check_rows(view, (*at, "row_strength"), name, v, {key: None}, complete=False)
    return out


def _check_continuous(view: View, name: str, v: Variable) -> list[Problem]:
    """A normal variable: no prior or table; every parent weighted (continuous) or offset (discrete)."""
    at = (*VARS, name)
    normal = v.normal
    assert normal is not None
    out: list[Problem] = []
    if name == view.decision:
        return [Problem(at, f"{name} is the decision: it needs discrete `states` (the actions)")]
    for key in ("prior", "table"):
        if getattr(v, key) is not None:
            out.append(Problem((*at, key), f"a continuous variable takes `normal`, not `{key}`"))
    if v.row_strength:
        out.append(Problem((*at, "row_strength"), "a continuous variable has no rows"))
    for i, parent in enumerate(v.parents):
        if parent not in view.variables:
            out.append(Problem((*at, "parents", i), unknown("variable", parent, view.variables)))
            continue
        pv = view.var(parent)
        if pv is None:
            continue
        if pv.normal is not None and parent not in normal.weights:
            out.append(Problem((*at, "normal", "weights"), f"give a weight for the continuous parent {parent}"))
        if pv.normal is None and parent in normal.weights:
            out.append(Problem((*at, "normal", "weights", parent), f"{parent} is discrete: give `offsets` per state"))
        for state in normal.offsets.get(parent, {}):
            if pv.states is not None and state not in pv.states:
                out.append(Problem((*at, "normal", "offsets", parent, state), unknown(f"state of {parent}", state, pv.states)))
    for key in (*normal.weights, *normal.offsets):
        if key not in v.parents:
            out.append(Problem((*at, "normal"), f"{key!r} is weighted but not listed in `parents`"))
    numbers: list[tuple[tuple[PathPart, ...], float]] = [
        (("intercept",), normal.intercept),
        (("scale",), normal.scale),
        *((("weights", k), w) for k, w in normal.weights.items()),
        *((("offsets", k, state), o) for k, by_state in normal.offsets.items() for state, o in by_state.items()),
    ]
    for where, x in numbers:
        if not math.isfinite(x):
            out.append(Problem((*at, "normal", *where), f"{x} is not a finite number"))
    return out


def _check_rows(
    view: View, at: tuple[PathPart, ...], name: str, v: Variable, rows: dict[str, list[float] | None], complete: bool
) -> list[Problem]:
    """Row keys against the parents' states, each row's numbers (None: a key alone), and (for
    tables) coverage.  Only the rows given are walked; missing rows are counted, and the first
    few found without listing every combination."""
    parent_states = [view.variables[p].states for p in v.parents]  # type: ignore[union-attr]
    state_sets = [view.state_set(p) for p in v.parents]
    out: list[Problem] = []
    seen: dict[tuple[str, ...], str] = {}
    for key, row in rows.items():
        parts = split_key(key)
        if len(parts) != len(v.parents):
            example = join_key([f"<{p} state>" for p in v.parents])
            out.append(
                Problem(
                    (*at, key),
                    f"row key names {len(parts)} state{'s' if len(parts) != 1 else ''} for "
                    f"{len(v.parents)} parent{'s' if len(v.parents) != 1 else ''} ({', '.join(v.parents)}): "
                    f"write it as \"{example}\"",
                )
            )
            continue
        bad = False
        for parent, states, known, part in zip(v.parents, parent_states, state_sets, parts):
            if part not in known:
                out.append(Problem((*at, key), unknown(f"state of {parent}", part, states)))
                bad = True
        if bad:
            continue
        if parts in seen:
            out.append(Problem((*at, key), f"repeats row {seen[parts]!r} of {name}"))
            continue
        seen[parts] = key
        if row is not None:
            out += [Problem((*at, key), m) for m in row_problems(row, v.states)]
    if complete:
        count, first = missing_keys(parent_states, seen, 10)
        for key in first:
            out.append(Problem(at, f"missing row \"{join_key(key)}\": every combination of parent states needs a row"))
        if count > 10:
            out.append(Problem(at, f"... and {count - 10} more missing rows"))
    return out


def _check_cycles(view: View) -> list[Problem]:
    graph = nx.DiGraph()
    for name, v in view.variables.items():
        if v is not None:
            graph.add_edges_from((p, name) for p in v.parents if p in view.variables and p != name)
    if nx.is_directed_acyclic_graph(graph):
        return []
    cycle = nx.find_cycle(graph)
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    return [
        Problem(
            (*VARS, cycle[-1][1], "parents"),
            f"cycle {' -> '.join(names)}: the parent graph must be acyclic (remove one of these edges)",
        )
    ]


def _check_world(view: View) -> list[Problem]:
    out: list[Problem] = []
    if not view.variables:
        return out
    if view.decision is not None and view.decision not in view.variables:
        out.append(Problem(("world", "decision"), unknown("variable", view.decision, view.variables)))
    for i, outcome in enumerate(view.outcomes or []):
        if outcome not in view.variables:
            out.append(Problem(("world", "outcomes", i), unknown("variable", outcome, view.variables)))
        elif outcome == view.decision:
            out.append(Problem(("world", "outcomes", i), "the decision cannot be an outcome: outcomes are what actions lead to"))
    for outcome, n in Counter(view.outcomes or []).items():
        if n > 1:
            out.append(Problem(("world", "outcomes"), f"outcome {outcome!r} is listed {n} times"))
    for outcome, state in view.reference.items():
        where = ("world", "reference", outcome)
        if view.outcomes is not None and outcome not in view.outcomes:
            out.append(Problem(where, unknown("outcome", outcome, view.outcomes)))
        elif (v := view.var(outcome)) is not None:
            if v.states is None:
                out.append(Problem(where, f"{outcome} is continuous: only a discrete outcome has a reference state"))
            elif state not in v.states:
                out.append(Problem(where, unknown(f"state of {outcome}", state, v.states)))
    return out


def reference_of(view: View, outcome: str) -> str | None:
    """The outcome's reference state as the file gives it (its first state unless world.reference names one)."""
    v = view.var(outcome)
    if v is None or v.states is None:
        return None
    return view.reference.get(outcome, v.states[0])


# -- facts -------------------------------------------------------------------------------


def _state_problem(view: View, at: tuple[PathPart, ...], var: str, state: str, *, chosen_ok: bool = False) -> list[Problem]:
    """Problems of naming ``var = state`` (an unknown variable or state)."""
    if not view.variables:
        return []
    if var not in view.variables:
        return [Problem(at, unknown("variable", var, view.variables))]
    v = view.var(var)
    if v is None:
        return []
    if var == view.decision and not chosen_ok:
        return [Problem(at, f"{var} is the decision: it is chosen, not observed")]
    if v.states is None:
        return [Problem((*at, var), f"{var} is continuous: facts speak of discrete variables (ask with --given {var}=VALUE)")]
    if state not in v.states:
        return [Problem((*at, var), unknown(f"state of {var}", state, v.states))]
    return []


def _check_fact(view: View, fact_id: str, fact: Fact) -> list[Problem]:
    at: tuple[PathPart, ...] = ("facts", fact_id)
    out: list[Problem] = []
    if (fact.observe is None) == (fact.counts is None):
        return [Problem(at, "a fact takes exactly one of `observe` (about the case) or `counts` (about the world)")]
    if fact.reliability is not None:
        if fact.counts is not None:
            out.append(
                Problem((*at, "reliability"), "reliability applies to observe facts; a counts fact weighs by its counts")
            )
        elif not (0.0 <= fact.reliability <= 1.0) or math.isnan(fact.reliability):
            out.append(Problem((*at, "reliability"), f"reliability {fact.reliability} is out of range: use a probability in [0, 1]"))
    if fact.observe is not None:
        if not fact.observe:
            out.append(Problem((*at, "observe"), "observes nothing: give {variable: state}"))
        for var, state in fact.observe.items():
            out += _state_problem(view, (*at, "observe"), var, state)
        return out
    counts = fact.counts
    assert counts is not None  # one of the two, checked above
    at = (*at, "counts")
    if not view.variables:
        return out
    if counts.variable not in view.variables:
        return out + [Problem((*at, "variable"), unknown("variable", counts.variable, view.variables))]
    v = view.var(counts.variable)
    if v is None:
        return out
    if counts.variable == view.decision:
        return out + [Problem((*at, "variable"), f"{counts.variable} is the decision: it has no table to count")]
    if v.states is None:
        return out + [Problem((*at, "variable"), f"{counts.variable} is continuous: it has no table to count")]
    for parent in counts.given:
        if parent not in v.parents:
            out.append(
                Problem(
                    (*at, "given", parent),
                    f"{parent!r} is not a parent of {counts.variable} "
                    f"(parents: {shown(v.parents) or 'none, so `given` must be empty'})",
                )
            )
    missing = [p for p in v.parents if p not in counts.given]
    if missing:
        out.append(
            Problem(
                (*at, "given"),
                f"does not select one row of {counts.variable}: give a state for every parent; missing {shown(missing)}",
            )
        )
    for parent, state in counts.given.items():
        if parent in v.parents:
            out += _state_problem(view, (*at, "given"), parent, state, chosen_ok=True)
    for state, n in counts.counts.items():
        if state not in v.states:
            out.append(Problem((*at, "counts", state), unknown(f"state of {counts.variable}", state, v.states)))
        elif not math.isfinite(n) or n < 0:
            out.append(Problem((*at, "counts", state), f"count {n} must be a non-negative number"))
    if all(math.isfinite(n) and n >= 0 for n in counts.counts.values()) and sum(counts.counts.values()) <= 0:
        out.append(Problem((*at, "counts"), "all counts are 0: the fact adds nothing"))
    return out


# -- parties -----------------------------------------------------------------------------


def _check_party(view: View, party: str, spec: AgentSpec) -> list[Problem]:
    at: tuple[PathPart, ...] = ("parties", party)
    out: list[Problem] = []
    for var, override in spec.beliefs.priors.items():
        where = (*at, "beliefs", "priors", var)
        if not view.variables:
            break
        if var not in view.variables:
            out.append(Problem(where, unknown("variable", var, view.variables)))
            continue
        v = view.var(var)
        if v is None:
            continue
        if var == view.decision:
            out.append(Problem(where, f"{var} is the decision: it has no prior to override"))
        elif v.states is None:
            out.append(Problem(where, f"{var} is continuous: it has no prior or rows to override"))
        elif not v.parents:
            if isinstance(override, dict):
                out.append(Problem(where, f"{var} is a root variable: give its prior as a list [p1, p2, ...]"))
            else:
                out += [Problem(where, m) for m in row_problems(override, v.states)]
        elif isinstance(override, list):
            out.append(Problem(where, f"{var} has parents: give rows as {{\"row key\": [p1, p2, ...]}}"))
        elif all(view.var(p) is not None for p in v.parents if p in view.variables) and all(
            p in view.variables for p in v.parents
        ):
            out += _check_rows(view, where, var, v, override, complete=False)
    for i, fact_id in enumerate(spec.beliefs.knows):
        if fact_id not in view.facts:
            out.append(Problem((*at, "beliefs", "knows", i), unknown("fact", fact_id, view.facts)))
    for fact_id, n in Counter(spec.beliefs.knows).items():
        if n > 1:
            out.append(Problem((*at, "beliefs", "knows"), f"fact {fact_id!r} is listed {n} times"))
    out += _check_values(view, (*at, "values"), spec.values)
    if party != "human" and (spec.values == UNKNOWN or _unknown_outcomes(view, spec.values)):
        where, shape = (*at, "values"), "{outcome: {state: utility}}"
        if spec.values != UNKNOWN:
            where, shape = (*where, _unknown_outcomes(view, spec.values)[0]), "{state: utility}"
        out.append(
            Problem(
                where,
                f"only the human's values may be `unknown` (a session asks the human for them): state the {party}'s "
                f"utilities {shape} (in a predict-only session they are never read: leave `values` out)",
            )
        )
    if isinstance(spec, HumanSpec):
        responds = spec.responds
        out += _check_values(view, (*at, "responds", "values"), responds.values)
        asked = _unknown_outcomes(view, spec.values)
        if responds.values and not asked:
            out.append(
                Problem(
                    (*at, "responds", "values"),
                    "the human's values are all stated, so no value question is asked: remove responds.values, "
                    "or mark the outcomes to ask about `unknown` in parties.human.values",
                )
            )
        elif spec.values != UNKNOWN:
            for outcome in responds.values:
                if outcome not in asked and outcome in (view.outcomes or []):
                    listed = "" if outcome in spec.values else " (an unlisted outcome is 0)"
                    out.append(
                        Problem(
                            (*at, "responds", "values", outcome),
                            f"the human's values of {outcome} are stated in parties.human.values{listed}: responds.values "
                            f"gives the outcomes marked `unknown` there ({shown(asked)}); remove {outcome} here "
                            "or mark it `unknown` there",
                        )
                    )
        out += _check_signs(view, at, spec, asked)
        for i, fact_id in enumerate(responds.rejects):
            if fact_id not in view.facts:
                out.append(Problem((*at, "responds", "rejects", i), unknown("fact", fact_id, view.facts)))
        sources = sorted({f.source for f in view.facts.values() if f is not None})
        for i, source in enumerate(responds.rejects_sources):
            if source not in sources and all(f is not None for f in view.facts.values()):
                out.append(Problem((*at, "responds", "rejects_sources", i), unknown("source", source, sources)))
    return out


def _check_signs(view: View, at: tuple[PathPart, ...], spec: HumanSpec, asked: list[str]) -> list[Problem]:
    """``value_signs``: OUTCOME=state entries of outcomes whose values are asked, never the reference
    state, never both worse and better."""
    out: list[Problem] = []
    seen: dict[str, str] = {}
    for side in ("worse", "better"):
        for i, entry in enumerate(getattr(spec.value_signs, side)):
            where = (*at, "value_signs", side, i)
            outcome, sep, state = (part.strip() for part in entry.partition("="))
            if not sep or not outcome or not state:
                out.append(Problem(where, f"{entry!r}: write OUTCOME=state, e.g. harm=cat"))
                continue
            if view.outcomes is None or view.var(outcome) is None:
                if view.outcomes is not None and outcome not in view.outcomes:
                    out.append(Problem(where, unknown("outcome", outcome, view.outcomes)))
                continue
            if outcome not in view.outcomes:
                out.append(Problem(where, unknown("outcome", outcome, view.outcomes)))
                continue
            states = view.var(outcome).states  # type: ignore[union-attr]
            if states is None:
                out.append(Problem(where, f"{outcome} is continuous: signs are of the states of discrete outcomes"))
            elif state not in states:
                out.append(Problem(where, unknown(f"state of {outcome}", state, states)))
            elif state == reference_of(view, outcome):
                out.append(Problem(where, f"{outcome}={state} is the reference state (utility 0): it is neither worse nor better"))
            elif outcome not in asked:
                out.append(
                    Problem(where, f"the human's values of {outcome} are stated: their signs follow from the numbers; remove {entry}")
                )
            elif seen.get(f"{outcome}={state}", side) != side:
                out.append(Problem(where, f"{outcome}={state} is listed as both worse and better: keep one"))
            seen[f"{outcome}={state}"] = side
    return out


def _unknown_outcomes(view: View, values: object) -> list[str]:
    """The outcomes a party's values mark `unknown` (every outcome for `values: unknown`)."""
    if values == UNKNOWN:
        return list(view.outcomes or [])
    return [o for o, u in values.items() if u == UNKNOWN]  # type: ignore[union-attr]


def _check_values(view: View, at: tuple[PathPart, ...], values: object) -> list[Problem]:
    """Outcomes and states of a values mapping ({outcome: {state: utility} or `unknown`})."""
    out: list[Problem] = []
    if values == UNKNOWN or not view.variables or view.outcomes is None:
        return out
    for outcome, utilities in values.items():  # type: ignore[union-attr]
        where = (*at, outcome)
        if outcome not in view.outcomes:
            hint = f"; add it to world.outcomes to score it" if outcome in view.variables else ""
            out.append(Problem(where, unknown("outcome", outcome, view.outcomes) + hint))
            continue
        v = view.var(outcome)
        if v is None:
            continue
        if v.states is None:
            out.append(Problem(where, f"{outcome} is continuous: values score the states of discrete outcomes"))
            continue
        if utilities == UNKNOWN:
            continue
        for state, utility in utilities.items():
            if state not in v.states:
                out.append(Problem((*where, state), unknown(f"state of {outcome}", state, v.states)))
            elif not math.isfinite(utility):
                out.append(Problem((*where, state), f"utility {utility} is not a finite number"))
    return out
