"""How fast and how exact is Crux's oracle, side by side with pyAgrum and pgmpy?

Run::

    python -m bench.oracle [--networks asia,sachs,...] [--queries 1000] [--seed 0] [--json]

Needs ``pyagrum`` and ``pgmpy`` (``pip install pgmpy``): the networks are bnlearn's BIF
files that pgmpy's wheel ships in ``pgmpy/utils/example_models/``.  Each network runs in
a fresh process (so that its peak memory is its own); nothing is downloaded.

**Queries.**  Per network, seeded: interventional queries P(T | do(X=x), E=e) with a
random target T, one intervened variable X with a random state x, and evidence E;
evidence states come from one forward sample of the network cut at X (X fixed to x), so
every query's evidence has non-zero probability.  Two sets of ``--queries`` each:

``same``   one structure for all (the same T, X and 3 evidence variables, or fewer on
           tiny networks); x and e differ per query.
``mixed``  a fresh random T, X and 0-3 evidence variables per query.

**Engines.**

``crux batch``   ``Oracle.posterior_means(all queries)`` (exact, posterior means): one
                 einsum contraction per structure (``same``), one junction tree pass per
                 chunk for a batch of mixed structure (``mixed``).  *cold* starts from a
                 cold oracle (no contraction path, no junction tree: both are found or
                 built inside the timed call), the median of five such calls, each after
                 forgetting everything; *warm* is the fastest of three more calls.  Every
                 timing here, Crux's and the others', runs as ``timeit`` does: one garbage
                 collection, then the collector off and the calls back to back (a call of a
                 few milliseconds right after a collection or a pause paid the machine's
                 waking, up to 3x its time).
``columns``      ``Oracle.ask_columns``: the ``same`` set given as columns of state
                 indices (numpy arrays), one contraction, no object per query; cold and
                 warm as above.
``crux single``  ``posterior_means([q])`` one query at a time (at most ``--single`` of
                 them or ``--phase-seconds``): on ``mixed`` every query is a new structure,
                 so each call finds a new path; on ``same`` the path is cached after the
                 first call.  ``ask`` times ``Oracle.ask`` (answers with intervals) on the
                 first 50 of the same queries right after, so with their paths cached.
``pyAgrum``      ``LazyPropagation`` on the cut network (X's incoming arcs erased, X's table
                 uniform, then hard evidence X=x and E=e): one engine per intervened
                 variable, built on first use (its build is timed) and reused with the
                 evidence and the target (``setTargets({T})``) changed per query: every
                 query of both sets.  ``pyA all`` is the same engine left with its default
                 targets (every variable), as in the project's notes: 5-200x slower, on the
                 first ``--single`` queries (or ``--phase-seconds``).  Its BIF parser reads numbers as float32, so
                 its tables are refilled with float64 numbers from pgmpy's parse of the
                 file (an independent reader); the column ``pyA f32`` is the difference
                 to pyAgrum with the tables its own parser read, on at most 100 queries.
                 pyAgrum's parser rejects child (states ``Asy/Patch``, ``<5``, ``12+``):
                 there the network is built through pyAgrum's API from the structure and
                 filled the same way (``pyA note``: built by API; no ``pyA f32``).
``pgmpy``        ``VariableElimination`` on ``model.do([X])`` with evidence {X: x, **E}
                 (not ``CausalInference.query``, which is wrong with do plus evidence): one
                 engine per intervened variable, on the first ``--pgmpy-queries`` queries
                 of each set (or ``--phase-seconds``), timed per query.

Every table is normalised row by row in all three (some BIF rows sum to 0.9999999; Crux
normalises them when it reads the file).  ``max |d|`` is the largest absolute difference
between Crux's batched answers and the reference's, over every state of every answered
query of both sets; ``single/cols`` is Crux one by one and as columns against Crux batched.

**Work.**  The mean number of tables a query multiplies: the einsum engine's (every ancestor of
the target and the evidence in the network cut at X: Crux's batch of one structure and its
single queries; a mixed batch runs the junction tree, which holds every table) and
d-separation's (Bayes-ball, :func:`requisite`):
pyAgrum's targeted engine and pgmpy drop what the target is d-separated from, evidence included,
so they never weigh whether that evidence is possible.  A probe shows it: in A -> B -> C with
P(A=a1) = 0, given A=a1 and B=b1, they answer C's row for b1; Crux refuses the impossible
evidence.  Where d-separation leaves one table of twenty (hailfinder's ``same`` set), the
targeted engine does a twentieth of the work per query.

**Sampling.**  Forward samples per second, no evidence, of every variable: Crux's
vectorised sampler (``Sampler.marginals`` over the whole network, ``--particles``
particles, one summarised target, after a warm-up call), pyAgrum's C++ ``BNDatabaseGenerator.drawSamples`` (samples kept in
C++; a DataFrame would cost more) and pgmpy's ``BayesianModelSampling.forward_sample``
(``n_jobs=1``, returns a DataFrame).  ``crux oracle`` is the user's path,
``Oracle(method='sampled').posterior_means`` about the last variable in topological order:
it samples only that variable's ancestors (their count in brackets), so it is not a
whole-network rate.

**Memory.**  Peak resident memory of the network's process (``getrusage`` maxrss):
``base`` after importing torch and Crux, ``exact`` after Crux's exact runs, ``crux``
after its sampler too (before pyAgrum and pgmpy are imported), ``all`` at the end.

**BIF readers.**  Every ``*.bif.gz`` in pgmpy's example models is read by Crux's reader
and by pyAgrum's (timed); Crux's tables are compared with pyAgrum's (normalised; pyAgrum
keeps float32, so ~1e-8 is agreement) and, for the benchmarked networks, with pgmpy's.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import resource
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

NETWORKS = (
    "asia", "sachs", "child", "insurance", "alarm", "hailfinder", "win95pts", "andes",
    "hepar2", "water", "pathfinder", "pigs",
)
"""The default: issue 5's eight, and four more that fit in a few minutes on 2 cores."""
EXTRA = ("munin1",)
"""What ``--networks all`` adds (slow: pyAgrum with all targets needs minutes per query).  ``link``
runs too when named, but its process was killed (memory) in pyAgrum on a 23 GiB machine."""


def example_models() -> Path:
    """pgmpy's example_models folder, found without importing pgmpy (slow)."""
    spec = importlib.util.find_spec("pgmpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench.oracle needs pgmpy: pip install pgmpy")
    return Path(next(iter(spec.submodule_search_locations))) / "utils" / "example_models"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def commit() -> str:
    """The checkout's commit, and whether the engine's files differ from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "oracle", "worldmodel"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "-"
    return (head or "-") + (" (oracle/ or worldmodel/ modified)" if dirty else "")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- queries -------------------------------------------------------------------------------


def forward_cut(net, tables: dict[str, np.ndarray], do_var: list[str], do_idx: np.ndarray, rng) -> dict[str, np.ndarray]:
    """One forward sample per row of the network cut at ``do_var[row]`` (fixed to ``do_idx[row]``)."""
    rows = len(do_var)
    do_var_arr = np.array(do_var, dtype=object)
    values: dict[str, np.ndarray] = {}
    for var in net.order:
        card = net.card(var)
        flat = np.zeros(rows, dtype=np.int64)
        for parent in net.parents[var]:
            flat = flat * net.card(parent) + values[parent]
        probs = tables[var].reshape(-1, card)[flat]
        cum = probs.cumsum(1)
        u = rng.random(rows) * cum[:, -1]  # strictly below the total: a zero-probability last state is never drawn
        state = np.minimum((cum <= u[:, None]).sum(1), card - 1)
        fixed = do_var_arr == var
        state[fixed] = do_idx[fixed]
        values[var] = state
    return values


def make_queries(net, tables: dict[str, np.ndarray], n: int, kind: str, rng) -> list[tuple]:
    """``n`` queries ``(target, x_var, x_idx, ((e_var, e_idx), ...))``."""
    names = list(net.order)
    if kind == "same":
        k = min(3, len(names) - 2)
        pick = rng.choice(len(names), size=2 + k, replace=False)
        shapes = [[names[j] for j in pick]] * n
    else:
        shapes = []
        for _ in range(n):
            k = min(int(rng.integers(0, 4)), len(names) - 2)
            shapes.append([names[j] for j in rng.choice(len(names), size=2 + k, replace=False)])
    do_var = [s[1] for s in shapes]
    do_idx = np.array([int(rng.integers(net.card(x))) for x in do_var])
    sample = forward_cut(net, tables, do_var, do_idx, rng)
    out = []
    for i, (target, x, *evidence) in enumerate(shapes):
        out.append((target, x, int(do_idx[i]), tuple((e, int(sample[e][i])) for e in evidence)))
    return out


def children_of(net) -> dict[str, list[str]]:
    """Each variable's children (the network keeps parents only)."""
    children: dict[str, list[str]] = {v: [] for v in net.order}
    for v in net.order:
        for p in net.parents[v]:
            children[p].append(v)
    return children


def requisite(net, children: dict[str, list[str]], target: str, do: str, given) -> set[str]:
    """The variables whose tables ``P(target | do(X=x), given)`` needs once the network is pruned
    by d-separation (Bayes-ball, Shachter 1998): what pyAgrum's targeted engine and pgmpy's
    pruning multiply.  X is fixed (observed, no parents).  Crux multiplies the tables of every
    ancestor of the target and the evidence instead (:func:`oracle.exact.relevant`): a
    d-separated observation is still weighed, to refuse evidence of probability 0.  ``children``:
    :func:`children_of` the network."""
    known = {do, *given}
    top: set[str] = set()
    bottom: set[str] = set()
    ball = [(target, True)]  # (variable, visited from a child)
    while ball:
        var, from_child = ball.pop()
        if var in known:
            if not from_child and var not in top and var != do:  # the ball bounces up off evidence
                top.add(var)
                ball += [(p, True) for p in net.parents[var]]
            continue
        if from_child and var not in top:
            top.add(var)
            ball += [(p, True) for p in net.parents[var]]
        if var not in bottom:
            bottom.add(var)
            ball += [(c, False) for c in children[var]]
    return top


def probe_semantics() -> dict[str, str]:
    """What each engine says of P(C | A=a1, B=b1) in A -> B -> C where P(A=a1) = 0: B seen
    d-separates A from C, so d-separation pruning never weighs A's impossible evidence."""
    import pyagrum as gum

    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query, QueryError
    from crux.worldmodel.model import load_model

    text = """network probe { }
variable A { type discrete [ 2 ] { a0, a1 }; }
variable B { type discrete [ 2 ] { b0, b1 }; }
variable C { type discrete [ 2 ] { c0, c1 }; }
probability ( A ) { table 1.0, 0.0; }
probability ( B | A ) { (a0) 1.0, 0.0; (a1) 0.0, 1.0; }
probability ( C | B ) { (b0) 0.3, 0.7; (b1) 0.6, 0.4; }
"""
    out: dict[str, str] = {}

    def said(fn) -> str:
        try:
            return "answers " + ", ".join(f"{p:.2f}" for p in fn())
        except Exception as err:  # what it says of impossible evidence is what is probed
            return f"refuses ({type(err).__name__})"

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.bif"
        path.write_text(text)
        oracle = Oracle(load_model(path), device="cpu", method="exact")
        out["crux"] = said(lambda: oracle.posterior_means([Query(given={"A": "a1", "B": "b1"}, outcomes=["C"])])[0]["C"].tolist())
        bn = load_pyagrum(text)
        for label, targeted in (("pyAgrum targeted", True), ("pyAgrum all targets", False)):
            def pyagrum(targeted=targeted):
                engine = gum.LazyPropagation(bn)
                if targeted:
                    engine.setTargets({"C"})
                engine.setEvidence({"A": 1, "B": 1})
                engine.makeInference()
                return engine.posterior("C").toarray().tolist()
            out[label] = said(pyagrum)
        if importlib.util.find_spec("pgmpy") is None:
            out["pgmpy"] = "not installed"
        else:
            from pgmpy.inference import VariableElimination
            from pgmpy.readwrite import BIFReader

            pg = VariableElimination(BIFReader(string=text).get_model())
            out["pgmpy"] = said(lambda: pg.query(["C"], evidence={"A": "a1", "B": "b1"}, show_progress=False).values.tolist())
    assert "refuses" in out["crux"], out  # Crux must not answer from impossible evidence
    return out


# -- one network ---------------------------------------------------------------------------


@contextmanager
def collector_off():
    """Timing as ``timeit`` does: one collection first, then the cyclic garbage collector off
    while the timed calls run back to back."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def timed_loop(items, fn, limit: float, cap: int | None = None):
    """Call ``fn`` on items until ``cap`` items or ``limit`` seconds; (results, seconds)."""
    results = []
    with collector_off():
        start = time.perf_counter()
        for i, item in enumerate(items):
            if cap is not None and i >= cap:
                break
            results.append(fn(item))
            if time.perf_counter() - start > limit:
                break
        return results, time.perf_counter() - start


def best_of(n: int, fn) -> float:
    """The fastest of ``n`` timed calls, back to back (:func:`collector_off`)."""
    best = float("inf")
    with collector_off():
        for _ in range(n):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return best


def cold(oracle, fn, n: int = 5) -> tuple:
    """The first answer of ``fn`` and the median seconds of ``n`` calls, each on a cold oracle
    (:func:`forget`), back to back (:func:`collector_off`).  Each call right after a collection
    or a pause paid the machine's waking: one 1,000-query hailfinder columns call took 0.25 ms
    back to back and 0.9-1.5 ms after a 10 ms sleep or a collection, so a figure of a few
    milliseconds moved 2-3x between runs."""
    results, seconds = [], []
    with collector_off():
        for _ in range(n):
            forget(oracle, collect=False)
            t = time.perf_counter()
            results.append(fn())
            seconds.append(time.perf_counter() - t)
    return results[0], sorted(seconds)[n // 2]


def max_diff(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float | None:
    pairs = [(a, b) for a, b in zip(ours, theirs) if b is not None]
    if not pairs:
        return None
    return float(max(np.abs(a - b).max() for a, b in pairs))


def forget(oracle, collect: bool = True) -> None:
    """Back to a cold oracle (:meth:`Oracle.clear`), and, with ``collect``, the garbage collected."""
    oracle.clear()
    if collect:
        gc.collect()


def run_network(name: str, path: str, opts: dict) -> dict:
    """Every measurement on one network (run in its own process)."""
    warnings.filterwarnings("ignore")
    import torch

    from crux.oracle import exact as exact_module
    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query

    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    res: dict = {"network": name, "rss_base_mb": maxrss_mb()}
    t = time.perf_counter()
    from crux.worldmodel.model import load_model

    model = load_model(path)
    res["crux_load_s"] = time.perf_counter() - t
    net = model.network
    world = model.beliefs("world")
    tables = {v: world.mean(v).numpy() for v in net.order}
    res["variables"] = len(net.order)
    res["arcs"] = sum(len(p) for p in net.parents.values())
    res["parameters"] = int(sum(t.size for t in tables.values()))

    rng = np.random.default_rng(opts["seed"])
    sets = {kind: make_queries(net, tables, opts["queries"], kind, rng) for kind in ("same", "mixed")}

    def crux_query(q):
        target, x, xi, evidence = q
        return Query(
            do={x: net.states[x][xi]},
            given={e: net.states[e][ei] for e, ei in evidence},
            outcomes=[target],
        )

    children = children_of(net)
    res["work"] = {  # tables per query: Crux's (ancestors of target and evidence) and d-separation's
        kind: (
            float(np.mean([len(exact_module.relevant(net, [t], [x], [e for e, _ in ev]) - {x}) for t, x, _, ev in qs])),
            float(np.mean([len(requisite(net, children, t, x, [e for e, _ in ev])) for t, x, _, ev in qs])),
        )
        for kind, qs in sets.items()
    }
    oracle = Oracle(model, device=opts["device"], samples=2, method="exact")
    res["device"] = oracle.device.type
    limit = opts["phase_seconds"]
    crux: dict[str, dict] = {}
    answers: dict[str, list[np.ndarray]] = {}
    for kind, queries in sets.items():
        qs = [crux_query(q) for q in queries]
        row: dict = {"queries": len(qs)}
        # batched, cold then warm
        out, row["batch_cold_s"] = cold(oracle, lambda: oracle.posterior_means(qs))
        answers[kind] = [out[i][q[0]].numpy() for i, q in enumerate(queries)]
        row["batch_warm_s"] = best_of(3, lambda: oracle.posterior_means(qs))
        row["groups"] = len({(q[0], q[1], tuple(e for e, _ in q[3])) for q in queries})
        if kind == "same":  # the same queries as columns of state indices (Oracle.ask_columns)
            target, x, _, evidence = queries[0]
            do = {x: np.array([q[2] for q in queries])}
            seen = {e: np.array([q[3][j][1] for q in queries]) for j, (e, _) in enumerate(evidence)}
            columns, row["columns_cold_s"] = cold(oracle, lambda: oracle.ask_columns([target], do=do, given=seen))
            columns = columns[target].numpy()
            row["columns_warm_s"] = best_of(3, lambda: oracle.ask_columns([target], do=do, given=seen))
            row["columns_vs_batch"] = float(np.abs(columns - np.stack(answers[kind])).max())
        # one by one
        forget(oracle)
        single, seconds = timed_loop(qs, lambda q: oracle.posterior_means([q]), limit, opts["single"])
        row["single_n"], row["single_s"] = len(single), seconds
        row["single_vs_batch"] = max_diff(
            answers[kind][: len(single)], [s[0][q.outcomes[0]].numpy() for s, q in zip(single, qs)]
        )
        # with intervals (ask): the user-facing path, a few queries
        asked, seconds = timed_loop(qs, oracle.ask, limit / 4, min(50, opts["single"]))
        row["ask_n"], row["ask_s"] = len(asked), seconds
        crux[kind] = row
        log(
            f"  {name} {kind}: crux batch {len(qs) / row['batch_cold_s']:,.0f} q/s cold, "
            f"{len(qs) / row['batch_warm_s']:,.0f} warm; single {row['single_n'] / row['single_s']:,.0f} q/s"
        )
    res["crux"] = crux
    res["rss_exact_mb"] = maxrss_mb()

    # Crux sampler over the whole network (Sampler.marginals, no pruning): warm-up, then
    # forward samples (no evidence, no intervention); then the oracle's path, which samples
    # only the target's ancestors.
    from crux.oracle.sample import Sampler

    last = net.order[-1]
    full = {v: world.mean(v).unsqueeze(0).to(oracle.device) for v in net.order}
    empty = torch.zeros((1, 0), dtype=torch.long, device=oracle.device)
    generator = torch.Generator(device=oracle.device).manual_seed(opts["seed"])
    sampler = Sampler(net)

    def draw(particles: int):
        return sampler.marginals(full, {}, [], empty, [], empty, [last], particles, generator)

    draw(1000)
    res["crux_samples_per_s"] = opts["particles"] / best_of(2, lambda: draw(opts["particles"]))
    del full
    pruned = Oracle(model, device=opts["device"], samples=2, method="sampled", particles=opts["particles"])
    res["crux_oracle_sampled_variables"] = len(exact_module.relevant(net, [last], [], []))
    res["crux_oracle_samples_per_s"] = opts["particles"] / best_of(
        1, lambda: pruned.posterior_means([Query(outcomes=[last])])
    )
    res["rss_crux_mb"] = maxrss_mb()
    del pruned
    log(f"  {name}: crux sampler {res['crux_samples_per_s']:,.0f}/s, rss {res['rss_crux_mb']:,.0f} MB")

    # pgmpy: load once (timed), the float64 reference numbers
    from pgmpy.inference import VariableElimination
    from pgmpy.readwrite import BIFReader
    from pgmpy.sampling import BayesianModelSampling

    text = gzip.decompress(Path(path).read_bytes()).decode("utf-8")
    t = time.perf_counter()
    pg = BIFReader(string=text).get_model()
    res["pgmpy_load_s"] = time.perf_counter() - t
    pg_states = {}
    pg_tables = {}
    for var in net.order:
        cpd = pg.get_cpds(var)
        cpd.normalize()
        pg_states[var] = list(cpd.state_names[var])
        if pg_states[var] != list(net.states[var]):
            raise RuntimeError(f"pgmpy reads the states of {var} as {pg_states[var]}, Crux as {list(net.states[var])}")
        order = [*net.parents[var], var]
        values = np.transpose(cpd.values, [cpd.variables.index(v) for v in order])
        for j, v in enumerate(order[:-1]):  # parents' states in Crux's order
            if list(cpd.state_names[v]) != list(net.states[v]):
                values = np.take(values, [list(cpd.state_names[v]).index(s) for s in net.states[v]], axis=j)
        pg_tables[var] = values
    res["tables_vs_pgmpy"] = float(max(np.abs(pg_tables[v] - tables[v]).max() for v in net.order))

    # pyAgrum
    import pyagrum as gum

    gum.initRandom(opts["seed"])
    t = time.perf_counter()
    parsed = load_pyagrum(text)
    res["pyagrum_load_s"] = time.perf_counter() - t
    res["pyagrum_parsed"] = parsed is not None
    bn = build_pyagrum(net) if parsed is None else gum.BayesNet(parsed)
    for var in net.order:
        labels = list(bn.variable(var).labels())
        if labels != list(net.states[var]):
            raise RuntimeError(f"pyAgrum reads the states of {var} as {labels}, Crux as {list(net.states[var])}")
        fill_cpt(bn, var, net, pg_tables[var])
        if parsed is not None:
            parsed.cpt(var).normalizeAsCPT()  # the tables as pyAgrum's parser read them (float32)

    def pyagrum_runner(network, targeted: bool = True):
        engines: dict[str, tuple] = {}

        def answer(q):
            target, x, xi, evidence = q
            if x not in engines:
                cut = gum.BayesNet(network)
                for parent in list(cut.parents(x)):
                    cut.eraseArc(parent, cut.idFromName(x))
                cut.cpt(x).fillWith(1.0).normalize()
                engines[x] = (cut, gum.LazyPropagation(cut))
            engine = engines[x][1]
            if targeted:
                engine.setTargets({target})
            engine.setEvidence({x: xi, **dict(evidence)})
            engine.makeInference()
            return engine.posterior(target).toarray()

        return answer, engines

    pyagrum: dict[str, dict] = {}
    diffs, diffs_f32 = [], []
    for kind, queries in sets.items():
        answer, engines = pyagrum_runner(bn)
        gc.collect()
        theirs, seconds = timed_loop(queries, answer, 6 * limit)
        diffs.append(max_diff(answers[kind], theirs))
        answer_all, engines_all = pyagrum_runner(bn, targeted=False)
        gc.collect()
        theirs_all, seconds_all = timed_loop(queries, answer_all, limit, opts["single"])
        diffs.append(max_diff(answers[kind], theirs_all))
        if parsed is not None:
            answer_raw, _ = pyagrum_runner(parsed)
            theirs_raw, _ = timed_loop(queries, answer_raw, limit, 100)
            diffs_f32.append(max_diff(answers[kind], theirs_raw))
        pyagrum[kind] = {"n": len(theirs), "s": seconds, "engines": len(engines),
                         "all_targets_n": len(theirs_all), "all_targets_s": seconds_all}
        log(f"  {name} {kind}: pyAgrum {len(theirs) / seconds:,.0f} q/s ({len(engines)} engines), "
            f"all targets {len(theirs_all) / seconds_all:,.0f} q/s")
    res["pyagrum"] = pyagrum
    res["diff_pyagrum"] = max(d for d in diffs if d is not None)
    res["diff_pyagrum_f32"] = max((d for d in diffs_f32 if d is not None), default=None)
    database = gum.BNDatabaseGenerator(bn)
    res["pyagrum_samples_per_s"] = opts["pyagrum_samples"] / best_of(2, lambda: database.drawSamples(opts["pyagrum_samples"]))
    del database

    # pgmpy exact and sampling
    pgmpy: dict[str, dict] = {}
    diffs = []
    for kind, queries in sets.items():
        engines: dict[str, object] = {}

        def pg_answer(q):
            target, x, xi, evidence = q
            if x not in engines:
                engines[x] = VariableElimination(pg.do([x]))
            given = {x: pg_states[x][xi], **{e: pg_states[e][ei] for e, ei in evidence}}
            factor = engines[x].query([target], evidence=given, show_progress=False)
            order = [list(factor.state_names[target]).index(s) for s in pg_states[target]]
            return np.asarray(factor.values)[order]

        gc.collect()
        theirs, seconds = timed_loop(queries, pg_answer, limit, opts["pgmpy_queries"])
        diffs.append(max_diff(answers[kind], theirs))
        pgmpy[kind] = {"n": len(theirs), "s": seconds, "engines": len(engines)}
        log(f"  {name} {kind}: pgmpy {len(theirs) / seconds:,.1f} q/s on {len(theirs)}")
    res["pgmpy"] = pgmpy
    res["diff_pgmpy"] = max(d for d in diffs if d is not None)
    sampling = BayesianModelSampling(pg)
    res["pgmpy_samples_per_s"] = opts["pgmpy_samples"] / best_of(1, lambda: sampling.forward_sample(
        size=opts["pgmpy_samples"], show_progress=False, seed=opts["seed"], n_jobs=1
    ))
    res["rss_all_mb"] = maxrss_mb()
    return res


def load_pyagrum(text: str):
    """pyAgrum's network from BIF text (through a temporary file), or None where its parser
    rejects the text (child's states ``Asy/Patch``, ``<5``, ``12+``)."""
    import pyagrum as gum

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "net.bif"
        plain.write_text(text)
        try:
            return gum.loadBN(str(plain))
        except Exception:  # pyAgrum raises its own FatalError on syntax errors
            return None


def build_pyagrum(net):
    """The network's structure built through pyAgrum's API (any state names); tables to fill."""
    import pyagrum as gum

    bn = gum.BayesNet()
    for var in net.order:
        bn.add(gum.LabelizedVariable(var, var, list(net.states[var])))
    for var in net.order:
        for parent in net.parents[var]:
            bn.addArc(parent, var)
    return bn


def fill_cpt(bn, var: str, net, values: np.ndarray) -> None:
    """Put ``values`` (axes: Crux's parents, then ``var``) into pyAgrum's table of ``var``."""
    cpt = bn.cpt(var)
    axes = list(reversed(cpt.names))  # toarray()/fillWith order: the last name varies slowest
    order = [*net.parents[var], var]
    cpt.fillWith(np.transpose(values, [order.index(a) for a in axes]).ravel().tolist())


# -- BIF readers on every file ---------------------------------------------------------------


def run_readers(folder: str) -> list[dict]:
    warnings.filterwarnings("ignore")
    import pyagrum as gum

    from crux.worldmodel.model import load_model

    out = []
    for path in sorted(Path(folder).glob("*.bif.gz")):
        name = path.name[: -len(".bif.gz")]
        row: dict = {"network": name}
        t = time.perf_counter()
        try:
            model = load_model(path)
        except Exception as err:  # a failure of the reader is what this reports
            row["crux_error"] = f"{type(err).__name__}: {err}"
            out.append(row)
            continue
        row["crux_load_s"] = time.perf_counter() - t
        net, world = model.network, model.beliefs("world")
        row["variables"] = len(net.order)
        row["parameters"] = int(sum(world.mean(v).numel() for v in net.order))
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        t = time.perf_counter()
        bn = load_pyagrum(text)
        if bn is None:
            row["pyagrum_error"] = "pyAgrum's parser rejects the file"
            out.append(row)
            continue
        row["pyagrum_load_s"] = time.perf_counter() - t
        worst = 0.0
        for var in net.order:
            cpt = bn.cpt(var)
            cpt.normalizeAsCPT()
            axes = list(reversed(cpt.names))
            order = [*net.parents[var], var]
            theirs = np.transpose(cpt.toarray(), [axes.index(a) for a in order])
            labels = list(bn.variable(var).labels())
            if labels != list(net.states[var]):
                row["mismatch"] = f"states of {var}"
                break
            worst = max(worst, float(np.abs(theirs - world.mean(var).numpy()).max()))
        row["tables_vs_pyagrum"] = worst
        out.append(row)
        log(f"  reader {name}: crux {row['crux_load_s']:.3f}s pyAgrum {row['pyagrum_load_s']:.3f}s |d| {worst:.1e}")
    return out


# -- printing ----------------------------------------------------------------------------------


def fmt(x, spec=",.0f", none="-"):
    return none if x is None else format(x, spec)


def ratio(a, b):
    return None if not a or not b else a / b


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def qps(n, s):
    return None if not s else n / s


def report(results: list[dict], readers: list[dict], system: dict, opts: dict, seconds: float,
           probe: dict[str, str] | None = None) -> str:
    ok = [r for r in results if "error" not in r]
    lines = [
        "Crux oracle benchmark",
        f"command: {system['command']}",
        f"machine: {system['machine']}; {system['cores']} cores; python {system['python']}; torch {system['torch']} "
        f"({system['torch_threads']} threads); device {system['device']}; pyAgrum {system['pyagrum']}; pgmpy {system['pgmpy']}",
        f"crux commit: {system['commit']}",
        f"queries per set {opts['queries']} (seed {opts['seed']}); crux single: up to {opts['single']}; "
        f"pgmpy: up to {opts['pgmpy_queries']} per set; phase limit {opts['phase_seconds']} s",
        "",
        "Accuracy and loading (max |d| over every state of every answered query, both sets)",
    ]
    rows = []
    for r in ok:
        rows.append([
            r["network"], str(r["variables"]), fmt(r["parameters"]),
            fmt(r["diff_pyagrum"], ".1e"), fmt(r["diff_pyagrum_f32"], ".1e"), fmt(r["diff_pgmpy"], ".1e"),
            fmt(max(max(r["crux"][k]["single_vs_batch"] or 0, r["crux"][k].get("columns_vs_batch", 0)) for k in r["crux"]), ".1e"),
            fmt(r["tables_vs_pgmpy"], ".1e"),
            fmt(r["crux_load_s"], ".3f"), fmt(r["pyagrum_load_s"], ".3f"), fmt(r["pgmpy_load_s"], ".2f"),
            "" if r["pyagrum_parsed"] else "built by API",
        ])
    lines.append(table(
        ["network", "vars", "params", "vs pyA", "vs pyA f32", "vs pgmpy", "single/cols", "tbl pgmpy",
         "load crux s", "pyA s", "pgmpy s", "pyA note"], rows))
    lines += ["", "Exact queries per second (x = Crux / pyAgrum targeted; pgmpy on a subset of n queries)"]
    rows = []
    for r in ok:
        for kind in ("same", "mixed"):
            c, a, g = r["crux"][kind], r["pyagrum"][kind], r["pgmpy"][kind]
            cold, warm = qps(c["queries"], c["batch_cold_s"]), qps(c["queries"], c["batch_warm_s"])
            single = qps(c["single_n"], c["single_s"])
            pa, pa_all, pg = qps(a["n"], a["s"]), qps(a["all_targets_n"], a["all_targets_s"]), qps(g["n"], g["s"])
            cols = qps(c["queries"], c["columns_cold_s"]) if "columns_cold_s" in c else None
            rows.append([
                r["network"] if kind == "same" else "", kind, str(c["groups"]),
                fmt(cold), fmt(warm), fmt(cols), fmt(single), fmt(qps(c["ask_n"], c["ask_s"])),
                fmt(pa), fmt(pa_all), f"{fmt(pg, ',.0f')} ({g['n']})",
                fmt(ratio(cold, pa), ".2f"), fmt(ratio(warm, pa), ".2f"), fmt(ratio(cols, pa), ".1f"),
                fmt(ratio(single, pa), ".2f"), fmt(ratio(cold, pa_all), ".1f"), fmt(ratio(cold, pg), ".2f"),
            ])
    lines.append(table(
        ["network", "set", "groups", "batch cold", "batch warm", "columns", "single", "ask", "pyAgrum", "pyA all",
         "pgmpy (n)", "x cold", "x warm", "x columns", "x single", "cold/pyA all", "cold/pgmpy"], rows))
    lines += ["", "Tables multiplied per query (mean): the einsum engine's (every ancestor of target and evidence, cut "
              "at X; Crux's batch of one structure and its single queries) and d-separation's (Bayes-ball: what "
              "pyAgrum targeted and pgmpy prune to).  A mixed batch runs Crux's junction tree, which holds every table."]
    rows = [[r["network"], *(fmt(r["work"][k][j], ".1f") for k in ("same", "mixed") for j in (0, 1))] for r in ok]
    lines.append(table(["network", "same einsum", "same d-sep", "mixed einsum", "mixed d-sep"], rows))
    if probe:
        lines.append("P(C | A=a1, B=b1) in A -> B -> C where P(A=a1) = 0 (B seen hides A from C): "
                     + "; ".join(f"{k} {v}" for k, v in probe.items()))
    lines += ["", "Forward sampling (samples per second, no evidence) and peak memory (RSS, MB)"]
    rows = []
    for r in ok:
        rows.append([
            r["network"], fmt(r["crux_samples_per_s"]),
            f"{fmt(r['crux_oracle_samples_per_s'])} ({r['crux_oracle_sampled_variables']})",
            fmt(r["pyagrum_samples_per_s"]), fmt(r["pgmpy_samples_per_s"]),
            fmt(ratio(r["crux_samples_per_s"], r["pyagrum_samples_per_s"]), ".1f"),
            fmt(ratio(r["crux_samples_per_s"], r["pgmpy_samples_per_s"]), ".0f"),
            fmt(r["rss_base_mb"]), fmt(r["rss_exact_mb"]), fmt(r["rss_crux_mb"]), fmt(r["rss_all_mb"]), r["device"],
        ])
    lines.append(table(
        ["network", "crux", "crux oracle (vars)", "pyAgrum", "pgmpy", "x pyA", "x pgmpy", "rss base", "rss exact",
         "rss crux", "rss all",
         "device"], rows))
    lines.append(
        f"(crux: {opts['particles']:,} particles; pyAgrum: {opts['pyagrum_samples']:,} drawSamples; "
        f"pgmpy: {opts['pgmpy_samples']:,} forward_sample)"
    )
    for r in results:
        if "error" in r:
            lines.append(f"FAILED {r['network']}: {r['error']}")
    lines += ["", "Targets of issue 5"]
    lines += targets(ok)
    if readers:
        lines += ["", f"BIF readers on every file of pgmpy's example_models ({len(readers)} files)"]
        rows = []
        for r in readers:
            status = r.get("crux_error") or r.get("pyagrum_error") or r.get("mismatch") or "ok"
            rows.append([
                r["network"], fmt(r.get("variables"), "d"), fmt(r.get("parameters")), fmt(r.get("crux_load_s"), ".3f"),
                fmt(r.get("pyagrum_load_s"), ".3f"), fmt(r.get("tables_vs_pyagrum"), ".1e"),
                status,
            ])
        lines.append(table(["file", "vars", "params", "crux s", "pyA s", "tbl vs pyA", "status"], rows))
    lines += ["", f"total {seconds:.0f} s"]
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    """Issue 5's targets, against pyAgrum targeted (and, in brackets, pyAgrum with all targets)."""
    by = {r["network"]: r for r in results}
    out = []

    def check(label, value, goal, higher=True, extra=""):
        if value is None:
            return
        passed = value >= goal if higher else value <= goal
        out.append(
            f"  [{'pass' if passed else 'FAIL'}] {label}: {value:,.3g} (target {'>=' if higher else '<='} {goal:g}){extra}"
        )

    def rate(r, kind, what):
        c, a = r["crux"][kind], r["pyagrum"][kind]
        return {
            "cold": qps(c["queries"], c["batch_cold_s"]),
            "single_latency": c["single_s"] / c["single_n"],
            "pyA": qps(a["n"], a["s"]),
            "pyA_all": qps(a["all_targets_n"], a["all_targets_s"]),
        }[what]

    for r in results:
        check(f"{r['network']} max |d| vs pyAgrum", r["diff_pyagrum"], 1e-9, higher=False)
    for name in ("alarm", "hailfinder"):
        if name not in by:
            continue
        r = by[name]
        for kind, goal in (("same", 100), ("mixed", 5)):
            value = ratio(rate(r, kind, "cold"), rate(r, kind, "pyA"))
            vs_all = ratio(rate(r, kind, "cold"), rate(r, kind, "pyA_all"))
            work = r["work"][kind]
            tables = f"; tables per query: Crux {work[0]:.1f}, d-sep {work[1]:.1f}" if kind == "same" else ""
            check(f"{name} {kind}-structure batch (cold) / pyAgrum", value, goal, extra=f"  [vs all targets: {vs_all:,.3g}{tables}]")
            if kind == "same" and "columns_cold_s" in r["crux"]["same"]:
                columns = qps(r["crux"]["same"]["queries"], r["crux"]["same"]["columns_cold_s"])
                check(f"{name} same-structure columns (cold) / pyAgrum", ratio(columns, rate(r, kind, "pyA")), goal,
                      extra=f"  [vs all targets: {ratio(columns, rate(r, kind, 'pyA_all')):,.3g}]")
        for kind in ("mixed", "same"):
            lat = rate(r, kind, "single_latency")
            value = lat * rate(r, kind, "pyA")
            vs_all = lat * rate(r, kind, "pyA_all")
            check(f"{name} single-query latency ({kind}) / pyAgrum's", value, 3, higher=False,
                  extra=f"  [vs all targets: {vs_all:,.3g}]")
    for r in results:
        worst = min(
            ratio(qps(r["crux"][k]["queries"], r["crux"][k]["batch_cold_s"]), qps(r["pgmpy"][k]["n"], r["pgmpy"][k]["s"])) or 0
            for k in ("same", "mixed")
        )
        check(f"{r['network']} batch (cold, worse set) / pgmpy", worst, 10)
    if "alarm" in by:
        r = by["alarm"]
        check("alarm sampler / pyAgrum's", ratio(r["crux_samples_per_s"], r["pyagrum_samples_per_s"]), 10)
    return out


# -- main --------------------------------------------------------------------------------------


def _worker(name: str, path: str, opts: dict) -> dict:
    try:
        return run_network(name, path, opts)
    except Exception as err:  # one network's failure is reported, the others still run
        return {"network": name, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _readers_worker(folder: str) -> list[dict]:
    return run_readers(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oracle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="comma-separated names of pgmpy's example models, or 'all' (the default and "
                        f"{', '.join(EXTRA)})")
    parser.add_argument("--queries", type=int, default=1000, help="queries per set (same, mixed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="Crux's device: cpu, cuda, auto")
    parser.add_argument("--single", type=int, default=300, help="queries timed one by one (Crux)")
    parser.add_argument("--pgmpy-queries", type=int, default=100, help="pgmpy queries per set")
    parser.add_argument("--phase-seconds", type=float, default=10.0, help="time limit of a one-by-one loop")
    parser.add_argument("--particles", type=int, default=1_000_000, help="Crux sampler particles")
    parser.add_argument("--pyagrum-samples", type=int, default=200_000)
    parser.add_argument("--pgmpy-samples", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-readers", action="store_true", help="skip reading every BIF file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    import torch

    folder = example_models()
    names = list(NETWORKS + EXTRA) if args.networks == "all" else [n.strip() for n in args.networks.split(",") if n.strip()]
    missing = [n for n in names if not (folder / f"{n}.bif.gz").exists()]
    if missing:
        available = sorted(p.name[: -len(".bif.gz")] for p in folder.glob("*.bif.gz"))
        parser.error(f"no such network {', '.join(missing)} in {folder}: choose from {', '.join(available)}")
    opts = {k: getattr(args, k) for k in (
        "queries", "seed", "device", "single", "pgmpy_queries", "phase_seconds", "particles",
        "pyagrum_samples", "pgmpy_samples", "threads")}
    from crux.oracle.device import resolve_device

    device = resolve_device(args.device)
    system = {
        "command": " ".join([Path(sys.executable).as_posix(), "-m", "bench.oracle", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": args.threads or torch.get_num_threads(),
        "device": device.type + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "pyagrum": version("pyagrum"),
        "pgmpy": version("pgmpy"),
        "commit": commit(),
    }
    start = time.perf_counter()
    results = []
    context = multiprocessing.get_context("spawn")
    for name in names:
        log(f"{name} ...")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                r = pool.submit(_worker, name, str(folder / f"{name}.bif.gz"), opts).result()
            except BrokenProcessPool:
                r = {"network": name, "error": "its process died (out of memory?)", "traceback": ""}
        if "error" in r:
            log(f"  {name} FAILED: {r['error']}\n{r['traceback']}")
        results.append(r)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            probe = pool.submit(probe_semantics).result()
        except Exception as err:  # reported, as a network's failure is; the tables still print
            probe = {"probe failed": f"{type(err).__name__}: {err}"}
    log(f"impossible evidence hidden by d-separation: {probe}")
    readers = []
    if not args.no_readers:
        log("BIF readers ...")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            readers = pool.submit(_readers_worker, str(folder)).result()
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"system": system, "options": opts, "networks": results, "readers": readers,
                          "probe": probe, "seconds": seconds}, indent=1))
    else:
        print(report(results, readers, system, opts, seconds, probe))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
