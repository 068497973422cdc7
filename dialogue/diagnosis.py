"""The four-cell swap test and the Shapley shares of SCENARIO.md.

``cells[(b, v)]`` is the choice under party ``b``'s beliefs and party ``v``'s
values; ``a`` is the agent, ``h`` the human.  In predict-only mode the agent has
no values: only the two cells with the human's values exist.

While the human's values are unknown (they are asked after the exchange), the
cells with the human's values do not exist either: the diagnosis is
``unknown``, with no shares, and carries each side's predictions instead
(how the actions' outcomes differ), since any change to them may change the
human's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from crux.values.utility import choose

Kind = Literal["agree", "belief", "value", "both", "unknown"]
Cell = tuple[str, str]
PREDICTION_TOLERANCE = 1e-9
"""A predicted probability that moves less than this has not changed."""
FULL_CELLS: tuple[Cell, ...] = (("a", "a"), ("a", "h"), ("h", "a"), ("h", "h"))
PREDICT_CELLS: tuple[Cell, ...] = (("a", "h"), ("h", "h"))


@dataclass(frozen=True)
class Diagnosis:
    """Where a disagreement comes from."""

    kind: Kind
    cells: Mapping[Cell, str]
    belief_share: float | None
    value_share: float | None
    expected: Mapping[Cell, tuple[float, ...]]
    """Each cell's expected normalised utility of every action."""
    predictions: Mapping[str, torch.Tensor] | None = None
    """While the human's values are unknown: for each side ("a", "h"), how the probability of
    every outcome state under each action differs from that under the first action, flat."""

    @property
    def choices(self) -> dict[str, str]:
        """Each party's own choice (the agent's only when it has values, the human's only when
        theirs are known)."""
        names = {("a", "a"): "agent", ("h", "h"): "human"}
        return {name: self.cells[c] for c, name in names.items() if c in self.cells}

    def key(self) -> tuple[str, ...]:
        """The swap-test choices, in a fixed order: what facts are tested against."""
        return tuple(self.cells[c] for c in sorted(self.cells))

    def prediction_change(self, other: Diagnosis) -> float:
        """The largest change of a predicted probability between the two (0 without predictions)."""
        if self.predictions is None or other.predictions is None:
            return 0.0
        return max(float((self.predictions[b] - other.predictions[b]).abs().max()) for b in self.predictions)

    def differs(self, other: Diagnosis) -> bool:
        """Whether some choice differs, or, while the human's values are unknown, some prediction."""
        return self.key() != other.key() or self.prediction_change(other) > PREDICTION_TOLERANCE

    def to_json(self) -> dict:
        return {"kind": self.kind, "belief_share": self.belief_share, "value_share": self.value_share}


def diagnose(
    eu: Mapping[Cell, torch.Tensor | Sequence[float]],
    actions: Sequence[str],
    predictions: Mapping[str, torch.Tensor] | None = None,
) -> Diagnosis:
    """Diagnosis from the expected normalised utility of every action in each cell.

    With all four cells this is the swap test and Shapley split of SCENARIO.md;
    with only the human's-values cells (predict-only) it says whether the
    human's choice would change under the agent's beliefs; without the
    human's values it is ``unknown`` (and keeps the ``predictions``).
    """
    values = {c: tuple(float(x) for x in eu[c]) for c in eu}
    cells = {c: actions[choose(v)] for c, v in values.items()}
    if ("h", "h") not in values:
        return Diagnosis("unknown", cells, None, None, values, predictions)
    if ("a", "a") not in values:
        kind: Kind = "agree" if cells[("a", "h")] == cells[("h", "h")] else "belief"
        share = None if kind == "agree" else 1.0
        return Diagnosis(kind, cells, share, None if share is None else 0.0, values)
    aa, ah = cells[("a", "a")], cells[("h", "h")]
    if aa == ah:
        return Diagnosis("agree", cells, None, None, values)
    belief = cells[("a", "h")] == aa and cells[("h", "a")] == ah
    value = cells[("h", "a")] == aa and cells[("a", "h")] == ah
    kind = "both" if belief == value else ("belief" if belief else "value")
    i, j = actions.index(aa), actions.index(ah)
    d = {c: v[i] - v[j] for c, v in values.items()}
    total = d[("a", "a")] - d[("h", "h")]
    belief_part = ((d[("a", "h")] - d[("h", "h")]) + (d[("a", "a")] - d[("h", "a")])) / 2
    value_part = ((d[("h", "a")] - d[("h", "h")]) + (d[("a", "a")] - d[("a", "h")])) / 2
    return Diagnosis(kind, cells, belief_part / total, value_part / total, values)
