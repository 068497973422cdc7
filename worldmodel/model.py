"""A loaded model: a network's structure and the parties' beliefs over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crux.worldmodel.bif import BIF_SUFFIXES, is_bif, read_bif
from crux.worldmodel.errors import CruxError
from crux.worldmodel.files import SCENARIO_SUFFIXES, unknown_format
from crux.worldmodel.load import load_scenario
from crux.worldmodel.spec import PARTIES, Believer, Scenario

if TYPE_CHECKING:  # compile (torch) is imported when a model is built, not when this module is
    from crux.worldmodel.compile import BeliefState, Network


@dataclass
class Model:
    """What the oracle answers on: a network, and the beliefs of each party it knows."""

    name: str
    network: Network
    scenario: Scenario | None = None
    _beliefs: dict[str, BeliefState] = field(default_factory=dict, repr=False)

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> Model:
        from crux.worldmodel.compile import network_of

        return cls(name=scenario.name, network=network_of(scenario), scenario=scenario)

    @property
    def parties(self) -> tuple[Believer, ...]:
        """Whose beliefs can answer: agent, human and world for a scenario."""
        return PARTIES if self.scenario is not None else ("world",)

    @property
    def default_party(self) -> Believer:
        return "agent" if self.scenario is not None else "world"

    @classmethod
    def from_network(cls, name: str, network: Network, world: BeliefState) -> Model:
        """A bare network (e.g. from BIF): only the world's beliefs."""
        return cls(name=name, network=network, _beliefs={"world": world})

    def beliefs(self, party: Believer) -> BeliefState:
        """A party's beliefs at the start (compiled once)."""
        if party not in self.parties:
            raise ValueError(f"{party!r} is not a party of this model (parties: {', '.join(self.parties)})")
        if party not in self._beliefs:
            assert self.scenario is not None  # a bare network is built with its world's beliefs
            from crux.worldmodel.compile import party_beliefs

            self._beliefs[party] = party_beliefs(self.scenario, self.network, party)
        return self._beliefs[party]


def load_model(path: str | Path, steps: int | None = None) -> Model:
    """Load a model file: a scenario (YAML, JSON; its scene unrolled ``steps`` steps when given)
    or a BIF network (.bif, .bif.gz).  Errors name the file and the place inside it."""
    if is_bif(path):
        if steps is not None:
            raise CruxError(f"{path}: the model has no time: a BIF network has no steps to unroll (drop --steps)")
        network, world, name = read_bif(path)
        return Model.from_network(name, network, world)
    scenario = load_scenario(path, steps=steps)
    if steps is not None and not scenario.entities:
        raise CruxError(
            f"{path}: the model has no time: only a scene (entities whose attributes change with `next`) "
            "has steps to unroll (drop --steps)"
        )
    return Model.from_scenario(scenario)


def check_model_format(path: str | Path) -> None:
    """A model file's name ends as a scenario's or a BIF network's, or the error names both (for
    the commands that take either; :func:`load_model` alone names the scenario's formats)."""
    if not is_bif(path) and Path(path).suffix.lower() not in SCENARIO_SUFFIXES:
        raise unknown_format(path, f" or a Bayesian network ({', '.join(BIF_SUFFIXES)})")
