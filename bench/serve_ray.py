"""Load test of ``crux serve --ray`` against the embedded server, in one run.

Run::

    python -m bench.serve_ray [--requests 2000] [--clients 16] [--replicas 1,2] [--model alarm]
                              [--window-ms 2] [--max-batch 256] [--device auto] [--samples 1000]
                              [--cpus-per-replica C] [--gpus-per-replica G] [--threads N]
                              [--timeout 900] [--json]
    python -m bench.serve_ray --batch 10000 [--repeats 5] [...]

For each mode the bench starts ``crux serve examples/squirrel_or_cat.yaml tests/data/alarm.bif.gz``
as a subprocess on a free port of 127.0.0.1 (:func:`bench.serve.loopback`: it waits for
``/health``, and stops the server with SIGTERM, then kills it if it must), warms it up, sends
``--requests`` ``POST /models/alarm/ask`` from ``--clients`` concurrent clients on keep-alive
connections (bench.serve's raw HTTP/1.1 client and query mix: the 37-variable ALARM network,
given HYPOVOLEMIA, LVFAILURE and ANAPHYLAXIS, outcomes BP, HR and CO), and stops it:

``embedded``   the default server: one process, dynamic batching on one worker thread.
``ray xN``     ``--ray --replicas N``: a local Ray cluster (all the machine's cores), the model a
               Ray Serve deployment of N replicas, single requests gathered by ``@serve.batch``;
               the HTTP front (the same app) in the server's process.

Both batch with the same ``--window-ms`` and ``--max-batch``.  ``req/s`` is requests over the
wall time of the timed phase; ``p50``/``p99`` the latency a client sees; ``calls``, ``batch`` and
``busy`` the oracle calls made in the timed phase, queries per call, and oracle seconds per wall
second (over all replicas: above 100% when they compute at once), from ``/health``.  Every answer
is checked against the embedded server's answer to the same query (``p`` and ``interval`` within
1e-9; the replicas compute with the same code on the same device).

``--batch N``: instead, one ``/models/alarm/ask/batch`` of N queries at a time (20 structures),
embedded and on one replica: what a replica answers per second when the Ray hop is paid once
per many queries (the figure ``docs/deploy.md`` sizes a cluster by).

Replicas ask Ray for ``--cpus-per-replica`` CPUs each (default: the cores shared out among the
two models' replicas, so that all fit on this machine's local cluster); Ray sets a replica's
torch threads from it (OMP_NUM_THREADS, at least 1) unless ``--threads`` sets them for all.

**What it shows.**  See ``bench/findings/serve_ray_cpu_2core.txt`` for a 2-core run and why,
there, a second replica does not help: the load generator, the HTTP front and every replica
share the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys

import torch

from bench.serve import LOAD_AT_START, batch_queries, health, load, loopback, queries, same

MODELS = 2
"""Models the bench's server serves (bench.serve.MODELS): each gets its replicas."""


def cpus_per_replica(args: argparse.Namespace, replicas: int) -> float:
    """What each replica asks for: ``--cpus-per-replica``, or the cores shared out among all."""
    if args.cpus_per_replica is not None:
        return args.cpus_per_replica
    return round((os.cpu_count() or 1) / (MODELS * replicas), 3)


async def bench(args: argparse.Namespace) -> list[dict]:
    path, bodies = queries()[args.model]
    modes = _modes(args, args.replicas)
    rows: list[dict] = []
    reference: dict[int, dict] = {}
    for mode, extra in modes:
        async with loopback(args, args.max_batch, args.window_ms, extra) as connect:
            await load(connect, path, bodies, len(bodies) * 4, min(args.clients, len(bodies)))  # warm up
            before = await health(connect)
            wall, latencies, answers = await load(connect, path, bodies, args.requests, args.clients)
            after = await health(connect)
        if mode == "embedded":
            reference = answers
            checked = "reference"
        else:
            bad = [n for n, a in answers.items() if not same(a, reference[n])]
            checked = "equal" if not bad else f"DIFFER at {bad[:5]}"
        calls = after["oracle_calls"] - before["oracle_calls"]
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        rows.append({
            "mode": mode, "model": args.model, "device": after["device"], "serving": after.get("serving"),
            "requests": args.requests, "clients": args.clients, "rps": args.requests / wall,
            "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "calls": calls,
            "batch": (after["queries"] - before["queries"]) / max(calls, 1),
            "busy": (after["oracle_seconds"] - before["oracle_seconds"]) / wall, "answers": checked,
            "cpus_per_replica": None if mode == "embedded" else float(extra[extra.index("--cpus-per-replica") + 1]),
        })
    return rows


async def batch_bench(args: argparse.Namespace) -> list[dict]:
    """One ``/models/alarm/ask/batch`` of ``args.batch`` queries (bench.serve's mix of 20
    structures), sent ``args.repeats`` times after one to warm up, one at a time: the median
    time per request, and queries per second, per mode.  A batch request goes to one replica
    whole, so this is what one replica answers when the Ray hop is paid once per many queries."""
    body = {"queries": batch_queries(args.batch, 20)}
    content = json.dumps(body).encode()
    extra = ("--max-queries", str(args.batch), "--max-body-bytes", str(64 << 20), "--max-draws", str(args.batch * args.samples))
    rows, reference = [], None
    for mode, ray in _modes(args, replicas=[1]):
        async with loopback(args, args.max_batch, args.window_ms, extra + ray) as connect:
            async with connect(1) as client:
                times = []
                for _ in range(args.repeats + 1):
                    start = asyncio.get_running_loop().time()
                    status, got = await client.request("POST", "/models/alarm/ask/batch", content)
                    times.append(asyncio.get_running_loop().time() - start)
                    if status != 200:
                        raise RuntimeError(f"/ask/batch answered {status}: {got[:300]!r}")
            device = (await health(connect))["device"]
        answers = json.loads(got)["answers"]
        if reference is None:
            reference, checked = answers, "reference"
        else:
            bad = [n for n, (a, b) in enumerate(zip(answers, reference)) if not same(a, b)]
            checked = "equal" if not bad else f"DIFFER at {bad[:5]}"
        seconds = statistics.median(times[1:])
        rows.append({"mode": mode, "device": device, "queries": args.batch, "seconds": seconds,
                     "qps": args.batch / seconds, "answers": checked})
    return rows


def _modes(args: argparse.Namespace, replicas: list[int]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, ``crux serve`` options) of each mode: embedded, then Ray with each replica count."""
    modes: list[tuple[str, tuple[str, ...]]] = [("embedded", ())]
    for n in replicas:
        extra = ("--ray", "--replicas", str(n), "--cpus-per-replica", f"{cpus_per_replica(args, n):g}")
        if args.gpus_per_replica:
            extra += ("--gpus-per-replica", f"{args.gpus_per_replica:g}")
        modes.append((f"ray x{n}", extra))
    return modes


def print_batch(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"device: {rows[0]['device']} ({os.cpu_count()} CPU cores, torch {torch.__version__})")
    print(f"one /models/alarm/ask/batch of {args.batch:,} queries at a time, the median of {args.repeats}")
    print(f"{'mode':9} {'seconds':>8} {'queries/s':>10}  answers")
    for r in rows:
        print(f"{r['mode']:9} {r['seconds']:8.3f} {r['qps']:10,.0f}  {r['answers']}")


def print_rows(rows: list[dict], args: argparse.Namespace) -> None:
    device = rows[0]["device"]
    if device.startswith("cuda") and torch.cuda.is_available():
        detail = torch.cuda.get_device_name()
    else:
        detail = f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
    threads = args.threads or "torch's default (embedded), Ray's from the replica's CPUs (ray)"
    load_avg = ", load average %.1f before the run" % LOAD_AT_START if LOAD_AT_START is not None else ""
    print(f"device: {device} ({detail}; intra-op threads: {threads}){load_avg}")
    print(
        f"{args.requests} POST {queries()[args.model][0]} from {args.clients} concurrent clients on loopback; "
        f"window {args.window_ms:g} ms, max batch {args.max_batch}, samples {args.samples}"
    )
    print(f"{'mode':9} {'CPUs/replica':>12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6} {'batch':>6} {'busy':>5}  answers")
    for r in rows:
        cpus = "-" if r["cpus_per_replica"] is None else f"{r['cpus_per_replica']:g}"
        print(
            f"{r['mode']:9} {cpus:>12} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['calls']:6d} "
            f"{r['batch']:6.1f} {r['busy']:5.0%}  {r['answers']}"
        )
    base = rows[0]["rps"]
    for r in rows[1:]:
        print(f"{r['mode']}: {r['rps'] / base:.2f}x the embedded server's throughput")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_ray", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per mode")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--replicas", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2],
        help="replica counts to run on Ray, comma-separated",
    )
    parser.add_argument("--model", choices=("alarm", "squirrel_or_cat"), default="alarm", help="the model asked")
    parser.add_argument("--window-ms", type=float, default=2.0, help="batching window (both back ends)")
    parser.add_argument("--max-batch", type=int, default=256, help="most queries per oracle call (both back ends)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (the server's --device)")
    parser.add_argument("--samples", type=int, default=1000, help="draws behind each interval")
    parser.add_argument("--cpus-per-replica", type=float, default=None, help="default: the cores shared out")
    parser.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs per replica (0: none)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads of every server (0: see above)")
    parser.add_argument("--timeout", type=float, default=900, help="stop (and kill the servers) after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--batch", type=int, default=0, help="time one /ask/batch of this many alarm queries instead")
    parser.add_argument("--repeats", type=int, default=5, help="with --batch: timed requests per mode (the median)")
    args = parser.parse_args(argv)
    args.client = "raw"  # what bench.serve.loopback reads
    try:
        rows = asyncio.run(asyncio.wait_for((batch_bench if args.batch else bench)(args), args.timeout))
    except TimeoutError:
        sys.exit(f"bench.serve_ray: stopped after --timeout {args.timeout:g} s")
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.batch:
        print_batch(rows, args)
    else:
        print_rows(rows, args)


if __name__ == "__main__":
    main()
