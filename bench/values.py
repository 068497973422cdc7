"""Recovery and calibration of value inference (issue 7).

Choices are simulated from known utilities under known beliefs (the canonical example's
human), then the utilities are inferred with NUTS.  Over many cases, per number of choices:
how often each utility's 90% interval covers the truth (it should be about 90%), the mean
absolute error of the posterior mean, and the mean width of the intervals.

    python -m bench.values --cases 100 --sizes 5,20,80 [--draws 150] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import time

import torch

from crux.oracle.oracle import Oracle
from crux.values.infer import free_states, infer_values, normalise, simulate_choices
from crux.worldmodel.model import load_model

CANONICAL = os.path.join(os.path.dirname(__file__), "..", "examples", "squirrel_or_cat.yaml")


def true_utilities(rng: random.Random, states: list[tuple[str, str]]) -> torch.Tensor:
    """Random utilities (each outcome's first state at 0), over their range."""
    raw = torch.tensor([rng.gauss(0, 1) for _ in states], dtype=torch.float64)
    return normalise(raw, states)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--sizes", default="5,20,80")
    parser.add_argument("--beta", type=float, default=20.0)
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = load_model(CANONICAL)
    oracle = Oracle(model, device="cpu")
    beliefs = model.beliefs("human")
    states = free_states(model.network)
    combos = [dict(zip(("road", "animal", "oncoming"), c)) for c in itertools.product(("dry", "wet"), ("squirrel", "cat"), ("clear", "car"))]
    rng = random.Random(args.seed)
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    start = time.time()
    for n in sizes:
        covered, errors, widths = [], [], []
        for case in range(args.cases):
            truth = true_utilities(rng, states)
            situations = [rng.choice(combos) for _ in range(n)]
            choices = simulate_choices(oracle, beliefs, truth, args.beta, situations, seed=rng.randrange(2**31))
            post = infer_values(oracle, beliefs, choices, draws=args.draws, warmup=args.draws, seed=case)
            low, high = torch.quantile(post.utility, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
            covered += ((low <= truth) & (truth <= high)).tolist()
            errors += (post.utility.mean(0) - truth).abs().tolist()
            widths += (high - low).tolist()
        rows.append(
            {
                "choices": n,
                "cases": args.cases,
                "coverage_90": sum(covered) / len(covered),
                "mean_abs_error": sum(errors) / len(errors),
                "mean_width": sum(widths) / len(widths),
            }
        )
        print(f"  {n} choices done ({time.time() - start:.0f}s)", flush=True, file=__import__("sys").stderr)
    result = {"rows": rows, "beta": args.beta, "draws": args.draws, "device": "cpu", "cores": os.cpu_count(), "seconds": time.time() - start}
    if args.json:
        print(json.dumps(result))
        return
    print(f"Value inference: {args.cases} simulated cases per size, beta {args.beta}, NUTS {args.draws} draws; cpu, {os.cpu_count()} cores")
    print(f"{'choices':>8} {'90% coverage':>13} {'mean |error|':>13} {'mean width':>11}")
    for r in rows:
        print(f"{r['choices']:>8} {100 * r['coverage_90']:>12.1f}% {r['mean_abs_error']:>13.3f} {r['mean_width']:>11.3f}")
    print(f"({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
