"""Elicitation against a random order of questions (issue 7).

Simulated parties with random true utilities answer noisy-rationally; each run asks
questions until the decision is settled (95% of the posterior agrees) or a cap is hit,
choosing the question by expected information, or at random.  Reported: questions
asked, and how often the settled decision is the one full knowledge of the utilities gives.

    python -m bench.elicit --parties 100 [--cap 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch

from oracle.oracle import Oracle
from values.elicit import Elicitor, simulated_answer
from worldmodel.model import load_model

CANONICAL = os.path.join(os.path.dirname(__file__), "..", "examples", "squirrel_or_cat.yaml")


def run(elicitor: Elicitor, truth: torch.Tensor, order: str, cap: int, rng: random.Random, gen: torch.Generator):
    asked = 0
    while not elicitor.settled() and asked < cap:
        if order == "information":
            question = elicitor.best_question()
        else:
            remaining = [q for q in elicitor.questions if all(q is not a for a, _ in elicitor.asked)]
            question = rng.choice(remaining) if remaining else None
        if question is None:
            break
        elicitor.answer(question, simulated_answer(question, truth, gen))
        asked += 1
    return asked, elicitor.decision()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=100)
    parser.add_argument("--cap", type=int, default=30)
    parser.add_argument("--beta", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = load_model(CANONICAL)
    oracle = Oracle(model, device="cpu")
    beliefs = model.beliefs("human")
    template = Elicitor(oracle, beliefs, seed=args.seed)
    rng = random.Random(args.seed)
    results = {"information": [], "random": []}
    start = time.time()
    for party in range(args.parties):
        raw = torch.tensor([rng.gauss(0, 1) for _ in template.states], dtype=torch.float64)
        truth = args.beta * raw / raw.abs().sum()
        true_decision = template.actions[int((template.decision_features @ truth).argmax())]
        for order in results:
            elicitor = Elicitor.__new__(Elicitor)
            elicitor.__dict__.update(template.__dict__)
            elicitor.log_weight = template.log_weight.clone()
            elicitor.asked = []
            gen = torch.Generator().manual_seed(party)
            asked, decided = run(elicitor, truth, order, args.cap, random.Random(party), gen)
            results[order].append({"questions": asked, "correct": decided == true_decision})
    summary = {
        order: {
            "mean_questions": sum(r["questions"] for r in rows) / len(rows),
            "correct_decision": sum(r["correct"] for r in rows) / len(rows),
            "hit_cap": sum(r["questions"] >= args.cap for r in rows) / len(rows),
        }
        for order, rows in results.items()
    }
    out = {"parties": args.parties, "cap": args.cap, "beta": args.beta, "summary": summary, "seconds": time.time() - start, "device": "cpu", "cores": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
        return
    print(f"Elicitation on the canonical example: {args.parties} simulated parties, beta {args.beta}, cap {args.cap}; cpu, {os.cpu_count()} cores")
    print(f"{'order':<12} {'questions':>10} {'right decision':>15} {'hit the cap':>12}")
    for order, s in summary.items():
        print(f"{order:<12} {s['mean_questions']:>10.2f} {100 * s['correct_decision']:>14.1f}% {100 * s['hit_cap']:>11.1f}%")
    print(f"({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
