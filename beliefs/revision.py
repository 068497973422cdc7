"""World revision: follow a stream of observations of a scene, keep a posterior over what each
watched entity *is*, and re-type it when the evidence turns.

Beliefs about what the entities are.  The scene is unrolled as many steps as the stream has
(``steps`` = the largest ``t``) and the observations are taken in time order (a stable sort on
``t``: within a step, in the order of the file).  Every entity the stream observes is
*watched*.

**The running posterior over its type.**  A watched entity's candidate types are its type in
the scene, every type of the library (the scene's own types and those of its ``use`` files,
whether or not an entity has them yet) and its *new kind* (:mod:`beliefs.newkind`: its scene
type's attributes with uniform Dirichlet rows, learning from its own observations).  A
candidate whose scene does not ground (a relation, fact or outcome reads an attribute it lacks)
is left out and said so.  Each candidate ``h`` is a scene, the entity re-typed ``h`` and every
other entity as typed now, and its evidence is the running product of predictive probabilities
(Bayesian model comparison over a stream)::

    log L(h) += log P(o_i | o_1 .. o_{i-1}, h)        for every observation o_i

each predictive filtered by the oracle over the unrolled scene (the entity's own dynamics, and
whatever relates it to the others).  An observation of an entity its type does not touch has the
same predictive under every candidate and cancels.  With a uniform prior over the candidates the
posterior after ``o_i`` is ``L(h) / sum L``, equal to ``P(h | o_1 .. o_i)`` by enumeration
(tests/beliefs/test_revision.py).  While several entities are watched, each one's candidates hold
the others at their types of the moment.

**Adoption.**  After each observation an entity is re-typed to the candidate whose posterior is
at least ``adopt`` (default 0.9), not at the first surprise; a later re-typing happens the same
way when the evidence turns.  A type that gives an observation probability 0 is ruled out: an
entity so typed is re-typed to the most probable candidate at once.  An observation that no
candidate can explain (a static attribute seen in two states) moves no posterior.

**Flags.**  An observation is flagged

- for *surprise* when ``-log p`` under the entity's type is at or beyond the model's own 1%
  tail (:func:`threshold`; ties count), so that were the type right, at most 1% of observations
  would be; an observation of probability 0 always is;
- for *evidence* when it takes the Bayes factor of the best other candidate against the
  entity's type to ``bayes_factor`` (default 100) or further.  Were the type right, the
  likelihood ratio of any one alternative is a martingale, and by Ville's inequality the chance
  that it ever reaches 100 is at most 1%: the same level as the surprise rule, spent once per
  stream rather than once per observation.  It catches the type that is wrong by many
  observations each merely unlikely, none in the tail.

**Batches.**  The evidence is kept as running sums, never recomputed: each observation adds
one term per candidate.  Each scene's filter asks for the predictive of every remaining
observation as one batch of oracle queries (evidence as one-hot likelihoods, so that queries
about one variable share one structure), supposing each is conditioned on in turn; it is redone
from an observation the scene gives probability 0 (not conditioned on).  A scene is grounded
and filtered once for all the candidates that share it (the entity's own type is every entity's
current scene); a re-typing brings new scenes for the other entities' candidates, each one
batch over the stream.  :meth:`Watch.run_many` asks the first batch of many streams of one
scene as one oracle call.  Each query is its own contraction over the unrolled scene, so a
stream of ``n`` observations costs ``n`` contractions per candidate, not one forward pass.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crux.beliefs.newkind import NewKind, family_counts, learned_type, new_kind
from crux.beliefs.thresholds import ADOPT, BAYES_FACTOR, LEVEL, settings_problem
from crux.oracle.exact import ImpossibleEvidence
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel.compile import BeliefState
from crux.worldmodel.entities import library_types
from crux.worldmodel.errors import CruxError, ModelError, Problem, render_path, unknown
from crux.worldmodel.files import read_data, read_text
from crux.worldmodel.jsontext import NotStandardJson
from crux.worldmodel.jsontext import loads as strict_json
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model
from crux.worldmodel.spec import EntityType, Scenario

KEYS = ("t", "entity", "attribute", "value")

TIE = 1e-9
"""Surprises closer than this (nats) are one: predictives computed by different paths differ in
their last bits, and a tie must not be split by rounding."""


@dataclass(frozen=True)
class Observation:
    """What was seen: ``entity.attribute`` was ``value`` at step ``t`` (``line`` of the stream file)."""

    t: int
    entity: str
    attribute: str
    value: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.entity}.{self.attribute}={self.value} at t={self.t}"


# -- the threshold -----------------------------------------------------------------------------


def threshold(p: Sequence[float], level: float = LEVEL) -> float | None:
    """Where the model's own ``level`` tail of surprise begins: the smallest surprise ``s`` of a
    state such that the states at least as surprising, ``P(S >= s)`` for ``S = -log P(X)`` and
    ``X ~ P``, carry at most ``level``; None when even the rarest state is more common than that.

    An observation is flagged when its surprise is at or beyond it (ties count), so that were
    the model right, at most ``level`` of observations would be.  For ``P = [0.9, 0.095, 0.005]``
    (surprises 0.105, 2.354, 5.298) ``P(S >= 5.298) = 0.005``, so the threshold is ``-log 0.005``:
    only that state is flagged.  For ``[0.93, 0.04, 0.02, 0.005, 0.005]`` the rarest two carry 1%
    together and are both flagged; the state of 2% is not in the tail (3% of the mass is at least
    as surprising).  For ``[0.5, 0.5]`` nothing is.  States of probability 0 are never expected:
    always beyond the threshold.
    """
    probs = [float(x) for x in p if x > 0]
    if not probs:
        raise ValueError("a predictive distribution needs a state of positive probability")
    for s in sorted({_surprise(x) for x in probs}):
        if sum(x for x in probs if _surprise(x) >= s - TIE) <= level * (1 + TIE):
            return s
    return None


def beyond(surprise: float | None, limit: float | None) -> bool:
    """Whether an observation's surprise (None: probability 0) is at or beyond the threshold."""
    return surprise is None or (limit is not None and surprise >= limit - TIE)


def _surprise(p: float) -> float:
    """``-log p`` in nats (0.0, not -0.0, for a certain outcome)."""
    return -math.log(p) if p < 1 else 0.0


# -- reading a stream ----------------------------------------------------------------------------


def read_observations(path: str | Path) -> list[Observation]:
    """The observations of a JSON-lines file, one ``{"t", "entity", "attribute", "value"}``
    object a line (blank lines skipped); errors say ``FILE: line N: ...``."""
    text = read_text(path, "a file of observations")
    return parse_observations(text.splitlines(), source=str(path))


def parse_observations(lines: Iterable[str], source: str = "observations") -> list[Observation]:
    """Observations from JSON lines; ``source`` names them in errors."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}: line {n}"
        try:
            record = strict_json(line)
        except json.JSONDecodeError as err:
            raise CruxError(f"{where}: not valid JSON: {err.msg} (column {err.colno})") from None
        except NotStandardJson as err:
            raise CruxError(f"{where}: {err}") from None
        except RecursionError:
            raise CruxError(f"{where}: nested too deeply: one observation object a line") from None
        if not isinstance(record, dict):
            raise CruxError(f"{where}: an observation is an object {{\"t\", \"entity\", \"attribute\", \"value\"}}")
        for key in record:
            if key not in KEYS:
                raise CruxError(f"{where}: {unknown('key', key, KEYS)}")
        for key in KEYS:
            if key not in record:
                raise CruxError(f"{where}: missing key {key!r}")
        t = record["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise CruxError(f"{where}: t must be a step number 0, 1, 2, ..., got {t!r}")
        for key in KEYS[1:]:
            if not isinstance(record[key], str):
                raise CruxError(f"{where}: {key} must be a string, got {record[key]!r} (quote it)")
        out.append(Observation(t, record["entity"], record["attribute"], record["value"], n))
    if not out:
        raise CruxError(f"{source}: no observations")
    return out



# -- a scene, as typed by one assignment, and its filter ---------------------------------------------


class _Scene:
    """The scene grounded with one assignment of types to entities, and its oracle.  The entities
    typed as a new kind (``kinds``) have rows that learn: each query adds the counts of their
    complete families in its evidence to their prior."""

    def __init__(self, scenario: Scenario, device: str, kinds: Iterable[NewKind] = ()):
        self.scenario = scenario
        self.model = Model.from_scenario(scenario)
        self.oracle = Oracle(self.model, device=device)
        network = self.model.network
        self.kinds = [(kind, kind.families(network)) for kind in kinds]
        self._hot: dict[tuple[str, int], torch.Tensor] = {}

    def variable(self, obs: Observation) -> str | None:
        """The variable an observation is about (None if the entity's type lacks the attribute)."""
        states = self.model.network.states
        for name in (f"{obs.entity}.{obs.attribute}@{obs.t}", f"{obs.entity}.{obs.attribute}"):
            if name in states:
                return name
        return None

    def index(self, obs: Observation) -> tuple[str, int] | None:
        """(variable, state index) of an observation, None if this scene cannot express it."""
        var = self.variable(obs)
        if var is None or obs.value not in self.model.network.states[var]:
            return None
        return var, self.model.network.states[var].index(obs.value)

    def predict(
        self, requests: Sequence[tuple[str, Mapping[str, int]]], party: str, do: Mapping[str, str]
    ) -> list[torch.Tensor | None]:
        """``P(target | do, evidence)`` for each (target, evidence) as one batch; None where the
        evidence has probability 0."""
        if not requests:
            return []
        base = self.model.beliefs(party)  # type: ignore[arg-type]
        queries = [Query(do=dict(do), outcomes=[target], as_=party) for target, _ in requests]  # type: ignore[arg-type]
        states = [self.beliefs(base, evidence) for _, evidence in requests]
        try:
            answers = self.oracle.posterior_means(queries, states)
        except ImpossibleEvidence:  # raised as such for a single query
            if len(requests) == 1:
                return [None]
            raise
        except QueryError:
            if len(requests) == 1:
                raise
            # a batch reports impossible evidence as a plain QueryError: find which, one by one
            # (any other error comes back from the first query it concerns)
            return [p for r in requests for p in self.predict([r], party, do)]
        return [a[target] for a, (target, _) in zip(answers, requests)]

    def beliefs(self, base: BeliefState, evidence: Mapping[str, int]) -> BeliefState:
        """A party's beliefs with hard evidence as one-hot likelihoods, and the new kinds' rows
        learned from the evidence."""
        network = self.model.network
        likelihood = dict(base.likelihood)
        for var, index in evidence.items():
            hot = self._hot.get((var, index))
            if hot is None:  # made once per state: the oracle never writes into them
                hot = self._hot[var, index] = torch.zeros(network.card(var), dtype=torch.float64)
                hot[index] = 1.0
            likelihood[var] = likelihood[var] * hot if var in likelihood else hot
        concentration = base.concentration
        if self.kinds:
            concentration = dict(concentration)
            for kind, families in self.kinds:
                counts = family_counts(kind, families, network, evidence)
                for var, _, table in families:
                    if table in counts:
                        concentration[var] = concentration[var] + counts[table]
        return BeliefState(concentration=concentration, likelihood=likelihood, normal=base.normal, certain=base.certain)

    def counts(self, entity: str, evidence: Mapping[str, int]) -> dict:
        """The counts of a new-kind entity's complete families in ``evidence``, by table."""
        for kind, families in self.kinds:
            if kind.entity == entity:
                return family_counts(kind, families, self.model.network, evidence)
        return {}


class _Filter:
    """One scene's filter over the stream: the predictive of each observation given the earlier
    ones it conditions on (those it gives a positive probability), a batch at a time."""

    def __init__(self, scene: _Scene, stream: Sequence[Observation], party: str, do: Mapping[str, str]):
        self.scene, self.stream, self.party, self.do = scene, stream, party, do
        self.p: list[float] = []
        """The predictive probability of each observation so far (0: impossible, not conditioned on)."""
        self.predictive: list[torch.Tensor | None] = []
        """Its whole predictive distribution (None: the entity's type lacks the attribute)."""
        self.evidence: dict[str, int] = {}
        """The observations conditioned on so far: {variable: state index}."""

    def at(self, i: int) -> float:
        """The predictive probability of observation ``i``."""
        while len(self.p) <= i:
            _batch([self])
        return self.p[i]

    def requests(self) -> tuple[list[tuple[str, dict[str, int]]], list[int | None]]:
        """The predictive of every remaining observation, each given those before it: the
        (variable, evidence) to ask, and each observation's place among them (None: its
        entity's type lacks the attribute)."""
        evidence = dict(self.evidence)
        requests, slots = [], []
        for obs in self.stream[len(self.p):]:
            var, at = self.scene.variable(obs), self.scene.index(obs)
            slots.append(None if var is None else len(requests))
            if var is not None:
                requests.append((var, dict(evidence)))
            if at is not None:
                evidence[at[0]] = at[1]
        return requests, slots

    def take(self, answers: Sequence[torch.Tensor | None], slots: Sequence[int | None]) -> None:
        """Keep the answers to :meth:`requests` up to the first observation that turns out
        impossible (the later ones took it as evidence: they are asked again)."""
        start = len(self.p)
        for obs, slot in zip(self.stream[start:], slots):
            predictive = None if slot is None else answers[slot]
            at = self.scene.index(obs)
            p = float(predictive[at[1]]) if predictive is not None and at is not None else 0.0
            self.p.append(p)
            self.predictive.append(predictive)
            if p > 0:
                self.evidence[at[0]] = at[1]  # type: ignore[index]
            elif at is not None:
                return


def _batch(filters: Sequence[_Filter]) -> None:
    """Advance filters of one scene (of one stream or several) with one oracle call."""
    asked, parts = [], []
    for f in filters:
        requests, slots = f.requests()
        parts.append((f, len(asked), slots))
        asked += requests
    answers = filters[0].scene.predict(asked, filters[0].party, filters[0].do)
    for f, start, slots in parts:
        f.take(answers[start:], slots)


# -- the comparison of one entity's types ---------------------------------------------------------


@dataclass
class _Types:
    """The running comparison of one watched entity's candidate types."""

    entity: str
    log_likelihood: dict[str, float]
    """Each live candidate's ``log P(observations so far)``; -inf once ruled out."""
    kind: NewKind | None
    skipped: dict[str, str] = field(default_factory=dict)
    """Candidates left out, and why (their scene does not ground)."""
    terms: dict[str, list[float]] = field(default_factory=dict)
    """Each candidate's ``log p`` of every observation so far (0 where none could explain it)."""
    log_bf: float = -math.inf
    """The evidence against the entity's type after the last observation (log Bayes factor)."""

    def posterior(self) -> dict[str, float]:
        """``P(type | observations so far)`` under a uniform prior, most probable first."""
        finite = [v for v in self.log_likelihood.values() if v > -math.inf]
        if not finite:
            return {h: 0.0 for h in self.log_likelihood}
        top = max(finite)
        weights = {h: math.exp(v - top) if v > -math.inf else 0.0 for h, v in self.log_likelihood.items()}
        total = sum(weights.values())
        return dict(sorted(((h, w / total) for h, w in weights.items()), key=lambda kv: -kv[1]))

    def against(self, current: str) -> tuple[str | None, float]:
        """The best other candidate and the log Bayes factor for it against ``current``."""
        others = {h: v for h, v in self.log_likelihood.items() if h != current}
        if not others:
            return None, -math.inf
        best = max(others, key=lambda h: others[h])
        mine = self.log_likelihood.get(current, -math.inf)
        if others[best] == -math.inf:
            return best, -math.inf
        return best, math.inf if mine == -math.inf else others[best] - mine

    def moved_by(self, stream: Sequence[Observation], old: str, new: str, most: int = 3) -> list[dict[str, Any]]:
        """The observations that counted most for ``new`` against ``old``, largest first."""
        old_terms, new_terms = self.terms.get(old, []), self.terms.get(new, [])
        moved = []
        for obs, a, b in zip(stream, old_terms, new_terms):
            gain = math.inf if a == -math.inf and b > -math.inf else b - a
            if gain > 0:
                moved.append((gain, obs))
        moved.sort(key=lambda g: -g[0])
        return [
            {"t": o.t, "entity": o.entity, "attribute": o.attribute, "value": o.value, "log_bf": _finite(g)}
            for g, o in moved[:most]
        ]


def _why(problems: Sequence[Problem]) -> str:
    """Why a candidate's scene does not ground, in one line: its first problem, without the
    list of valid names (the full story is in ``crux validate`` of a scene so typed)."""
    first = problems[0]
    message = first.message.split("; did you mean")[0].split(" (valid:")[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{render_path(first.path)}: {message}{more}" if first.path else message + more


def _finite(x: float) -> float | None:
    """A number for JSON: None for an infinite one."""
    return x if math.isfinite(x) else None


# -- the filter ------------------------------------------------------------------------------------


@dataclass
class WatchReport:
    """What :func:`watch` found (see there)."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    types: dict[str, str]
    """Every entity's type at the end of the stream."""
    learned: dict[str, dict]
    """The new kinds entities were re-typed to, as library types: ``{name: type}``, each row its
    prior plus the counts of the entity's observations."""
    scene: dict
    """The scene's data with the entities as re-typed (the new kinds, learned, among its ``types``)."""
    steps: int
    """How far the scene was unrolled (the largest ``t`` of the stream)."""


class Watch:
    """A filter over one scene file with a posterior over its entities' types: :meth:`run`
    follows a stream of observations, :meth:`run_many` several as one batch (see the module's
    docstring).  Scenes are grounded once per assignment of types and kept for later streams."""

    def __init__(
        self,
        path: str | Path,
        *,
        party: str | None = None,
        do: Mapping[str, str] | None = None,
        device: str = "cpu",
        level: float = LEVEL,
        adopt: float = ADOPT,
        bayes_factor: float = BAYES_FACTOR,
        data: Mapping[str, Any] | None = None,
    ):
        problem = settings_problem(adopt, bayes_factor, level)
        if problem is not None:
            raise CruxError(problem)
        self.path = Path(path)
        self.data = read_data(self.path) if data is None else data
        """The scene file's data (``data`` stands in for the file, read from ``path``'s folder)."""
        if not isinstance(self.data, Mapping):
            raise CruxError(f"{self.path}: not a scenario file")
        self.device = device
        self.level, self.adopt, self.bayes_factor = level, adopt, bayes_factor
        self.party = party
        self.do = dict(do or {})
        self._scenes: dict[tuple, _Scene | list[str]] = {}
        self._library: dict[int, tuple[Scenario, dict[str, EntityType], dict[str, Any]]] = {}

    def scene(self, types: Mapping[str, str], steps: int, kinds: Mapping[str, NewKind]) -> _Scene | list[str]:
        """The scene with these entity types unrolled ``steps`` steps (``kinds``: the new kinds
        by name, for those typed so), or why it does not ground."""
        used = {name: kinds[name] for name in dict.fromkeys(types.values()) if name in kinds}
        key = (
            steps,
            tuple(sorted(types.items())),
            tuple(sorted((name, json.dumps(kind.spec, sort_keys=True)) for name, kind in used.items())),
        )
        if key not in self._scenes:
            data = copy.deepcopy(self.base(steps)[2])
            data["entities"] = dict(types)
            data["types"].update({name: kind.spec for name, kind in used.items()})
            scenario, problems = validate_data(data, base_dir=self.path.parent, steps=steps)
            if scenario is None:
                self._scenes[key] = [_why(problems)]
            else:
                self._scenes[key] = _Scene(scenario, self.device, used.values())
        return self._scenes[key]

    def base(self, steps: int) -> tuple[Scenario, dict[str, EntityType], dict[str, Any]]:
        """The scene file unrolled ``steps`` steps, the types it can use, and its data with those
        types written in (so that no re-typed scene reads its ``use`` files again)."""
        if steps not in self._library:
            scenario, problems = validate_data(self.data, base_dir=self.path.parent, steps=steps)
            if scenario is None:
                raise ModelError(str(self.path), problems)
            if not scenario.entities:
                raise CruxError(f"{self.path}: has no entities to watch: crux watch needs a scene (types, entities)")
            library, _ = library_types(scenario, self.path.parent)
            inlined = {k: v for k, v in self.data.items() if k != "use"}
            inlined["types"] = {name: spec.model_dump(exclude_defaults=True) for name, spec in library.items()}
            self._library[steps] = (scenario, library, inlined)
        return self._library[steps]

    def run(self, observations: Sequence[Observation], source: str = "observations") -> WatchReport:
        """Follow a stream: one record per observation in time order, and a summary (see :func:`watch`)."""
        return self.run_many([observations], [source])[0]

    def run_many(self, streams: Sequence[Sequence[Observation]], sources: Sequence[str] | None = None) -> list[WatchReport]:
        """Follow several streams, each on its own (as :meth:`run`), their predictives asked as
        one batch per scene: streams of one scene share its oracle calls."""
        sources = list(sources) if sources is not None else [f"stream {i + 1}" for i in range(len(streams))]
        runs = [self._start(stream, source) for stream, source in zip(streams, sources)]
        by_scene: dict[int, list[_Filter]] = {}
        for run in runs:
            for f in run.filters.values():
                if isinstance(f, _Filter):
                    by_scene.setdefault(id(f.scene), []).append(f)
        for filters in by_scene.values():
            _batch(filters)
        return [run.go() for run in runs]

    def _start(self, observations: Sequence[Observation], source: str) -> _Run:
        if not observations:
            raise CruxError(f"{source}: no observations")
        stream = sorted(observations, key=lambda o: o.t)
        steps = max(o.t for o in stream)
        scenario, library, _ = self.base(steps)
        _check(stream, scenario.entities, library, source)
        types = dict(scenario.entities)
        first = self.scene(types, steps, {})
        assert isinstance(first, _Scene)  # the file is valid
        party = self.party or first.model.default_party
        if party not in first.model.parties:
            raise CruxError(f"this model has no party {party!r}: watch as {' or '.join(first.model.parties)}")
        return _Run(self, stream, steps, types, library, party, source)


class _Run:
    """One stream followed: the filters of the scenes it needs, each watched entity's comparison,
    and the records."""

    def __init__(
        self, watch: Watch, stream: list[Observation], steps: int, types: dict[str, str],
        library: dict[str, EntityType], party: str, source: str,
    ):
        self.watch, self.stream, self.steps, self.types, self.party, self.source = watch, stream, steps, types, party, source
        self.scene_types = dict(types)
        self.filters: dict[tuple, _Filter | list[str]] = {}
        self.kinds: dict[str, NewKind] = {}
        """The watched entities' new kinds, by name."""
        kinds: dict[str, NewKind | str] = {}
        for e in dict.fromkeys(o.entity for o in stream):
            observed = list(dict.fromkeys(o.attribute for o in stream if o.entity == e))
            kind = new_kind(e, library[types[e]], observed, library, taken=self.kinds)
            kinds[e] = kind
            if isinstance(kind, NewKind):
                self.kinds[kind.name] = kind
        self.entities = {e: self._candidates(e, library, kind) for e, kind in kinds.items()}

    def filter(self, types: Mapping[str, str]) -> _Filter | list[str]:
        """The filter of the scene with these types (or why it does not ground), made once."""
        key = tuple(sorted(types.items()))
        if key not in self.filters:
            scene = self.watch.scene(types, self.steps, self.kinds)
            self.filters[key] = scene if isinstance(scene, list) else _Filter(scene, self.stream, self.party, self.watch.do)
        return self.filters[key]

    def _candidates(self, entity: str, library: Mapping[str, EntityType], kind: NewKind | str) -> _Types:
        own = self.types[entity]
        names = [own, *(t for t in library if t != own)] + ([kind.name] if isinstance(kind, NewKind) else [])
        found = _Types(entity, {}, kind if isinstance(kind, NewKind) else None)
        if isinstance(kind, str):
            found.skipped["a new kind"] = kind
        for name in names:
            f = self.filter({**self.types, entity: name})
            if isinstance(f, list):
                found.skipped[name] = "; ".join(f)
            else:
                found.log_likelihood[name] = 0.0
                found.terms[name] = []
        return found

    def go(self) -> WatchReport:
        records = []
        for i, obs in enumerate(self.stream):
            record = self._record(i, obs)
            for found in self.entities.values():
                self._update(found, i)
            found = self.entities[obs.entity]
            alt, log_bf = found.against(self.types[obs.entity])
            if alt is not None:
                record["evidence"] = {"against": self.types[obs.entity], "for": alt, "log_bf": _finite(log_bf)}
                limit = math.log(self.watch.bayes_factor)
                if log_bf >= limit > found.log_bf:  # the evidence passes the threshold here
                    record["flags"].append("evidence")
            record["flagged"] = bool(record["flags"])
            record["posterior"] = found.posterior()
            record["log_likelihood"] = {h: _finite(v) for h, v in found.log_likelihood.items()}
            events = []
            for entity in self.entities.values():
                event = self._adopt(entity, i, obs)
                if event is not None:
                    self.types[entity.entity] = event["to"]
                    events.append(event)
                entity.log_bf = entity.against(self.types[entity.entity])[1]
            if events:
                record["retyped"] = events
            records.append(record)
        return self._report(records)

    def _record(self, i: int, obs: Observation) -> dict[str, Any]:
        """The observation as the entity's type of the moment predicted it."""
        current = self.filter(self.types)
        assert isinstance(current, _Filter)  # the scene as typed now grounds: it was adopted
        p = current.at(i)
        predictive = current.predictive[i]
        limit = None if predictive is None else threshold(predictive.tolist(), self.watch.level)
        surprise = _surprise(p) if p > 0 else None
        return {
            "t": obs.t, "entity": obs.entity, "attribute": obs.attribute, "value": obs.value,
            "type": self.types[obs.entity], "p": p, "surprise": surprise, "threshold": limit,
            "flags": ["surprise"] if beyond(surprise, limit) else [],
        }

    def _update(self, found: _Types, i: int) -> None:
        """Each candidate's evidence times its predictive of observation ``i``."""
        p: dict[str, float] = {}
        for name in list(found.log_likelihood):
            if found.log_likelihood[name] == -math.inf:
                p[name] = 0.0
                continue
            f = self.filter({**self.types, found.entity: name})
            if isinstance(f, list):  # no longer grounds, the other entities re-typed
                found.skipped[name] = "; ".join(f)
                del found.log_likelihood[name], found.terms[name]
                continue
            p[name] = f.at(i)
        explained = any(x > 0 for x in p.values())
        for name, x in p.items():
            term = (math.log(x) if x > 0 else -math.inf) if explained else 0.0
            found.log_likelihood[name] += term
            found.terms[name].append(term)

    def _adopt(self, found: _Types, i: int, obs: Observation) -> dict[str, Any] | None:
        """The re-typing of an entity after observation ``i``, if its evidence calls for one."""
        current = self.types[found.entity]
        posterior = found.posterior()
        if not posterior:
            return None
        best = next(iter(posterior))
        ruled_out = found.log_likelihood.get(current, -math.inf) == -math.inf
        if best == current or posterior[best] == 0.0 or posterior[best] == posterior.get(current):
            return None
        if not ruled_out and posterior[best] < self.watch.adopt:
            return None
        return {
            "entity": found.entity, "from": current, "to": best, "new": best in self.kinds,
            "why": "ruled out" if ruled_out else "posterior",
            "t": obs.t, "observation": i + 1, "line": obs.line,
            "seen": sum(1 for o in self.stream[: i + 1] if o.entity == found.entity),
            "posterior": posterior,
            "moved_by": found.moved_by(self.stream[: i + 1], current, best),
        }

    def _report(self, records: list[dict[str, Any]]) -> WatchReport:
        last = len(self.stream) - 1
        final = self.filter(self.types)
        assert isinstance(final, _Filter)
        final.at(last)
        learned: dict[str, dict] = {}
        for entity, name in self.types.items():
            kind = self.kinds.get(name)
            if kind is not None and kind.entity == entity:
                seen = sum(1 for o in self.stream if o.entity == entity)
                learned[name] = learned_type(kind, final.scene.counts(entity, final.evidence), seen, self.source)
        scene = copy.deepcopy(dict(self.watch.data))
        scene["entities"] = dict(self.types)
        if learned:
            scene["types"] = {**(scene.get("types") or {}), **learned}
        retyped = [
            {k: (e["posterior"][e["to"]] if k == "posterior" else e[k])
             for k in ("entity", "from", "to", "new", "t", "observation", "line", "seen", "posterior")}
            for r in records for e in r.get("retyped", ())
        ]
        summary = {
            "observations": len(records),
            "flagged": sum(r["flagged"] for r in records),
            "entities": {
                e: {
                    "type": self.types[e], "scene_type": self.scene_types[e],
                    "new_kind": found.kind.name if found.kind is not None else None,
                    "posterior": found.posterior(), "skipped": found.skipped,
                }
                for e, found in self.entities.items()
            },
            "retyped": retyped,
            "new_types": [
                {"name": name, "entity": self.kinds[name].entity, "file": None} for name in learned
            ],
            "saved": None,
            "notes": [],
        }
        return WatchReport(
            records=records, summary=summary, types=dict(self.types), learned=learned, scene=scene, steps=self.steps
        )


def _check(observations: Sequence[Observation], entities: Mapping[str, str], library: Mapping[str, EntityType], source: str) -> None:
    """Unknown entities, attributes and states are errors naming the line.  An attribute (or
    a state) that only another type of the library has is not an error: the entity's type
    gives it probability 0, which is what the filter is for."""
    for obs in observations:
        where = f"{source}: line {obs.line}" if obs.line else f"{source}: {obs}"
        if obs.entity not in entities:
            raise CruxError(f"{where}: {unknown('entity', obs.entity, entities)}")
        own = library[entities[obs.entity]]
        holders = [spec.attributes[obs.attribute] for spec in library.values() if obs.attribute in spec.attributes]
        if obs.attribute in own.attributes:
            states = own.attributes[obs.attribute].states
        elif holders:
            states = list(dict.fromkeys(s for attr in holders for s in attr.states or ()))
        else:
            raise CruxError(
                f"{where}: {unknown(f'attribute of {obs.entity} ({entities[obs.entity]})', obs.attribute, own.attributes)}"
            )
        if states is None:
            raise CruxError(f"{where}: {obs.entity}.{obs.attribute} is continuous: crux watch follows discrete attributes")
        if obs.value not in states:
            raise CruxError(f"{where}: {unknown(f'state of {obs.entity}.{obs.attribute}', obs.value, states)}")


def watch(
    model: str | Path,
    observations: Sequence[Observation] | str | Path,
    *,
    party: str | None = None,
    do: Mapping[str, str] | None = None,
    device: str = "cpu",
    level: float = LEVEL,
    adopt: float = ADOPT,
    bayes_factor: float = BAYES_FACTOR,
    learn_new: str | Path | None = None,
    save: str | Path | None = None,
    force: bool = False,
) -> WatchReport:
    """Follow ``observations`` (a list, or a JSON-lines file) on the scene in ``model``.

    ``records`` has one record per observation, in time order: ``t``, ``entity``, ``attribute``,
    ``value``, ``type`` (the entity's type that predicted it), ``p`` (its predictive probability),
    ``surprise`` (``-log p`` in nats; None when ``p`` is 0), ``threshold`` (where the 1% tail of
    surprise begins; None when no state is that rare, or the type lacks the attribute),
    ``flags`` (``"surprise"``, ``"evidence"``) and ``flagged``; ``posterior`` ({type:
    probability} of the entity after it, most probable first), ``log_likelihood`` ({type: log
    evidence so far}, None for -inf), ``evidence`` ({"against": its type, "for": the best other,
    "log_bf"}: the log Bayes factor, None when infinite) and, when an entity was re-typed after
    it, ``retyped`` (a list of {"entity", "from", "to", "new", "why", "t", "observation", "line",
    "seen", "posterior", "moved_by"}).  ``summary`` holds the counts, each watched entity's type,
    posterior and the candidates left out, the re-typings, the new types and the files written.

    ``party`` is whose beliefs predict (default: the agent's); ``do`` holds variables fixed,
    e.g. the decision when an observed attribute depends on it.  ``adopt`` is the posterior a type
    needs to be adopted, ``bayes_factor`` the evidence against a type that flags, ``level`` the
    tail of the surprise threshold.  ``learn_new`` writes the new kinds adopted as a library file,
    ``save`` the scene re-typed; neither writes over a file without ``force``.  Every setting and
    path is checked before the stream is followed."""
    problem = settings_problem(adopt, bayes_factor, level)
    if problem is not None:
        raise CruxError(problem)
    from crux.beliefs.save import check_output, save_scene, write_library

    model = Path(model)
    source = "observations"
    inputs: list[tuple[Path, str, bool]] = [(model, "the scene file", True)]
    if isinstance(observations, (str, Path)):
        source = str(observations)
        inputs.append((Path(observations), "the stream of observations", False))
    outputs = [(Path(p), option) for p, option in ((learn_new, "--learn-new"), (save, "--save")) if p is not None]
    if len(outputs) == 2 and outputs[0][0].resolve() == outputs[1][0].resolve():
        raise CruxError(f"--learn-new and --save both name {outputs[0][0]}: give each its own file")
    for path, option in outputs:
        check_output(path, option, force=force, inputs=inputs if option == "--save" else [(p, w, False) for p, w, _ in inputs])
    if isinstance(observations, (str, Path)):
        observations = read_observations(observations)
    watcher = Watch(model, party=party, do=do, device=device, level=level, adopt=adopt, bayes_factor=bayes_factor)
    report = watcher.run(observations, source)
    notes = report.summary["notes"]
    written = f"written by crux watch from {model} and {source}"
    if learn_new is not None:
        if report.learned:
            write_library(Path(learn_new), report.learned, force=force, note=written)
            for entry in report.summary["new_types"]:
                entry["file"] = str(learn_new)
        else:
            notes.append(f"no entity ends as a new kind: {learn_new} is not written")
    if save is not None:
        notes += save_scene(Path(save), report.scene, model.parent, steps=report.steps, force=force, note=written)
        report.summary["saved"] = str(save)
    return report
