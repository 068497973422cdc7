"""Does ``crux watch`` end with the right type, and after how many observations?

Run::

    python -m bench.watch [--seeds 20] [--steps 24] [--observe 0.8] [--json]

For each type the warehouse scene can use (``examples/warehouse/``: Forklift, Box and Worker of
``library/warehouse.yaml``, Cat and Dog of ``library/animals.yaml``) and for one type that no
library holds (:data:`ROBOT`, a delivery robot), ``--seeds`` streams are drawn from the type's own
rows (:func:`crux.beliefs.streams.sample_stream`): the entity ``unknown_object`` over steps 0 ..
``--steps``, its attributes that every library type shares (size, motion, speed, sound), each
one that changes over time seen at each step with probability ``--observe`` (size once, at step
0).  Each stream is watched on the warehouse scene with ``unknown_object`` typed, at the start,
as another type (the next in the library's order; the robot's streams start as a Box), with the
world's own beliefs (``--as world``: no party's facts about the object) and the defaults
(``--adopt 0.9``, ``--bayes-factor 100``).

Reported per drawn type: the streams, their observations, how many end with the right type (the
drawn type; for the robot, its new kind), the types they end with, and the observations of the
entity until its last re-typing (the adoption of the type it ends with): median and range.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "examples" / "warehouse" / "scene.yaml"
ENTITY = "unknown_object"

ROBOT = {
    "description": "A guide robot: large, fast when it moves, talking to the people around it most of the time.",
    "attributes": {
        "size": {"states": ["small", "medium", "large"], "prior": [0.02, 0.08, 0.9]},
        "motion": {
            "states": ["still", "moving"],
            "prior": [0.3, 0.7],
            "next": {"parents": ["self.motion"], "table": {"still": [0.5, 0.5], "moving": [0.2, 0.8]}},
        },
        "speed": {
            "states": ["zero", "slow", "fast"],
            "parents": ["self.motion"],
            "table": {"still": [0.95, 0.03, 0.02], "moving": [0.05, 0.15, 0.8]},
        },
        "sound": {
            "states": ["quiet", "engine", "meow", "bark", "voice"],
            "parents": ["self.motion"],
            "table": {"still": [0.5, 0.01, 0.005, 0.005, 0.48], "moving": [0.3, 0.1, 0.005, 0.005, 0.59]},
        },
    },
}
"""A type that is in no library: the new-kind case."""


@dataclass
class Outcome:
    """One watched stream."""

    drawn: str
    start: str
    seed: int
    observations: int
    adopted: str
    right: bool
    until: int | None
    """Observations of the entity until it was re-typed to the type it ends with (None: never)."""


def library() -> dict[str, Any]:
    """The types the warehouse scene can use, by name (its ``use`` files, in order)."""
    from crux.worldmodel.entities import library_types
    from crux.worldmodel.load import load_scenario

    types, _ = library_types(load_scenario(SCENE), SCENE.parent)
    return types


def shared(types: dict[str, Any]) -> list[str]:
    """The attributes every type has (in the first type's order)."""
    first = next(iter(types.values()))
    return [a for a in first.attributes if all(a in t.attributes for t in types.values())]


def run(seeds: int = 20, steps: int = 24, observe: float = 0.8, drawn: Sequence[str] | None = None) -> list[Outcome]:
    """Watch ``seeds`` streams of each type (and of the robot, named ``Robot``)."""
    from crux.beliefs.revision import Watch
    from crux.beliefs.streams import sample_stream
    from crux.worldmodel.files import read_data
    from crux.worldmodel.spec import EntityType

    types = library()
    names = list(types)
    attributes = shared(types)
    cases = [(name, types[name], names[(i + 1) % len(names)]) for i, name in enumerate(names)]
    cases.append(("Robot", EntityType.model_validate(ROBOT), "Box"))
    data = read_data(SCENE)
    out = []
    for name, spec, start in cases:
        if drawn is not None and name not in drawn:
            continue
        scene = {**data, "entities": {**data["entities"], ENTITY: start}}
        watcher = Watch(SCENE, data=scene, party="world")  # the streams of one type as one batch
        streams = [sample_stream(spec, ENTITY, steps, seed, attributes=attributes, observe=observe) for seed in range(seeds)]
        reports = watcher.run_many(streams, [f"{name} seed {seed}" for seed in range(seeds)])
        for seed, (stream, report) in enumerate(zip(streams, reports)):
            final = report.types[ENTITY]
            new = final == report.summary["entities"][ENTITY]["new_kind"]
            right = new if name == "Robot" else final == name
            last = [e for e in report.summary["retyped"] if e["entity"] == ENTITY and e["to"] == final]
            out.append(Outcome(name, start, seed, len(stream), "(new kind)" if new else final, right, last[-1]["seen"] if last else None))
    return out


def table(outcomes: Sequence[Outcome]) -> str:
    """One row per drawn type."""
    head = ("drawn from", "start", "streams", "obs", "right", "adopted", "obs until adoption: median [range]")
    rows = []
    for drawn in dict.fromkeys(o.drawn for o in outcomes):
        mine = [o for o in outcomes if o.drawn == drawn]
        until = [o.until for o in mine if o.until is not None]
        adopted = ", ".join(f"{name} {n}" for name, n in Counter(o.adopted for o in mine).most_common())
        span = f"{statistics.median(until):g} [{min(until)}-{max(until)}]" if until else "-"
        rows.append((
            f"{drawn} (not in the library)" if drawn == "Robot" else drawn, mine[0].start, str(len(mine)),
            f"{statistics.mean(o.observations for o in mine):.1f}",
            f"{sum(o.right for o in mine)}/{len(mine)}", adopted, span,
        ))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="streams per type (default 20)")
    parser.add_argument("--steps", type=int, default=24, help="last step of each stream (default 24)")
    parser.add_argument("--observe", type=float, default=0.8, help="chance that an attribute is seen at a step (default 0.8)")
    parser.add_argument("--json", action="store_true", help="one JSON object per stream instead of the table")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 0 or not 0 < args.observe <= 1:
        parser.error("--seeds must be 1 or more, --steps 0 or more, --observe above 0 and at most 1")
    started = time.perf_counter()
    outcomes = run(args.seeds, args.steps, args.observe)
    if args.json:
        for o in outcomes:
            print(json.dumps(asdict(o)))
        return 0
    print(f"python -m bench.watch --seeds {args.seeds} --steps {args.steps} --observe {args.observe:g}")
    print(table(outcomes))
    print(f"{len(outcomes)} streams in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
