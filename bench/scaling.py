"""How do compiling and querying an object-centric scene scale with the scene and the library?

Run::

    python -m bench.scaling [--max-entities 10000] [--libraries 0,50,500] [--repeats 5]
                            [--device cpu] [--no-profile] [--json]

**Scenes.**  A warehouse of ``N`` entities (N = 10, 100, 1,000, 10,000 up to
``--max-entities``): a fifth forklifts ``f<i>``, two fifths workers ``w<i>``, the rest
boxes ``b<i>``.  Seeded (``--seed``), every forklift is ``in_path_of`` 3 distinct workers
and ``near`` 2 distinct boxes, so every forklift's neighbourhood has the same size
whatever ``N`` is.  Types (written to a library file in a temporary folder, used by the
scene through ``use``)::

    Forklift  speed (prior); hazard <- self.speed, in_path_of.present (any), stop;
              damage <- self.speed, near.fragile (any)
    Worker    present <- shift           Box  fragile (prior)

with the world variables ``stop`` (the decision), ``shift`` (a root shared by every
worker) and ``delay <- stop``.  The agent knows one soft fact, a sensor reading about a
worker in ``f0``'s path (reliability 0.8).  The library file holds the scene's 3 types
plus ``K`` unused decoy types (K = ``--libraries``; 3 attributes each, one reading a
relation), so the library grows while the scene stays the same.

**Compile** (``compile s``) is what turns the parsed scene into an oracle ready to answer:
``worldmodel.load.validate_data`` (schema, reading the library, grounding, the cross-field
checks), ``Model.from_scenario`` (the network's structure), ``Model.beliefs("agent")`` (the
agent's Dirichlet tables) and ``Oracle(model)``.  Its phases are timed in the same run by
wrapping the functions that ``validate_data`` calls: ``schema`` (``Scenario.model_validate``
and what else ``validate_data`` does outside the calls below), ``lib yaml`` (``files.read_data``
of the ``use`` file: parsing its YAML), ``library`` (the rest of ``entities.library_types``:
validating the library's types), ``ground`` (the rest of
``entities.ground``), ``checks`` (``checks.check`` on the grounded scenario), ``network``
(``Model.from_scenario``: ``compile.network_of``), ``beliefs`` and ``oracle``.  ``read s`` is
parsing the scene's YAML file (``files.read_data``), not counted in ``compile s``.

**Query.**  ``P(fK.hazard | do(stop=no), wJ.present=present)`` as the agent, where ``fK`` is
``f17`` (``f{17 mod forklifts}`` in scenes with fewer forklifts) and ``wJ`` the first worker in
its path.  ``touched`` is the number of variables the answer can depend on
(``oracle.exact.relevant``: ancestors of the target, the evidence and the agent's soft
evidence in the graph cut at the intervention); ``variables`` is the scene's total.

``pm 1st``     ``Oracle.posterior_means([query])`` on a fresh oracle, contraction-path cache
               cleared (``oracle.exact._plan``): exact posterior means.
``pm rep``     the same call repeated (median of ``--repeats``).
``ask 1st``    ``Oracle.ask(query)`` on the same oracle (90% intervals from 1,000 parameter
               draws; its first call draws them).
``ask rep``    ``Oracle.ask`` repeated (median).
``engine``     ``ExactEngine.marginals`` alone, tables prepared beforehand (median): the
               contraction itself, without the oracle's per-call preparation.

The *touched sweep* asks, on the largest scene, about the hazards of 1, 10 and 100 forklifts
at once (the same evidence), so that what the query touches grows while the scene does not.
``growth`` gives, per phase, the factor by which the time grows when the scene grows tenfold
(between the two largest scenes, library 0): ~10 is linear, ~100 quadratic, ~1 constant.
Unless ``--no-profile``, cProfile's top entries (own time) on the largest scene show where
compile, a repeated ``posterior_means`` and a first and repeated ``ask`` spend their time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import importlib
import io
import json
import math
import os
import platform
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from crux.oracle.exact import ExactEngine, relevant
from crux.oracle.oracle import Oracle
from crux.oracle.query import Query, resolve
from crux.worldmodel.files import read_data
from crux.worldmodel.load import validate_data
from crux.worldmodel.model import Model

SIZES = (10, 100, 1_000, 10_000)
LIBRARIES = (0, 50, 500)
QUERY_FORKLIFT = 17
SWEEP_MAX = 100
"""The touched sweep asks about at most this many forklifts at once."""
PATH_WORKERS, NEAR_BOXES = 3, 2

# -- the scene --------------------------------------------------------------------------------------

SCENE_TYPES: dict[str, Any] = {
    "Forklift": {
        "description": "A forklift: how fast it goes, and what it may hit.",
        "attributes": {
            "speed": {"states": ["slow", "fast"], "prior": [0.7, 0.3]},
            "hazard": {
                "states": ["none", "collision"],
                "parents": ["self.speed", "in_path_of.present", "stop"],
                "aggregate": "any",
                "table": {
                    "slow, no, no": [0.99, 0.01],
                    "slow, no, yes": [1.0, 0.0],
                    "slow, yes, no": [0.8, 0.2],
                    "slow, yes, yes": [0.98, 0.02],
                    "fast, no, no": [0.97, 0.03],
                    "fast, no, yes": [1.0, 0.0],
                    "fast, yes, no": [0.5, 0.5],
                    "fast, yes, yes": [0.9, 0.1],
                },
            },
            "damage": {
                "states": ["none", "damage"],
                "parents": ["self.speed", "near.fragile"],
                "aggregate": "any",
                "table": {
                    "slow, no": [0.99, 0.01],
                    "slow, yes": [0.9, 0.1],
                    "fast, no": [0.95, 0.05],
                    "fast, yes": [0.6, 0.4],
                },
            },
        },
    },
    "Worker": {
        "description": "A person on the floor.",
        "attributes": {
            "present": {
                "states": ["absent", "present"],
                "parents": ["shift"],
                "table": {"quiet": [0.8, 0.2], "busy": [0.4, 0.6]},
            }
        },
    },
    "Box": {
        "description": "A box that may break.",
        "attributes": {"fragile": {"states": ["sturdy", "fragile"], "prior": [0.8, 0.2]}},
    },
}

_DECOY_KINDS = ("Cat", "Dog", "Drone", "Cart", "Robot", "Pallet", "Crane", "Bird")


def decoy_type(k: int) -> tuple[str, dict[str, Any]]:
    """An unused library type: 3 attributes, one reading a relation."""
    name = f"{_DECOY_KINDS[k % len(_DECOY_KINDS)]}{k:04d}"
    return name, {
        "description": f"decoy type {k}, never instantiated",
        "attributes": {
            "mood": {"states": ["calm", "agitated"], "prior": [0.9, 0.1]},
            "moving": {
                "states": ["still", "moving"],
                "parents": ["self.mood"],
                "table": {"calm": [0.7, 0.3], "agitated": [0.2, 0.8]},
            },
            "blocks": {
                "states": ["clear", "blocking"],
                "parents": ["self.moving", "near.present"],
                "aggregate": "any",
                "table": {
                    "still, no": [0.99, 0.01],
                    "still, yes": [0.9, 0.1],
                    "moving, no": [0.8, 0.2],
                    "moving, yes": [0.3, 0.7],
                },
            },
        },
    }


def library(decoys: int) -> dict[str, Any]:
    return {"types": {**SCENE_TYPES, **dict(decoy_type(k) for k in range(decoys))}}


def counts(n: int) -> tuple[int, int, int]:
    """Forklifts, workers, boxes of a scene of ``n`` entities (n >= 10)."""
    forklifts = max(1, n // 5)
    workers = max(PATH_WORKERS, 2 * n // 5)
    return forklifts, workers, max(NEAR_BOXES, n - forklifts - workers)


def scene(n: int, seed: int) -> dict[str, Any]:
    """The scenario data of a scene of ``n`` entities, using ``library.yaml``."""
    forklifts, workers, boxes = counts(n)
    rng = random.Random(seed)
    entities = {f"f{i}": "Forklift" for i in range(forklifts)}
    entities |= {f"w{i}": "Worker" for i in range(workers)}
    entities |= {f"b{i}": "Box" for i in range(boxes)}
    relations = []
    for i in range(forklifts):
        for w in rng.sample(range(workers), PATH_WORKERS):
            relations.append({"type": "in_path_of", "from": f"f{i}", "to": f"w{w}"})
        for b in rng.sample(range(boxes), NEAR_BOXES):
            relations.append({"type": "near", "from": f"f{i}", "to": f"b{b}"})
    sensed = relations[0]["to"]  # a worker in f0's path
    return {
        "crux": 1,
        "name": f"warehouse-{n}",
        "description": f"{forklifts} forklifts, {workers} workers, {boxes} boxes",
        "use": ["library.yaml"],
        "entities": entities,
        "relations": relations,
        "world": {
            "variables": {
                "stop": {"states": ["no", "yes"]},
                "shift": {"states": ["quiet", "busy"], "prior": [0.5, 0.5]},
                "delay": {"states": ["short", "long"], "parents": ["stop"], "table": {"no": [0.9, 0.1], "yes": [0.2, 0.8]}},
            },
            "decision": "stop",
            "outcomes": ["f0.hazard", "delay"],
        },
        "facts": {
            "sensor": {
                "text": f"The floor sensor sees someone at {sensed}'s station.",
                "source": "floor sensor",
                "reliability": 0.8,
                "observe": {f"{sensed}.present": "present"},
            }
        },
        "parties": {
            "agent": {
                "beliefs": {"knows": ["sensor"]},
                "values": {"f0.hazard": {"collision": -100}, "delay": {"long": -10}},
            },
            "human": {"values": {"f0.hazard": {"collision": -30}, "delay": {"long": -10}}},
        },
    }


def query_of(data: dict[str, Any], targets: int = 1) -> Query:
    """P(hazard of ``targets`` forklifts from fK on | do(stop=no), a worker in fK's path present)."""
    forklifts = sum(1 for t in data["entities"].values() if t == "Forklift")
    first = QUERY_FORKLIFT % forklifts
    names = [f"f{(first + j) % forklifts}" for j in range(min(targets, forklifts))]
    worker = next(r["to"] for r in data["relations"] if r["from"] == names[0] and r["type"] == "in_path_of")
    return Query(do={"stop": "no"}, given={f"{worker}.present": "present"}, outcomes=[f"{f}.hazard" for f in names])


def describe(q: Query) -> str:
    given = ", ".join(f"{v}={s}" for v, s in q.given.items())
    do = ", ".join(f"{v}={s}" for v, s in q.do.items())
    return f"P({', '.join(q.outcomes)} | do({do}), {given}) as agent"


# -- timing -----------------------------------------------------------------------------------------


class Phases:
    """Seconds spent inside wrapped functions during one run (nested calls are subtracted)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[float] = []  # time spent in nested wrapped calls, per open call

    @contextlib.contextmanager
    def wrap(self, module: str, attr: str, phase: str) -> Iterator[None]:
        mod = importlib.import_module(module)
        original = getattr(mod, attr)

        def timed(*args, **kwargs):
            self._stack.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                total = time.perf_counter() - start
                nested = self._stack.pop()
                self.seconds[phase] = self.seconds.get(phase, 0.0) + total - nested
                if self._stack:
                    self._stack[-1] += total

        setattr(mod, attr, timed)
        try:
            yield
        finally:
            setattr(mod, attr, original)

    def time(self, phase: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start
        return out


def clear_plans() -> None:
    """Empty the exact engine's contraction-path cache, so that a first call finds its path."""
    plan = getattr(importlib.import_module("crux.oracle.exact"), "_plan", None)
    if plan is not None and hasattr(plan, "cache_clear"):
        plan.cache_clear()


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return 1e3 * (time.perf_counter() - start), out


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed_ms(fn)[0] for _ in range(repeats))


def compile_scene(data: dict[str, Any], base_dir: Path, device: str) -> tuple[Model, Oracle, dict[str, float]]:
    """validate_data + Model.from_scenario + the agent's beliefs + Oracle, with phases timed."""
    phases = Phases()
    with (
        phases.wrap("crux.worldmodel.entities", "library_types", "library"),
        phases.wrap("crux.worldmodel.entities", "read_data", "lib yaml"),
        phases.wrap("crux.worldmodel.load", "ground", "ground"),
        phases.wrap("crux.worldmodel.load", "check", "checks"),
    ):
        start = time.perf_counter()
        scenario, problems = validate_data(data, base_dir=base_dir)
        validate = time.perf_counter() - start
    if scenario is None:
        raise SystemExit("the generated scene is invalid:\n" + "\n".join(p.render("scene") for p in problems[:20]))
    phases.seconds.setdefault("lib yaml", 0.0)
    phases.seconds["schema"] = validate - sum(phases.seconds.values())
    model = phases.time("network", lambda: Model.from_scenario(scenario))
    phases.time("beliefs", lambda: model.beliefs("agent"))
    oracle = phases.time("oracle", lambda: Oracle(model, device=device))
    return model, oracle, phases.seconds


def engine_call(model: Model, q: Query) -> Callable[[], Any]:
    """ExactEngine.marginals on the query, with its tables and inputs built beforehand."""
    net = model.network
    r = resolve(q, net, model.parties, model.default_party)
    state = model.beliefs(r.party)
    tables = {v: state.mean(v).unsqueeze(0) for v in state.concentration}
    engine = ExactEngine(net)
    args = (
        tables,
        dict(state.likelihood),
        [v for v, _ in r.do],
        torch.tensor([[i for _, i in r.do]], dtype=torch.long).reshape(1, -1),
        [v for v, _ in r.given],
        torch.tensor([[i for _, i in r.given]], dtype=torch.long).reshape(1, -1),
        r.outcomes,
    )
    return lambda: engine.marginals(*args)


def touched(model: Model, q: Query) -> int:
    net = model.network
    r = resolve(q, net, model.parties, model.default_party)
    do = [v for v, _ in r.do]
    soft = [v for v in model.beliefs(r.party).likelihood if v not in do]
    return len(relevant(net, r.outcomes, do, [*(v for v, _ in r.given), *soft]))


def measure(n: int, decoys: int, seed: int, repeats: int, device: str, workdir: Path) -> dict[str, Any]:
    folder = workdir / f"n{n}-k{decoys}"
    folder.mkdir()
    (folder / "library.yaml").write_text(yaml.safe_dump(library(decoys), sort_keys=False), encoding="utf-8")
    (folder / "scene.yaml").write_text(yaml.safe_dump(scene(n, seed), sort_keys=False), encoding="utf-8")
    read_ms, data = timed_ms(lambda: read_data(folder / "scene.yaml"))
    gc.collect()
    model, oracle, phases = compile_scene(data, folder, device)
    q = query_of(data)
    target = q.outcomes[0]
    gc.collect()
    clear_plans()
    pm_first, first = timed_ms(lambda: oracle.posterior_means([q]))
    pm_repeat = median_ms(lambda: oracle.posterior_means([q]), repeats)
    clear_plans()
    ask_first, answer = timed_ms(lambda: oracle.ask(q))
    ask_repeat = median_ms(lambda: oracle.ask(q), repeats)
    engine = engine_call(model, q)
    engine()
    engine_ms = median_ms(engine, repeats)
    dist = answer.outcomes[target]
    return {
        "entities": len(data["entities"]),
        "relations": len(data["relations"]),
        "library_types": len(SCENE_TYPES) + decoys,
        "decoys": decoys,
        "variables": len(model.network.order),
        "touched": touched(model, q),
        "query": describe(q),
        "read_s": read_ms / 1e3,
        "compile_s": sum(phases.values()),
        "phases_s": phases,
        "pm_first_ms": pm_first,
        "pm_repeat_ms": pm_repeat,
        "ask_first_ms": ask_first,
        "ask_repeat_ms": ask_repeat,
        "engine_ms": engine_ms,
        "p_collision": float(first[0][target][1]),
        "ask_p_collision": dist.p[1],
        "ask_interval_collision": dist.interval[1],
        "method": answer.method,
    }


def sweep(n: int, seed: int, repeats: int, device: str, workdir: Path) -> list[dict[str, Any]]:
    """On one scene: queries about more and more forklifts' hazards."""
    folder = workdir / f"sweep-n{n}"
    folder.mkdir()
    (folder / "library.yaml").write_text(yaml.safe_dump(library(0), sort_keys=False), encoding="utf-8")
    data = scene(n, seed)
    model, oracle, _ = compile_scene(data, folder, device)
    forklifts = counts(n)[0]
    rows = []
    k = 1
    while True:
        q = query_of(data, targets=min(k, forklifts))
        clear_plans()
        first, _ = timed_ms(lambda: oracle.posterior_means([q]))
        engine = engine_call(model, q)
        engine()
        rows.append(
            {
                "targets": len(q.outcomes),
                "touched": touched(model, q),
                "variables": len(model.network.order),
                "pm_first_ms": first,
                "pm_repeat_ms": median_ms(lambda: oracle.posterior_means([q]), repeats),
                "engine_ms": median_ms(engine, repeats),
            }
        )
        if k >= forklifts or k >= SWEEP_MAX:
            break
        k *= 10
    return rows


# -- where the time goes ----------------------------------------------------------------------------


def profile(fn: Callable[[], Any], top: int = 12) -> list[dict[str, Any]]:
    """cProfile's top entries by own time: [{function, calls, own_s, cumulative_s}]."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short(file)}:{line}({func})" if line else func
        rows.append({"function": where, "calls": calls, "own_s": own, "cumulative_s": cum})
    rows.sort(key=lambda r: -r["own_s"])
    total = sum(r["own_s"] for r in rows)
    return [{"total_s": total}, *rows[:top]]


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python"):
        if marker in file:
            return file.split(marker, 1)[1]
    return os.path.basename(file)


def profiles(n: int, seed: int, device: str, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    folder = workdir / f"profile-n{n}"
    folder.mkdir()
    (folder / "library.yaml").write_text(yaml.safe_dump(library(0), sort_keys=False), encoding="utf-8")
    data = scene(n, seed)
    q = query_of(data)
    out: dict[str, list[dict[str, Any]]] = {}
    held: dict[str, Any] = {}

    def build() -> None:
        scenario, _ = validate_data(data, base_dir=folder)
        held["model"] = model = Model.from_scenario(scenario)
        model.beliefs("agent")
        held["oracle"] = Oracle(model, device=device)

    out["compile (validate_data + Model.from_scenario + beliefs + Oracle)"] = profile(build)
    oracle = held["oracle"]
    oracle.posterior_means([q])
    out["posterior_means, 5 repeated calls"] = profile(lambda: [oracle.posterior_means([q]) for _ in range(5)])
    out["ask, first call"] = profile(lambda: oracle.ask(q))
    out["ask, 5 repeated calls"] = profile(lambda: [oracle.ask(q) for _ in range(5)])
    return out


# -- report -----------------------------------------------------------------------------------------


def host(device: str) -> dict[str, Any]:
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
    }


def growth(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per phase: t(largest scene) / t(scene a tenth its size), library 0."""
    base = {r["entities"]: r for r in rows if r["decoys"] == min(r2["decoys"] for r2 in rows)}
    sizes = sorted(base)
    if len(sizes) < 2:
        return None
    small, large = base[sizes[-2]], base[sizes[-1]]
    scale = large["entities"] / small["entities"]

    def ratio(a: float, b: float) -> float | None:
        return round(b / a, 2) if a > 0 else None

    out: dict[str, Any] = {"from": small["entities"], "to": large["entities"], "scale": scale}
    for phase in large["phases_s"]:
        out[phase] = ratio(small["phases_s"][phase], large["phases_s"][phase])
    for key in ("read_s", "compile_s", "pm_first_ms", "pm_repeat_ms", "ask_first_ms", "ask_repeat_ms", "engine_ms", "variables", "touched"):
        out[key] = ratio(small[key], large[key])
    return out


PHASES = ("schema", "lib yaml", "library", "ground", "checks", "network", "beliefs", "oracle")


def render(result: dict[str, Any]) -> str:
    h, rows = result["host"], result["rows"]
    lines = [
        "Crux scene scaling: compile and query cost against scene size and library size",
        f"device: {h['device']}{' (' + h['gpu'] + ')' if h['gpu'] else ''}; cpu: {h['cpu']}; cores: {h['cpu_count']} "
        f"(usable {h['usable_cores']}); torch {h['torch']} with {h['torch_threads']} threads; python {h['python']}",
        f"query: P(fK.hazard | do(stop=no), wJ.present=present) as agent, fK = f17 (f17 mod forklifts), wJ in its path; "
        f"repeated calls: median of {result['repeats']}",
    ]
    for n in dict.fromkeys(r["entities"] for r in rows):
        lines.append(f"  {n:>6,} entities: {next(r['query'] for r in rows if r['entities'] == n)}")
    lines.append("")
    head = (
        f"{'entities':>8} {'lib types':>9} {'variables':>9} {'read s':>7} {'compile s':>9} | {'pm 1st ms':>9} {'pm rep ms':>9} "
        f"{'ask 1st ms':>10} {'ask rep ms':>10} {'engine ms':>9} | {'touched':>7} {'P(coll.)':>8} {'ask 90% interval':>16}"
    )
    lines += [head, "-" * len(head)]
    for r in rows:
        lo, hi = r["ask_interval_collision"]
        lines.append(
            f"{r['entities']:>8,} {r['library_types']:>9} {r['variables']:>9,} {r['read_s']:>7.2f} {r['compile_s']:>9.3f} | "
            f"{r['pm_first_ms']:>9.1f} {r['pm_repeat_ms']:>9.1f} {r['ask_first_ms']:>10.1f} {r['ask_repeat_ms']:>10.1f} "
            f"{r['engine_ms']:>9.2f} | {r['touched']:>7} {r['p_collision']:>8.4f} {f'[{lo:.3f}, {hi:.3f}]':>16}"
        )
    lines += ["", "compile phases (s):"]
    head = f"{'entities':>8} {'lib types':>9} " + " ".join(f"{p:>8}" for p in PHASES) + f" {'total':>8} {'us/entity':>9}"
    lines += [head, "-" * len(head)]
    for r in rows:
        ph = r["phases_s"]
        lines.append(
            f"{r['entities']:>8,} {r['library_types']:>9} " + " ".join(f"{ph[p]:>8.3f}" for p in PHASES)
            + f" {r['compile_s']:>8.3f} {1e6 * r['compile_s'] / r['entities']:>9.0f}"
        )
    g = result.get("growth")
    if g:
        lines += [
            "",
            f"growth from {g['from']:,} to {g['to']:,} entities (x{g['scale']:g}; ~{g['scale']:g} is linear, "
            f"~{g['scale'] ** 2:g} quadratic, ~1 constant):",
            "  compile phases: " + ", ".join(f"{p} x{g[p]}" for p in PHASES if g.get(p) is not None)
            + f"; compile x{g['compile_s']}; read x{g['read_s']}",
            f"  query: pm 1st x{g['pm_first_ms']}, pm rep x{g['pm_repeat_ms']}, ask 1st x{g['ask_first_ms']}, "
            f"ask rep x{g['ask_repeat_ms']}, engine x{g['engine_ms']}; variables x{g['variables']}, touched x{g['touched']}",
        ]
    lib = result.get("library_effect")
    if lib:
        lines += ["", "library effect (largest library against none, same scene):"]
        for e in lib:
            lines.append(
                f"  {e['entities']:>6,} entities: lib yaml + library +{e['library_s']:.3f} s, other compile phases "
                f"{e['other_s_small']:.3f} -> {e['other_s_large']:.3f} s, pm rep {e['pm_small']:.1f} -> {e['pm_large']:.1f} ms, "
                f"same answer: {e['same_answer']}"
            )
    if result.get("sweep"):
        s = result["sweep"]
        lines += ["", f"touched sweep on the {result['sweep_entities']:,}-entity scene (library 0): hazards of k forklifts at once"]
        head = f"{'targets':>7} {'touched':>7} {'variables':>9} | {'pm 1st ms':>9} {'pm rep ms':>9} {'engine ms':>9}"
        lines += [head, "-" * len(head)]
        for r in s:
            lines.append(
                f"{r['targets']:>7} {r['touched']:>7} {r['variables']:>9,} | {r['pm_first_ms']:>9.1f} {r['pm_repeat_ms']:>9.1f} {r['engine_ms']:>9.2f}"
            )
    for title, entries in (result.get("profiles") or {}).items():
        total = entries[0]["total_s"]
        lines += ["", f"cProfile, {result['profile_entities']:,} entities, {title}: {total:.2f} s profiled; top by own time"]
        for e in entries[1:]:
            lines.append(f"  {e['own_s']:>7.3f} own {e['cumulative_s']:>7.3f} cum {e['calls']:>9,} calls  {e['function']}")
    lines += [
        "",
        f"total bench time {result['elapsed_s']:.1f} s; peak resident memory {result['peak_rss_mib']:,.0f} MiB",
        "columns: read s = parsing the scene YAML (not in compile); compile s = validate_data + Model.from_scenario + "
        "agent beliefs + Oracle; pm = Oracle.posterior_means; ask = Oracle.ask (intervals); 1st = fresh oracle, "
        "path cache cleared; rep = median of repeats; engine = ExactEngine.marginals alone; touched = "
        "oracle.exact.relevant of the query; P(coll.) = exact posterior mean of collision.",
    ]
    return "\n".join(lines)


def sizes_up_to(limit: int) -> list[int]:
    sizes = [s for s in SIZES if s <= limit]
    s = SIZES[-1] * 10
    while s <= limit:
        sizes.append(s)
        s *= 10
    if limit >= 10 and limit not in sizes:
        sizes.append(limit)
    return sizes


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    sizes = sizes_up_to(args.max_entities)
    if not sizes:
        raise SystemExit("--max-entities must be at least 10")
    libraries = [int(x) for x in args.libraries.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="crux-scaling-") as tmp:
        workdir = Path(tmp)
        (workdir / "warm-up").mkdir()
        measure(10, 0, args.seed, 1, args.device, workdir / "warm-up")  # torch's and pydantic's first-use costs
        for n in sizes:
            for k in libraries:
                rows.append(measure(n, k, args.seed, args.repeats, args.device, workdir))
                gc.collect()
                if not args.json:
                    r = rows[-1]
                    print(
                        f"  ... {r['entities']:,} entities, {r['library_types']} library types: compile {r['compile_s']:.2f} s, "
                        f"ask first {r['ask_first_ms'] / 1e3:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        largest = sizes[-1]
        sweep_rows = sweep(largest, args.seed, args.repeats, args.device, workdir)
        gc.collect()
        profs = None if args.no_profile else profiles(largest, args.seed, args.device, workdir)
    library_effect = []
    lo, hi = min(libraries), max(libraries)
    if lo != hi:
        for n in sizes:
            a = next(r for r in rows if r["entities"] == n and r["decoys"] == lo)
            b = next(r for r in rows if r["entities"] == n and r["decoys"] == hi)
            lib_a = a["phases_s"]["library"] + a["phases_s"]["lib yaml"]
            lib_b = b["phases_s"]["library"] + b["phases_s"]["lib yaml"]
            library_effect.append(
                {
                    "entities": a["entities"],
                    "library_s": lib_b - lib_a,
                    "other_s_small": a["compile_s"] - lib_a,
                    "other_s_large": b["compile_s"] - lib_b,
                    "pm_small": a["pm_repeat_ms"],
                    "pm_large": b["pm_repeat_ms"],
                    "same_answer": math.isclose(a["p_collision"], b["p_collision"], rel_tol=0, abs_tol=1e-12),
                }
            )
    return {
        "host": host(args.device),
        "seed": args.seed,
        "repeats": args.repeats,
        "sizes": sizes,
        "libraries": libraries,
        "rows": rows,
        "growth": growth(rows),
        "library_effect": library_effect,
        "sweep_entities": rows[-1]["entities"],
        "sweep": sweep_rows,
        "profile_entities": rows[-1]["entities"],
        "profiles": profs,
        "elapsed_s": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-entities", type=int, default=10_000, help="largest scene (default 10000)")
    parser.add_argument("--libraries", default=",".join(map(str, LIBRARIES)), help="decoy types in the library (default 0,50,500)")
    parser.add_argument("--repeats", type=int, default=5, help="repeated calls timed per query (median; default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes' relations (default 0)")
    parser.add_argument("--device", default="cpu", help="the oracle's device: cpu (default), cuda or auto")
    parser.add_argument("--no-profile", action="store_true", help="skip cProfile of the largest scene")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the tables")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
