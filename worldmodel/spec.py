"""Pydantic schema of the scenario format, version 1 (``shared/spec/SCENARIO.md``).

The models check the shape of a file: types, required keys, no unknown keys
(``extra="forbid"``) and ranges that need no context.  Rules that need the
rest of the file (row keys against parents' states, unknown names, cycles,
sums) live in :mod:`worldmodel.checks`, so that one broken variable does not
hide the problems of the others.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from pydantic.json_schema import GenerateJsonSchema

_YAML_WORDS = "yes, no, on, off, true, false"


class YamlBoolean(str):
    """A bare YAML boolean (``yes``, ``off``, ...) kept as the text that was written.

    The loader makes these instead of ``bool`` so that an error can quote what
    the user wrote; no field of the format takes a boolean, so nothing is lost.
    """

    @property
    def truth(self) -> bool:
        return self.lower() in ("y", "yes", "on", "true")


def _require_string(value: Any) -> Any:
    """Reject non-strings where a name is expected, with the fix for YAML's implicit types."""
    if isinstance(value, YamlBoolean) or isinstance(value, bool):
        written = str(value) if isinstance(value, YamlBoolean) else str(value).lower()
        truth = value.truth if isinstance(value, YamlBoolean) else value
        raise ValueError(
            f"read as the boolean {str(truth).lower()}, not a name: YAML reads bare "
            f"{_YAML_WORDS} as booleans; quote the name (\"{written}\")"
        )
    if value is None:
        raise ValueError("is empty (YAML reads ~, null or nothing as null): write a name")
    if isinstance(value, (datetime.date, datetime.datetime)):
        raise ValueError(f"read as the date {value.isoformat()}, not a name: quote it (\"{value}\")")
    if isinstance(value, (int, float)):
        raise ValueError(f"read as the number {value!r}, not a name: quote it (\"{value}\")")
    if isinstance(value, str) and (bad := _CONTROL.search(value)):
        raise ValueError(f"contains the control character {bad.group()!r}: a name is printable text")
    return value


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
"""Control characters (all but tab): in a name they would garble every message that quotes it,
or drive the terminal that shows it."""


def _require_version(value: Any) -> Any:
    if isinstance(value, (bool, float, str)):
        raise ValueError(f"unsupported format version {value!r}: this Crux reads version 1 (`crux: 1`)")
    return value


Name = Annotated[str, BeforeValidator(_require_string)]
"""A state, variable, fact or outcome name: always a string, never a coerced YAML scalar."""

Number = Annotated[float, Field(strict=True)]
"""A number as written (an int or a float), never a quoted string or a boolean."""

Probabilities = list[Number]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normal(_Strict):
    """A continuous variable: normal, its mean linear in its parents."""

    intercept: Number = Field(default=0.0, description="The mean when every continuous parent is 0.")
    weights: dict[Name, Number] = Field(
        default_factory=dict, description="Continuous parents: the mean adds weight x the parent's value."
    )
    offsets: dict[Name, dict[Name, Number]] = Field(
        default_factory=dict, description="Discrete parents: the mean adds the offset of the parent's state (unlisted: 0)."
    )
    scale: Number = Field(gt=0, description="Standard deviation around the mean.")


class Variable(_Strict):
    """One variable of the world: its states (or a normal law) and its mechanism."""

    states: list[Name] | None = Field(
        default=None,
        min_length=2,
        description="A discrete variable's states, unique strings, at least two. Quote yes/no/on/off/true/false.",
    )
    normal: Normal | None = Field(
        default=None,
        description="A continuous variable instead of `states`: normal with mean linear in its parents "
        "(list them in `parents`). Answers on it are sampled, or exact when every variable it depends on is normal.",
    )
    prior: Probabilities | None = Field(
        default=None,
        description="Root variables: P(variable), one probability per state, summing to 1. "
        "The decision variable has no prior.",
    )
    parents: list[Name] = Field(
        default_factory=list,
        description="Non-root variables: the variables this one depends on, in the order used by table row keys.",
    )
    table: dict[Name, Probabilities] | None = Field(
        default=None,
        description='Non-root variables: one row per combination of parent states, keyed "p1, p2" in '
        "`parents` order; each row gives P(state | parents) and sums to 1.",
    )
    strength: Number = Field(
        default=10.0,
        gt=0,
        description="Dirichlet concentration of the prior and of each row: a row p is the mean of "
        "Dirichlet(strength * p). Higher means more certain.",
    )
    row_strength: dict[Name, Number] = Field(
        default_factory=dict,
        description='Concentration of particular rows, overriding `strength` ({"row key": n}; "" for a prior). '
        "`crux learn` writes it: a row seen in data is more certain than the others.",
    )


class World(_Strict):
    """The causal model whose structure both parties share."""

    variables: dict[Name, Variable] = Field(
        min_length=1, description="The variables of the world, by name."
    )
    decision: Name = Field(
        description="The root variable, without a prior, whose states are the actions."
    )
    outcomes: list[Name] = Field(
        min_length=1,
        description="The variables that values score and that `crux ask` reports by default.",
    )
    reference: dict[Name, Name] = Field(
        default_factory=dict,
        description="Each outcome's reference state {outcome: state}, whose utility is 0 (v1.1): a utility below 0 "
        "marks a state worse than it, above 0 better. An outcome not listed has its first state as reference.",
    )


class CountsData(_Strict):
    """Data about how the world works: counts added to one row's Dirichlet."""

    variable: Name = Field(description="The variable whose table (or prior) the counts inform.")
    given: dict[Name, Name] = Field(
        default_factory=dict,
        description="Parent states selecting exactly one row: every parent of `variable`, no others. "
        "Empty for a root variable's prior.",
    )
    counts: dict[Name, Number] = Field(
        min_length=1,
        description="Observed counts per state of `variable`, non-negative; unlisted states count 0.",
    )


class Fact(_Strict):
    """A piece of evidence that can be exchanged: an observation or counts."""

    text: str = Field(description="A sentence a person can read.")
    source: str = Field(description="Who or what reports the fact.")
    reliability: Number | None = Field(
        default=None,
        description="Observe facts: probability that the report is right, in [0, 1]; default 1.0. "
        "The likelihood is r for the reported state and (1 - r)/(k - 1) for each other state.",
    )
    observe: dict[Name, Name] | None = Field(
        default=None, description="Evidence about the case at hand: {variable: state}."
    )
    counts: CountsData | None = Field(
        default=None, description="Evidence about how the world works: counts for one table row."
    )

    @property
    def weight(self) -> float:
        """The reliability in force (1.0 when the file gives none)."""
        return 1.0 if self.reliability is None else self.reliability


PriorOverride = Probabilities | dict[Name, Probabilities]


class BeliefsSpec(_Strict):
    """What a party believes before any exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Beliefs")

    priors: dict[Name, PriorOverride] = Field(
        default_factory=dict,
        description="Overrides of the world's numbers for this party: a list for a root variable's prior, "
        'or {"row key": [...]} for some rows of a table.',
    )
    knows: list[Name] = Field(
        default_factory=list, description="Ids of the facts this party holds at the start."
    )


Values = dict[Name, dict[Name, Number]]
"""Stated utilities: {outcome: {state: utility}}."""

UNKNOWN = "unknown"
"""Values not stated in the file: a session asks the human for them after the exchange."""
STATED_TAG, UNKNOWN_TAG = "<stated>", "<unknown>"
"""Tags of the two shapes a party's values (or one outcome's) can take; not part of any data path."""


def _shape(value: Any) -> str | None:
    if isinstance(value, dict):
        return STATED_TAG
    if isinstance(value, str) and not isinstance(value, YamlBoolean) and value == UNKNOWN:
        return UNKNOWN_TAG
    return None


def _stated_or_unknown(stated: Any, what: str) -> Any:
    return Annotated[
        Annotated[stated, Tag(STATED_TAG)] | Annotated[Literal["unknown"], Tag(UNKNOWN_TAG)],
        Discriminator(_shape, custom_error_type="values_shape", custom_error_message=f"give {what}, or `unknown`"),
    ]


OutcomeValues = _stated_or_unknown(dict[Name, Number], "{state: utility}")
PartyValues = _stated_or_unknown(dict[Name, OutcomeValues], "{outcome: {state: utility}}")


class Responds(_Strict):
    """How a scripted human answers offered facts and value questions (headless sessions and tests)."""

    accept_min_reliability: Number = Field(
        default=0.0, ge=0.0, le=1.0, description="Reject observe facts whose reliability is below this."
    )
    rejects_sources: list[str] = Field(
        default_factory=list, description="Reject every fact from these sources."
    )
    rejects: list[Name] = Field(default_factory=list, description="Reject these fact ids.")
    values: Values = Field(
        default_factory=dict,
        description="The utilities {outcome: {state: utility}} the scripted human answers value questions with: "
        "one entry for each outcome whose values are `unknown` in `values` (a headless session needs them; "
        "a person at the terminal answers for themselves). Each question is answered by the option better "
        "under these utilities, ties by the first.",
    )


class AgentSpec(_Strict):
    """The AI party."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Agent")

    beliefs: BeliefsSpec = Field(default_factory=BeliefsSpec, description="The agent's priors and facts.")
    values: PartyValues = Field(
        default_factory=dict,
        description="Utilities {outcome: {state: utility}}; unlisted states (and outcomes) are 0; utilities add up. "
        "Never read in predict-only mode. Only the human's values may be `unknown`: all of them "
        "(`values: unknown`) or some outcomes' (`OUTCOME: unknown`); a session then asks the human "
        "for them after the exchange.",
    )


class ValueSigns(_Strict):
    """Signs of utilities the person has stated without numbers (v1.1)."""

    worse: list[str] = Field(
        default_factory=list, description="States worse than their outcome's reference state, as OUTCOME=state."
    )
    better: list[str] = Field(
        default_factory=list, description="States better than their outcome's reference state, as OUTCOME=state."
    )

    def signs(self) -> dict[str, int]:
        """{"OUTCOME=state": -1 (worse) or 1 (better)}, white space around the names trimmed."""
        out = {}
        for side, sign in (("worse", -1), ("better", 1)):
            for entry in getattr(self, side):
                outcome, _, state = (part.strip() for part in entry.partition("="))
                out[f"{outcome}={state}"] = sign
        return out


class HumanSpec(AgentSpec):
    """The person; scripted from the file in headless sessions."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Human")

    value_signs: ValueSigns = Field(
        default_factory=ValueSigns,
        description="For outcomes whose values are `unknown`: the signs the person has stated without numbers. "
        "Elicitation asks the sign of every other state before sizes, and no posterior puts mass on a sign given.",
    )

    responds: Responds = Field(
        default_factory=Responds, description="How a scripted human answers offered facts and value questions."
    )


class Parties(_Strict):
    """The two parties of a session."""

    agent: AgentSpec = Field(default_factory=AgentSpec, description="The AI party.")
    human: HumanSpec = Field(default_factory=HumanSpec, description="The person.")


Believer = Literal["agent", "human", "world"]
"""Whose beliefs answer a query: a party's, or the world's own numbers (the dialogue's parties are
``dialogue.protocol.PartyName``, the agent and the human).  Here rather than in
:mod:`worldmodel.compile`, so that a query can be read without importing torch."""
PARTIES: tuple[Believer, ...] = ("agent", "human", "world")


# -- the object-centric extension (all optional: version-1 files mean what they always meant) --
#
# Types are small reusable models: each attribute is a variable of every entity of that
# type, whose mechanism reads the entity's own attributes (``self.speed``), attributes of
# related entities (``in_path_of.present``, one adjacency per relation type) or world
# variables.  Types can come from library files (``use``); only the types of entities in the
# scene are grounded (worldmodel/entities.py).  An attribute with ``next`` changes over time.


class Mechanism(_Strict):
    """How an attribute's value arises: a prior, or a table over parents."""

    prior: Probabilities | None = Field(default=None, description="No parents: P(attribute), one number per state.")
    parents: list[str] = Field(
        default_factory=list,
        description="`self.ATTR`, `RELATION.ATTR` (attributes of the related entities) or a world variable's name, "
        "in the order of the table's row keys.",
    )
    table: dict[Name, Probabilities] | None = Field(
        default=None, description='One row per combination of parent states, keyed "p1, p2".'
    )
    row_strength: dict[Name, Number] = Field(
        default_factory=dict,
        description='Concentration of particular rows, overriding the attribute\'s `strength` ("" for a prior); '
        "`crux learn` writes it.",
    )
    aggregate: Literal["any", "count", "sum", "mean"] | None = Field(
        default=None,
        description="How a RELATION.ATTR parent folds several related entities: `any` (states no, yes: some related "
        "entity's attribute is not in its first state), `count` (how many are not; the table's row keys for it are "
        '"0", "1", ..., "k+"), or for continuous attributes `sum` and `mean`. Required when the relation can reach '
        "more than one entity.",
    )


class Attribute(Mechanism):
    """One attribute of an entity type: a discrete variable of every entity of that type."""

    states: list[Name] | None = Field(
        default=None, min_length=2, description="The attribute's states (the first is its 'none' state)."
    )
    normal: Normal | None = Field(
        default=None, description="A continuous attribute instead of `states` (parents as for variables)."
    )
    strength: Number = Field(default=10.0, gt=0, description="Dirichlet concentration of each row, as for variables.")
    next: Mechanism | None = Field(
        default=None,
        description="How the attribute changes from one step to the next: parents are read at the previous step.",
    )


class EntityType(_Strict):
    """A small reusable model: the attributes of one kind of object."""

    description: str = Field(default="", description="What this type is, for people.")
    attributes: dict[Name, Attribute] = Field(min_length=1, description="The type's attributes, by name.")


class Relation(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    """A typed edge between two entities (one adjacency per relation type)."""

    type: Name = Field(description="The kind of interaction, e.g. in_path_of.")
    source: Name = Field(alias="from", description="The entity whose mechanisms read the relation.")
    target: Name = Field(alias="to", description="The entity it reaches.")


class Scenario(_Strict):
    """A Crux scenario: a world, the facts that can be exchanged, and two parties."""

    crux: Annotated[Literal[1], BeforeValidator(_require_version)] = Field(
        description="Format version; this is version 1."
    )
    name: str = Field(description="A short identifier for the scenario.")
    description: str = Field(default="", description="What the scenario is about, for people.")
    world: World = Field(description="The shared causal structure.")
    facts: dict[Name, Fact] = Field(
        default_factory=dict, description="The facts that can be exchanged, by id."
    )
    parties: Parties = Field(default_factory=Parties, description="The agent and the human.")
    use: list[str] = Field(
        default_factory=list, description="Library files whose `types` this scene may use (paths relative to this file)."
    )
    types: dict[Name, EntityType] = Field(default_factory=dict, description="Entity types defined in this file.")
    entities: dict[Name, Name] = Field(default_factory=dict, description="Named entities and their types.")
    relations: list[Relation] = Field(default_factory=list, description="Typed edges between entities.")


_FORMAT_NAMES = {"AgentSpec": "Agent", "HumanSpec": "Human", "BeliefsSpec": "Beliefs"}
"""The classes whose names say they are the file's spec of a thing, and the format's own names for
them: the JSON Schema keeps the names it always had (``$defs/Human``)."""


class _FormatSchema(GenerateJsonSchema):
    def normalize_name(self, name: str) -> str:
        return super().normalize_name(_FORMAT_NAMES.get(name, name))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the scenario format (what ``crux schema`` prints)."""
    schema = Scenario.model_json_schema(schema_generator=_FormatSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Crux scenario, format version 1"
    return schema
