"""World revision: follow a stream of observations of a scene and re-type the entities its types
do not explain.

Beliefs about what the entities *are*: the surprise of each observation under the oracle's
predictions, and, when it is too surprising, a posterior over the entity's type among the
library's types, the entity re-typed (the scene re-grounded from the scenario file's data) when
another type explains its observations better.

The scene is unrolled as many steps as the stream has (``steps`` = the largest ``t``) and
the observations are taken in time order (a stable sort on ``t``: within a step, in the
order of the file).  For each observation of ``entity.attribute`` at step ``t`` the filter
asks the oracle for the *predictive* distribution of its variable (``entity.attribute@t``,
or ``entity.attribute`` when the attribute does not change over time) given every earlier
observation as hard evidence, and reports

- the **surprise** ``-log p(value)`` in nats;
- the **threshold**: the 99th percentile of the surprise the model itself expects for that
  variable.  For a discrete predictive ``P`` the surprise of an outcome ``X ~ P`` is
  ``S = -log P(X)``, and the threshold is the smallest ``s`` with ``P(S > s) <= 1%``
  (:func:`threshold`).  The observation is **flagged** when its surprise is above it, so
  that, were the model right, at most 1% of observations would be flagged;
- on a flag, the **candidate types**: every type the scene knows (its own and those of its
  ``use`` files, whether or not an entity has it yet) that has the flagged attribute, and the
  entity's current type.  Each is scored by the marginal likelihood of the entity's
  observations so far, given the other entities' observations so far, under the scene with
  the entity re-typed: ``P(e_1, ..., e_k | others) = prod_i P(e_i | others, e_1..e_{i-1})``, a
  product of predictive probabilities.  With a uniform prior the posterior of a candidate is
  its likelihood over their sum.  When the best candidate is more likely than the current
  type the entity is re-typed (the scene is re-grounded) and the filter goes on with it.

An observation the current scene gives probability 0 (a state the entity's type cannot take,
or an attribute it does not have: the predictive is then undefined and the threshold
``None``) has infinite surprise (``None`` in the record) and is always flagged; it is not
conditioned on unless a re-typing explains it.  The observations of the re-typed entity all
become evidence again, since the adopted type gives each of them a positive probability.

Each pass asks for the predictive of every remaining observation as one batch (evidence as
one-hot likelihoods, so the queries share one structure), on the assumption that each is
conditioned on in turn; a pass is redone only after a re-typing or an observation that
cannot be conditioned on.  The candidates' likelihoods are one batch per candidate.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crux.oracle.exact import ImpossibleEvidence
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, QueryError
from crux.worldmodel.compile import BeliefState
from crux.worldmodel.entities import library_types
from crux.worldmodel.errors import CruxError, ModelError, unknown
from crux.worldmodel.files import read_data, read_text
from crux.worldmodel.jsontext import NotStandardJson
from crux.worldmodel.jsontext import loads as strict_json
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model
from crux.worldmodel.spec import EntityType, Scenario

LEVEL = 0.01
"""Tail mass of the threshold: an observation is flagged when it is rarer than the model's 99th percentile."""

KEYS = ("t", "entity", "attribute", "value")


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


def threshold(p: Sequence[float], level: float = LEVEL) -> float:
    """The ``1 - level`` quantile of the surprise ``S = -log P(X)`` of ``X ~ P``: the smallest
    ``s`` with ``P(S > s) <= level``.

    ``P(S > s)`` falls in steps at the surprises of the states, so the answer is one of them:
    for ``P = [0.9, 0.095, 0.005]`` (surprises 0.105, 2.354, 5.298) ``P(S > 0.105) = 0.1`` and
    ``P(S > 2.354) = 0.005``, so the threshold is ``-log 0.095 = 2.354``: only the state of
    probability 0.005 is flagged.  States of probability 0 are never expected (their surprise is
    infinite and their mass is 0); they are always above the threshold.
    """
    probs = [float(x) for x in p if x > 0]
    if not probs:
        raise ValueError("a predictive distribution needs a state of positive probability")
    for s in sorted({_surprise(x) for x in probs}):
        if sum(x for x in probs if _surprise(x) > s) <= level:
            return s
    raise AssertionError("unreachable: the largest surprise has an empty tail")


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


# -- the scene, as typed now ---------------------------------------------------------------------


class _Scene:
    """The scene grounded with one assignment of types to entities, and its oracle."""

    def __init__(self, scenario: Scenario, device: str):
        self.scenario = scenario
        self.model = Model.from_scenario(scenario)
        self.oracle = Oracle(self.model, device=device)

    @property
    def types(self) -> Mapping[str, str]:
        return self.scenario.entities

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

    def evidence(self, observations: Iterable[Observation]) -> dict[str, int] | None:
        """Hard evidence {variable: state index}; None if some observation cannot be expressed."""
        out = {}
        for obs in observations:
            at = self.index(obs)
            if at is None:
                return None
            out[at[0]] = at[1]
        return out

    def predict(
        self, requests: Sequence[tuple[str, Mapping[str, int]]], party: str, do: Mapping[str, str]
    ) -> list[torch.Tensor | None]:
        """``P(target | do, evidence)`` for each (target, evidence) as one batch; None where the
        evidence has probability 0."""
        if not requests:
            return []
        base = self.model.beliefs(party)  # type: ignore[arg-type]
        queries = [Query(do=dict(do), outcomes=[target], as_=party) for target, _ in requests]  # type: ignore[arg-type]
        states = [self._with(base, evidence) for _, evidence in requests]
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

    def _with(self, base: BeliefState, evidence: Mapping[str, int]) -> BeliefState:
        """A party's beliefs with hard evidence as one-hot likelihoods."""
        likelihood = dict(base.likelihood)
        for var, index in evidence.items():
            hot = torch.zeros(self.model.network.card(var), dtype=torch.float64)
            hot[index] = 1.0
            likelihood[var] = likelihood[var] * hot if var in likelihood else hot
        return BeliefState(concentration=base.concentration, likelihood=likelihood, certain=base.certain)


# -- the filter ------------------------------------------------------------------------------------


class Watch:
    """A surprise filter over one scene file; :meth:`run` follows a stream of observations."""

    def __init__(
        self,
        path: str | Path,
        *,
        party: str | None = None,
        do: Mapping[str, str] | None = None,
        device: str = "cpu",
        level: float = LEVEL,
    ):
        self.path = Path(path)
        self.data = read_data(self.path)
        if not isinstance(self.data, Mapping):
            raise CruxError(f"{self.path}: not a scenario file")
        self.device = device
        self.level = level
        self.party = party
        self.do = dict(do or {})
        self._scenes: dict[tuple[tuple[str, str], ...], _Scene | list[str]] = {}
        self.steps: int | None = None

    # scenes, one per assignment of types, grounded once
    def scene(self, types: Mapping[str, str]) -> _Scene | list[str]:
        """The scene with these entity types, or the problems that keep it from grounding."""
        key = tuple(sorted(types.items()))
        if key not in self._scenes:
            data = copy.deepcopy(dict(self.data))
            data["entities"] = dict(types)
            scenario, problems = validate_data(data, base_dir=self.path.parent, steps=self.steps)
            if scenario is None:
                self._scenes[key] = [p.render(str(self.path)) for p in problems]
            else:
                self._scenes[key] = _Scene(scenario, self.device)
        return self._scenes[key]

    def run(self, observations: Sequence[Observation], source: str = "observations") -> list[dict[str, Any]]:
        """One record per observation, in time order (see the module's docstring)."""
        if not observations:
            raise CruxError(f"{source}: no observations")
        self.steps = max(o.t for o in observations)
        scenario, problems = validate_data(self.data, base_dir=self.path.parent, steps=self.steps)
        if scenario is None:
            raise ModelError(str(self.path), problems)
        if not scenario.entities:
            raise CruxError(f"{self.path}: has no entities to watch: crux watch needs a scene (types, entities)")
        library, _ = library_types(scenario, self.path.parent)
        self.library: dict[str, EntityType] = library
        _check(observations, scenario.entities, library, source)
        scene = _Scene(scenario, self.device)
        self._scenes[tuple(sorted(scenario.entities.items()))] = scene
        party = self.party or scene.model.default_party
        if party not in scene.model.parties:
            raise CruxError(f"this model has no party {party!r}: watch as {' or '.join(scene.model.parties)}")
        self.party = party

        stream = sorted(observations, key=lambda o: o.t)
        used: list[Observation] = []  # conditioned on
        unused: list[Observation] = []  # probability 0 under the scene when seen
        records: list[dict[str, Any]] = []
        start = 0
        while start < len(stream):
            # predictive of each remaining observation, supposing the earlier ones conditioned on
            evidence = scene.evidence(used)
            if evidence is None:
                raise AssertionError("the evidence no longer fits the scene")
            requests, slots = [], []
            for obs in stream[start:]:
                at = scene.index(obs)
                var = scene.variable(obs)
                slots.append(len(requests) if var is not None else None)
                if var is not None:
                    requests.append((var, dict(evidence)))
                if at is not None:
                    evidence[at[0]] = at[1]
            predictions = scene.predict(requests, party, self.do)
            for j in range(start, len(stream)):
                obs = stream[j]
                slot = slots[j - start]
                predictive = None if slot is None else predictions[slot]
                record = self._record(scene, obs, predictive)
                records.append(record)
                redo = False
                if record["p"] == 0.0:
                    unused.append(obs)
                    redo = True
                else:
                    used.append(obs)
                if record["flagged"]:
                    adopted = self._consider(scene, obs, stream[: j + 1], used, record)
                    if adopted is not None:
                        scene = adopted
                        back = [o for o in unused if o.entity == obs.entity]
                        used += back
                        unused = [o for o in unused if o.entity != obs.entity]
                        redo = True
                if redo:
                    start = j + 1
                    break
            else:
                start = len(stream)
        return records

    def _record(self, scene: _Scene, obs: Observation, predictive: torch.Tensor | None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "t": obs.t, "entity": obs.entity, "attribute": obs.attribute, "value": obs.value,
            "type": scene.types[obs.entity],
        }
        at = scene.index(obs)
        if predictive is None:  # the type has no such attribute (or the evidence is impossible)
            p, limit = 0.0, None
        else:
            probs = predictive.tolist()
            p = probs[at[1]] if at is not None else 0.0
            limit = threshold(probs, self.level)
        surprise = _surprise(p) if p > 0 else None
        record.update(
            p=p,
            surprise=surprise,
            threshold=limit,
            flagged=surprise is None or (limit is not None and surprise > limit),
        )
        return record

    def _consider(
        self, scene: _Scene, obs: Observation, seen: Sequence[Observation], used: list[Observation], record: dict
    ) -> _Scene | None:
        """Score candidate types for the flagged entity on its observations so far (``seen`` is
        the stream up to ``obs``); re-type it when one beats its type."""
        entity, current = obs.entity, scene.types[obs.entity]
        mine = [o for o in seen if o.entity == entity]
        others = [o for o in used if o.entity != entity]
        names = [current] + [t for t, spec in self.library.items() if t != current and obs.attribute in spec.attributes]
        scores: dict[str, float] = {}
        skipped: dict[str, str] = {}
        scenes: dict[str, _Scene] = {}
        for name in names:
            candidate = self.scene({**scene.types, entity: name})
            if isinstance(candidate, list):
                skipped[name] = "; ".join(candidate)
                continue
            scenes[name] = candidate
            scores[name] = self._log_likelihood(candidate, mine, others)
        finite = [s for s in scores.values() if s > -math.inf]
        if not finite:
            record["candidates"] = {name: 0.0 for name in scores}
        else:
            top = max(finite)
            weights = {name: math.exp(s - top) if s > -math.inf else 0.0 for name, s in scores.items()}
            total = sum(weights.values())
            posterior = {name: w / total for name, w in weights.items()}
            record["candidates"] = dict(sorted(posterior.items(), key=lambda kv: -kv[1]))
        record["log_likelihood"] = {name: (s if s > -math.inf else None) for name, s in scores.items()}
        if skipped:
            record["skipped"] = skipped
        best = max(scores, key=lambda name: scores[name], default=None)
        if best is None or best == current or not scores[best] > scores.get(current, -math.inf):
            return None
        record["adopted"] = best
        return scenes[best]

    def _log_likelihood(self, scene: _Scene, mine: list[Observation], others: list[Observation]) -> float:
        """log P(the entity's observations | the others'), a sum of log predictive probabilities."""
        evidence = scene.evidence(others)
        if evidence is None:
            return -math.inf
        requests, states = [], []
        for obs in mine:
            at = scene.index(obs)
            if at is None:
                return -math.inf
            requests.append((at[0], dict(evidence)))
            states.append(at[1])
            evidence[at[0]] = at[1]
        total = 0.0
        for predictive, index in zip(scene.predict(requests, self.party, self.do), states):  # type: ignore[arg-type]
            p = 0.0 if predictive is None else float(predictive[index])
            if p <= 0:
                return -math.inf
            total += math.log(p)
        return total


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
) -> list[dict[str, Any]]:
    """Follow ``observations`` (a list, or a JSON-lines file) on the scene in ``model``.

    One record per observation, in time order: ``t``, ``entity``, ``attribute``, ``value``,
    ``type`` (the entity's type that predicted it), ``p`` (its predictive probability),
    ``surprise`` (``-log p`` in nats; None when ``p`` is 0), ``threshold`` (None when the type has
    no such attribute) and ``flagged``.  A flagged record also has ``candidates`` ({type:
    posterior}, best first; all 0 when no candidate gives the observations a positive
    probability), ``log_likelihood`` ({type: log marginal likelihood, None for -inf}),
    ``skipped`` ({type: why} for types the scene cannot be re-grounded with, if any) and, when
    the entity is re-typed, ``adopted`` (the new type).  ``party`` is whose beliefs predict
    (default: the agent's); ``do`` holds variables fixed, e.g. the decision when an observed
    attribute depends on it."""
    source = "observations"
    if isinstance(observations, (str, Path)):
        source = str(observations)
        observations = read_observations(observations)
    return Watch(model, party=party, do=do, device=device, level=level).run(observations, source)
