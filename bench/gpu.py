"""Crux's oracle on a GPU against the same machine's CPU: issue 5's table with ``--device cuda``.

Needs no pyAgrum or pgmpy (a GPU machine may lack them): the same seeded queries as
``bench/oracle.py`` (``same``: one structure, ``mixed``: a fresh target, intervention and 0-3
observations per query), answered by ``Oracle.posterior_means`` and ``Oracle.ask_columns`` on
``cuda`` and on the CPU, batches of growing size, and the forward sampler.  Prints, per network
and batch, queries per second on each device (cold: median of three calls on a forgotten
oracle; warm: best of three), the ratio GPU / CPU, and the largest difference between the two
devices' answers (both float64: it should be ~1e-16).  The CPU runs with ``--cpu-threads``
threads (default 2, the CI machine's cores; 0: torch's default, every core).

    python -m bench.gpu --bif-dir DIR [--networks hailfinder,alarm] [--batches 1000,10000,100000]

``bench/gpu_check.sh`` runs it on the device machine (see that file).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench.oracle import best_of, cold, commit, fmt, forget, log, make_queries, max_diff, table

NETWORKS = ("hailfinder", "alarm", "insurance")
BATCHES = (1000, 10_000, 100_000)


def timed(device, fn):
    """``fn`` with the device's queue drained before the clock stops."""
    import torch

    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def measure(name: str, path: Path, devices: list, batches: list[int], mixed_max: int, particles: int, seed: int) -> dict:
    import torch

    from crux.oracle.oracle import Oracle
    from crux.oracle.query import Query
    from crux.oracle.sample import Sampler
    from crux.worldmodel.model import load_model

    model = load_model(path)
    net = model.network
    world = model.beliefs("world")
    tables = {v: world.mean(v).numpy() for v in net.order}
    rng = np.random.default_rng(seed)
    largest = max(batches)
    sets = {kind: make_queries(net, tables, largest if kind == "same" else min(largest, mixed_max), kind, rng)
            for kind in ("same", "mixed")}
    rows: list[dict] = []
    answers: dict[tuple, list[np.ndarray]] = {}
    for device in devices:
        oracle = Oracle(model, device=device, samples=2, method="exact")
        for kind, queries in sets.items():
            objects = [
                Query(do={x: net.states[x][xi]}, given={e: net.states[e][ei] for e, ei in ev}, outcomes=[t])
                for t, x, xi, ev in queries
            ]
            for batch in batches:
                if kind == "mixed" and batch > mixed_max:
                    continue
                qs = objects[:batch]
                out, cold_s = cold(oracle, timed(device, lambda: oracle.posterior_means(qs)))
                warm_s = best_of(3, timed(device, lambda: oracle.posterior_means(qs)))
                answers[(device.type, kind, batch)] = [o[q[0]].numpy() for o, q in zip(out, queries)]
                row = {"network": name, "device": device.type, "set": kind, "batch": batch,
                       "cold_qps": batch / cold_s, "warm_qps": batch / warm_s}
                if kind == "same":
                    target, x, _, evidence = queries[0]
                    do = {x: np.array([q[2] for q in queries[:batch]])}
                    seen = {e: np.array([q[3][j][1] for q in queries[:batch]]) for j, (e, _) in enumerate(evidence)}
                    ask = timed(device, lambda: oracle.ask_columns([target], do=do, given=seen))
                    _, columns_s = cold(oracle, ask)
                    row["columns_qps"] = batch / columns_s
                    row["columns_warm_qps"] = batch / best_of(3, ask)
                rows.append(row)
                log(f"  {name} {device.type} {kind} {batch:,}: {row['cold_qps']:,.0f} q/s cold, {row['warm_qps']:,.0f} warm")
        forget(oracle)
        full = {v: world.mean(v).unsqueeze(0).to(device) for v in net.order}
        empty = torch.zeros((1, 0), dtype=torch.long, device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        sampler = Sampler(net)
        draw = timed(device, lambda: sampler.marginals(full, {}, [], empty, [], empty, [net.order[-1]], particles, generator))
        draw()
        rows.append({"network": name, "device": device.type, "set": "sampler", "batch": particles,
                     "samples_per_s": particles / best_of(2, draw)})
    if len(devices) == 2:
        for row in rows:
            key = ("cuda", row["set"], row["batch"])
            if key in answers:
                row["cuda_vs_cpu"] = max_diff(answers[key], answers[("cpu", row["set"], row["batch"])])
    return {"network": name, "rows": rows}


def report(results: list[dict], system: dict) -> str:
    lines = ["Crux oracle, GPU against CPU", *(f"{k}: {v}" for k, v in system.items()), ""]
    body = []
    for r in results:
        rows = {(x["device"], x["set"], x["batch"]): x for x in r["rows"]}
        shown = "cuda" if any(d == "cuda" for d, _, _ in rows) else "cpu"
        for (device, kind, batch), x in rows.items():
            if device != shown:
                continue
            cpu = rows.get(("cpu", kind, batch), {}) if shown == "cuda" else {}
            if kind == "sampler":
                body.append([r["network"], kind, f"{batch:,}", fmt(cpu.get("samples_per_s")), fmt(x["samples_per_s"]),
                             fmt(x["samples_per_s"] / cpu["samples_per_s"] if cpu else None, ".1f"), "-", "-", "-", "-"])
                continue
            body.append([
                r["network"], kind, f"{batch:,}", fmt(cpu.get("cold_qps")), fmt(x["cold_qps"]),
                fmt(x["cold_qps"] / cpu["cold_qps"] if cpu else None, ".1f"),
                fmt(x["warm_qps"] / cpu["warm_qps"] if cpu else None, ".1f"),
                fmt(x.get("columns_qps")), fmt(x["columns_qps"] / cpu["columns_qps"] if cpu and "columns_qps" in x else None, ".1f"),
                fmt(x.get("cuda_vs_cpu"), ".1e"),
            ])
    shown = "cuda" if any(x["device"] == "cuda" for r in results for x in r["rows"]) else "cpu"
    lines.append(table(["network", "set", "batch", "cpu q/s" if shown == "cuda" else "-", f"{shown} q/s", "x cold",
                        "x warm", f"{shown} columns", "x columns", "max |d|"], body))
    lines.append("(q/s: batched posterior means, cold; columns: Oracle.ask_columns, cold; sampler rows: samples/s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bif-dir", default=None, help="folder of NAME.bif.gz files (default: pgmpy's example models)")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated network names")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated batch sizes")
    parser.add_argument("--mixed-max", type=int, default=10_000, help="the largest batch of mixed structure")
    parser.add_argument("--particles", type=int, default=1_000_000, help="forward samples per sampler call")
    parser.add_argument("--cpu-threads", type=int, default=2, help="torch threads for the CPU runs (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-only", action="store_true", help="measure the CPU alone (to try the script without a GPU)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    if args.bif_dir is None:
        from bench.oracle import example_models

        folder = example_models()
    else:
        folder = Path(args.bif_dir)
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    missing = [n for n in names if not (folder / f"{n}.bif.gz").exists()]
    if missing:
        parser.error(f"no {', '.join(f'{n}.bif.gz' for n in missing)} in {folder}")
    try:
        batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    except ValueError:
        parser.error(f"--batches takes whole numbers separated by commas, not {args.batches!r}")
    if not batches or batches[0] < 1:
        parser.error("--batches needs at least one size of 1 or more")
    if not args.cpu_only and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: run it on a GPU machine, or pass --cpu-only to try it")
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    devices = [torch.device("cpu")] + ([] if args.cpu_only else [torch.device("cuda")])
    system = {
        "command": " ".join(["python -m bench.gpu", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.machine()}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
        "commit": commit(),
    }
    start = time.perf_counter()
    results = []
    for name in names:
        log(f"{name} ...")
        results.append(measure(name, folder / f"{name}.bif.gz", devices, batches, args.mixed_max, args.particles, args.seed))
    system["seconds"] = f"{time.perf_counter() - start:.0f}"
    print(report(results, system))
    if args.json:
        Path(args.json).write_text(json.dumps({"system": system, "networks": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
