"""The thresholds of world revision (``crux watch``), their defaults and their checks.

Kept apart from :mod:`beliefs.revision`, and free of torch, so that the command line can show
the defaults and refuse a bad setting before any engine is imported.
"""

from __future__ import annotations

import math

LEVEL = 0.01
"""Tail mass of the surprise threshold: the states at or beyond it carry at most 1% of the predictive."""

ADOPT = 0.9
"""The posterior a type needs for an entity to be re-typed to it."""

BAYES_FACTOR = 100.0
"""The evidence against an entity's type that flags an observation: 100 to 1 for another
candidate.  Were the type right, the likelihood ratio of any one alternative is a martingale,
and by Ville's inequality the chance that it ever reaches 100 is at most 1%."""


def settings_problem(adopt: float, bayes_factor: float, level: float = LEVEL) -> str | None:
    """What is wrong with the thresholds of a watch (None: nothing), in the command's words."""
    if not (isinstance(adopt, (int, float)) and 0.5 < adopt <= 1):
        return f"--adopt {adopt:g}: give a probability above 0.5 and at most 1 (the posterior a type needs to be adopted)"
    if not (isinstance(bayes_factor, (int, float)) and 1 < bayes_factor < math.inf):
        return f"--bayes-factor {bayes_factor:g}: give a finite number above 1 (the evidence against a type that raises a flag)"
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        return f"level {level:g}: give the tail mass of the surprise threshold, above 0 and below 1"
    return None
