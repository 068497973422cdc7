"""Load test of ``crux serve``: throughput and latency with and without dynamic batching,
and a soak beside hostile clients.

Run::

    python -m bench.serve [--requests 2000] [--clients 16] [--window-ms 2] [--max-batch 256]
                          [--device auto] [--samples 1000] [--threads N] [--client raw|httpx]
                          [--transport loopback|in-process|both] [--timeout 900] [--json]
    python -m bench.serve --soak SECONDS [--clients 50] [--half-open 50] [--slow 20]
                          [--trickle-s 0.5] [--timeout-read 10] [--device auto] [--json]

**Loopback.**  For each mode the bench starts ``crux serve examples/squirrel_or_cat.yaml
tests/data/alarm.bif.gz`` as a subprocess on a free port of 127.0.0.1, waits for
``/health``, warms it up (every distinct query twice, so tables are drawn and contraction
paths cached before timing), sends a fixed number of ``POST`` requests from ``--clients``
concurrent clients, one keep-alive connection each, and stops the server.  The clients are
``--client raw`` (the default): a minimal HTTP/1.1 client on asyncio streams, so that the
load generator, which shares the machine's cores with the server, costs little; or
``--client httpx`` (``httpx.AsyncClient``), whose ~2-3 ms of Python per request on a small
machine caps what it can send well below what the server answers.
**In-process** (``--transport in-process`` or ``both``) sends the load to
``oracle.server.create_app`` through ``httpx.ASGITransport``: no sockets, no uvicorn, no
second process.

Modes:

``per-request``  ``--max-batch 1 --batch-window-ms 0``: one oracle call per request (the
                 worker thread answers requests one at a time, in arrival order).
``batched``      ``--max-batch 256 --batch-window-ms 2`` (the defaults): requests that arrive
                 within the window, or while the worker is busy, share one ``Oracle.ask_many``.

Queries (cycled, so every client asks a mix):

``squirrel_or_cat``  ``/ask``: do action in {brake, swerve, continue}, given road in {dry, wet},
                     as agent or human; outcomes harm and crash (the model's outcomes); 1,000
                     Dirichlet draws behind each interval.
``alarm``            ``/models/alarm/ask``: given HYPOVOLEMIA, LVFAILURE and ANAPHYLAXIS (each
                     state), outcomes BP, HR and CO (the 37-variable ALARM network, as world;
                     point values, so no draws).

``req/s`` is requests divided by the wall time of the timed phase; ``p50``/``p99`` the
latency of single requests as a client sees it; ``calls``, ``batch`` and ``busy`` the oracle
calls the server made in the timed phase, queries per call, and the share of the wall time
the oracle worker was computing (all from ``/health``).  Every answer of a batched run is
checked against the per-request run's answer to the same query (``p`` and ``interval``
within 1e-9).  ``--threads N`` sets the server's torch intra-op threads (``OMP_NUM_THREADS``
for the subprocess); by default torch chooses.  The bench stops by itself: a fixed number
of requests, and ``--timeout`` seconds at most, after which it kills its servers.

**What it shows** (a 2-core CPU VM, no GPU, other jobs sometimes sharing it): batching
gives 3.7-4.1x on alarm (~280 -> 1,000-1,350 req/s) and 2.1-2.3x on squirrel_or_cat
(~350-420 -> 820-900 req/s, 16 queries per call).  Alarm's answers are point values, so a
call's cost is mostly fixed (3.9 ms for 1 query, 7.7 ms for 16).  squirrel_or_cat's intervals
come from 1,000 Dirichlet draws: each query is a contraction over 1,001 parameter sets and a
quantile sort of 1,000 draws per state, ~0.75 ms of arithmetic on a CPU core however it is
batched, against ~1.6 ms for a call of one; fewer draws (``--samples 100``: ~2.6x) or a GPU,
where that arithmetic is cheap next to the per-call latency, move it towards alarm's case.
When other jobs compete for the cores, torch's default intra-op threads slow small
contractions down several times (``--threads 1`` avoids it).

**Soak** (``--soak SECONDS``).  One ``crux serve`` on loopback (batched mode, its default
connection settings unless ``--timeout-read`` is given) for a fixed time, with three kinds of
client at once: ``--clients`` normal ones (default 50 here), each sending whole ``/ask``
requests one after another on a keep-alive connection; ``--half-open`` ones that open a
connection, send part of a request line and headers and stall (each opens another when the
server drops it); and ``--slow`` ones that trickle a whole request one byte every
``--trickle-s`` seconds, so slowly it cannot finish within the server's read timeout.  It
reports the normal clients' throughput, p50/p99 latency, answers other than 200 (5xx apart)
and connection errors; how often the server dropped the hostile connections (and with 408 or
silently), and after how long; and the most files the server held open.  The target: the
normal clients' p99 under 1 s, and no 5xx and no connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parent.parent
MODELS = [ROOT / "examples" / "squirrel_or_cat.yaml", ROOT / "tests" / "data" / "alarm.bif.gz"]
PER_REQUEST = {"max_batch": 1, "window_ms": 0.0}
LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
"""Other work on the machine when the bench starts (it shares the CPU with the servers)."""


def queries() -> dict[str, tuple[str, list[dict]]]:
    """{model: (path, the queries cycled through)}."""
    squirrel = [
        {"do": {"action": action}, "given": {"road": road}, "as": party}
        for party in ("agent", "human")
        for action in ("brake", "swerve", "continue")
        for road in ("dry", "wet")
    ]
    alarm = [
        {"given": {"HYPOVOLEMIA": h, "LVFAILURE": lv, "ANAPHYLAXIS": a}, "outcomes": ["BP", "HR", "CO"]}
        for h in ("TRUE", "FALSE")
        for lv in ("TRUE", "FALSE")
        for a in ("TRUE", "FALSE")
    ]
    return {"squirrel_or_cat": ("/ask", squirrel), "alarm": ("/models/alarm/ask", alarm)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawClient:
    """Just enough HTTP/1.1 for the bench: keep-alive POSTs and GETs of JSON, answers with a
    Content-Length (what uvicorn sends for the server's answers); one connection per concurrent
    request, opened on first use.  Far cheaper per request than a full client."""

    def __init__(self, port: int):
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc) -> None:
        for _, writer in self.idle:
            writer.close()

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        length = {k.strip().lower(): v for k, v in fields.items()}.get(b"content-length")
        if length is None:
            raise RuntimeError(f"{path}: an answer without Content-Length")
        content = await reader.readexactly(int(length))
        self.idle.append((reader, writer))
        return status, content

    async def post(self, path: str, json: dict) -> tuple[int, bytes]:  # noqa: A002 -- httpx's name
        return await self.request("POST", path, _dumps(json))

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.request("GET", path)


def _dumps(content: dict) -> bytes:
    return json.dumps(content).encode()


class HttpxClient:
    """``httpx.AsyncClient`` behind the same small interface."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def __aenter__(self) -> HttpxClient:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.__aexit__(*exc)

    async def post(self, path: str, json: dict) -> tuple[int, bytes]:  # noqa: A002
        response = await self.client.post(path, json=json)
        return response.status_code, response.content

    async def get(self, path: str) -> tuple[int, bytes]:
        response = await self.client.get(path)
        return response.status_code, response.content


Connect = Callable[[int], "RawClient | HttpxClient"]
"""A client for this many concurrent requests, talking to the server under test."""


@asynccontextmanager
async def loopback(args: argparse.Namespace, max_batch: int, window_ms: float, extra: tuple[str, ...] = ()):
    """``crux serve`` (with ``extra`` options) in a subprocess on a free port of 127.0.0.1, as
    ``connect`` with ``connect.port`` and ``connect.pid``; stopped (then killed) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-c", "from dialogue.cli.app import main; main()", "serve", *map(str, MODELS),
        "--host", "127.0.0.1", "--port", str(port), "--device", args.device, "--samples", str(args.samples),
        "--max-batch", str(max_batch), "--batch-window-ms", str(window_ms), *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"crux serve exited ({process.returncode}): {process.stderr.read()}")
                if time.monotonic() > deadline:
                    raise RuntimeError("crux serve did not answer /health within 120 s")
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)

        def connect(clients: int) -> RawClient | HttpxClient:
            if args.client == "raw":
                return RawClient(port)
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            return HttpxClient(httpx.AsyncClient(base_url=url, timeout=120, limits=limits))

        connect.port, connect.pid = port, process.pid  # type: ignore[attr-defined]
        yield connect
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def in_process(args: argparse.Namespace, max_batch: int, window_ms: float):
    """The same app in this process, reached through ``httpx.ASGITransport``."""
    from crux.oracle.server import create_app
    from crux.worldmodel.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    models = {"squirrel_or_cat": load_model(MODELS[0]), "alarm": load_model(MODELS[1])}
    app = create_app(models, device=args.device, samples=args.samples, max_batch=max_batch, batch_window_ms=window_ms)
    try:
        yield lambda clients: HttpxClient(
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://localhost", timeout=120)
        )
    finally:
        app.state.batcher.close()


async def load(connect: Connect, path: str, bodies: list[dict], requests: int, clients: int) -> tuple[float, list[float], dict]:
    """Send ``requests`` POSTs from ``clients`` concurrent clients: (wall seconds, latencies, {index: answer})."""
    latencies: list[float] = []
    answers: dict[int, dict] = {}
    counter = iter(range(requests))
    async with connect(clients) as client:

        async def worker() -> None:
            for n in counter:
                start = time.perf_counter()
                status, content = await client.post(path, json=bodies[n % len(bodies)])
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {content[:300]!r}")
                if n < len(bodies):
                    answers[n] = json.loads(content)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return wall, latencies, answers


async def health(connect: Connect) -> dict:
    async with connect(1) as client:
        _, content = await client.get("/health")
        return json.loads(content)


def same(a: dict, b: dict, tol: float = 1e-9) -> bool:
    if a["query"] != b["query"] or a["outcomes"].keys() != b["outcomes"].keys():
        return False

    def flat(o: dict) -> list[float]:
        return [*o["p"], *(x for row in o["interval"] for x in row)]

    return all(
        len(flat(out)) == len(flat(b["outcomes"][name]))
        and all(abs(x - y) <= tol for x, y in zip(flat(out), flat(b["outcomes"][name])))
        for name, out in a["outcomes"].items()
    )


async def bench(args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    transports: dict[str, Callable[..., AbstractAsyncContextManager[Connect]]] = {
        "loopback": loopback, "in-process": in_process
    }
    chosen = list(transports) if args.transport == "both" else [args.transport]
    modes = {"per-request": PER_REQUEST, "batched": {"max_batch": args.max_batch, "window_ms": args.window_ms}}
    for transport in chosen:
        reference: dict[str, dict[int, dict]] = {}
        for mode, settings in modes.items():
            async with transports[transport](args, settings["max_batch"], settings["window_ms"]) as connect:
                device = (await health(connect))["device"]
                for model, (path, bodies) in queries().items():
                    await load(connect, path, bodies, len(bodies) * 2, min(args.clients, len(bodies)))  # warm up
                    before = await health(connect)
                    wall, latencies, answers = await load(connect, path, bodies, args.requests, args.clients)
                    after = await health(connect)
                    calls = after["oracle_calls"] - before["oracle_calls"]
                    if mode == "per-request":
                        reference[model] = answers
                        checked = "reference"
                    else:
                        bad = [n for n, a in answers.items() if not same(a, reference[model][n])]
                        checked = "equal" if not bad else f"DIFFER at {bad[:5]}"
                    q = statistics.quantiles(latencies, n=100, method="inclusive")
                    rows.append({
                        "transport": transport, "model": model, "mode": mode, "device": device,
                        "requests": args.requests, "clients": args.clients, "rps": args.requests / wall,
                        "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "calls": calls,
                        "batch": (after["queries"] - before["queries"]) / max(calls, 1),
                        "busy": (after["oracle_seconds"] - before["oracle_seconds"]) / wall, "answers": checked,
                    })
    return rows


# -- one large /ask/batch ---------------------------------------------------------------------------


def batch_queries(count: int, structures: int, seed: int = 0) -> list[dict]:
    """``count`` alarm queries, do + evidence, of ``structures`` structures (1: all alike but their
    states), states drawn at random."""
    import random

    rng = random.Random(seed)
    two = ("TRUE", "FALSE")
    evidence = ["LVFAILURE", "ANAPHYLAXIS", "INSUFFANESTH", "PULMEMBOLUS", "INTUBATION", "KINKEDTUBE", "DISCONNECT"]
    kinds = [("HYPOVOLEMIA", ("LVFAILURE", "ANAPHYLAXIS", "INSUFFANESTH", "PULMEMBOLUS", "INTUBATION"), ("BP", "HR", "CO"))]
    while len(kinds) < structures:
        kinds.append((rng.choice(["HYPOVOLEMIA", "ERRLOWOUTPUT", "ERRCAUTER"]), tuple(rng.sample(evidence, 2)),
                      tuple(rng.sample(["BP", "HR", "CO", "PRESS", "SAO2", "EXPCO2"], 2))))
    out = []
    for i in range(count):
        did, seen, asked = kinds[i % len(kinds)]
        states = {"INTUBATION": ("NORMAL", "ESOPHAGEAL", "ONESIDED")}
        out.append({
            "do": {did: rng.choice(two)},
            "given": {v: rng.choice(states.get(v, two)) for v in seen},
            "outcomes": list(asked),
        })
    return out


async def batch_bench(args: argparse.Namespace) -> list[dict]:
    """One ``/models/alarm/ask/batch`` of ``args.batch`` queries, timed ``args.repeats`` times (the
    median): in process (the request's time inside the server, no sockets), with the fast lane
    and through the framework's validation (``fast_lane=False``), and on loopback (the whole
    request, ``crux serve`` in a subprocess); one structure and ``args.structures``."""
    from crux.oracle.server import create_app, settled
    from crux.worldmodel.model import load_model

    limits = {"max_queries": args.batch, "max_body_bytes": 64 << 20, "max_draws": args.batch * args.samples}
    rows = []
    models = {"squirrel_or_cat": load_model(MODELS[0]), "alarm": load_model(MODELS[1])}
    for structures in (1, args.structures):
        body = {"queries": batch_queries(args.batch, structures)}
        content = _dumps(body)
        distinct = len({json.dumps(q, sort_keys=True) for q in body["queries"]})
        answers = {}
        for lane in (True, False):
            app = create_app(models, device=args.device, samples=args.samples, fast_lane=lane, **limits)
            settled()  # as `crux serve` does once it is ready
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=600) as http:
                times = []
                for _ in range(args.repeats + 1):  # the first warms up: tables, paths
                    start = time.perf_counter()
                    response = await http.post("/models/alarm/ask/batch", content=content,
                                               headers={"content-type": "application/json"})
                    times.append(time.perf_counter() - start)
                    if response.status_code != 200:
                        raise RuntimeError(f"/ask/batch answered {response.status_code}: {response.text[:300]}")
            answers[lane] = response.content
            app.state.batcher.close()
            seconds = statistics.median(times[1:])
            rows.append({"transport": "in-process", "path": "fast lane" if lane else "framework", "structures": structures,
                         "distinct": distinct, "queries": args.batch, "seconds": seconds, "qps": args.batch / seconds})
        same_ = answers[True] == answers[False]
        extra = ("--max-queries", str(args.batch), "--max-body-bytes", str(64 << 20), "--max-draws", str(args.batch * args.samples))
        async with loopback(args, args.max_batch, args.window_ms, extra) as connect:
            async with connect(1) as client:
                times = []
                for _ in range(args.repeats + 1):
                    start = time.perf_counter()
                    status, got = await client.request("POST", "/models/alarm/ask/batch", content)
                    times.append(time.perf_counter() - start)
                    if status != 200:
                        raise RuntimeError(f"/ask/batch answered {status}: {got[:300]!r}")
        seconds = statistics.median(times[1:])
        rows.append({"transport": "loopback", "path": "whole request", "structures": structures, "distinct": distinct,
                     "queries": args.batch,
                     "seconds": seconds, "qps": args.batch / seconds,
                     "same": same_ and json.loads(got) == json.loads(answers[True])})
    return rows


async def per_request(args: argparse.Namespace, requests: int = 2000) -> list[dict]:
    """The server's own work per single ``/models/alarm/ask``, in process: the ASGI app called
    directly (no sockets, no client), one request at a time, one oracle call each
    (``max_batch=1``), with the fast lane and through the framework; the oracle's share from
    ``/health``'s ``oracle_seconds``."""
    from crux.oracle.server import create_app, settled
    from crux.worldmodel.model import load_model

    models = {"squirrel_or_cat": load_model(MODELS[0]), "alarm": load_model(MODELS[1])}
    _, bodies = queries()["alarm"]
    contents = [_dumps(b) for b in bodies]
    rows = []
    for lane in (True, False):
        app = create_app(models, device=args.device, max_batch=1, batch_window_ms=0, fast_lane=lane)
        settled()
        scope = {
            "type": "http", "method": "POST", "path": "/models/alarm/ask", "raw_path": b"/models/alarm/ask",
            "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
            "headers": [(b"host", b"localhost"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8765),
        }

        async def call(content: bytes) -> int:
            sent: list[dict] = []

            async def receive() -> dict:
                return {"type": "http.request", "body": content, "more_body": False}

            async def send(message: dict) -> None:
                sent.append(message)

            await app(dict(scope), receive, send)
            return sent[0]["status"]

        for content in contents * 4:  # warm up
            await call(content)
        oracle_before = app.state.batcher.stats.seconds
        start = time.perf_counter()
        for n in range(requests):
            if await call(contents[n % len(contents)]) != 200:
                raise RuntimeError("/models/alarm/ask did not answer 200")
        wall = time.perf_counter() - start
        oracle = app.state.batcher.stats.seconds - oracle_before
        app.state.batcher.close()
        rows.append({"path": "fast lane" if lane else "framework", "us_per_request": wall / requests * 1e6,
                     "oracle_us": oracle / requests * 1e6, "outside_us": (wall - oracle) / requests * 1e6})
    return rows


def print_batch(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"device: {args.device} ({os.cpu_count()} CPU cores, torch {torch.__version__})")
    print(f"one /models/alarm/ask/batch of {args.batch:,} queries, the median of {args.repeats} (after one to warm up)")
    print(f"{'structures':>10} {'distinct':>8}  {'transport':11} {'path':14} {'seconds':>8} {'queries/s':>10}")
    for r in rows:
        same_ = "" if "same" not in r else ("  answers byte-equal across paths" if r["same"] else "  ANSWERS DIFFER")
        print(f"{r['structures']:10d} {r['distinct']:8,d}  {r['transport']:11} {r['path']:14} {r['seconds']:8.3f} {r['qps']:10,.0f}{same_}")


def print_per_request(rows: list[dict]) -> None:
    print("single /models/alarm/ask in process, one at a time, one oracle call each (max_batch 1):")
    print(f"{'path':10} {'us/request':>10} {'oracle us':>10} {'outside us':>10}")
    for r in rows:
        print(f"{r['path']:10} {r['us_per_request']:10.0f} {r['oracle_us']:10.0f} {r['outside_us']:10.0f}")


# -- soak: normal clients beside half-open and slow ones ------------------------------------------------


async def soak(args: argparse.Namespace) -> dict:
    """Normal, half-open and slow clients at once for ``args.soak`` seconds (see the module's doc)."""
    extra = ("--timeout-read", str(args.timeout_read)) if args.timeout_read else ()
    async with loopback(args, args.max_batch, args.window_ms, extra) as connect:
        port, pid = connect.port, connect.pid  # type: ignore[attr-defined]
        device = (await health(connect))["device"]
        path, bodies = queries()["squirrel_or_cat"]
        await load(connect, path, bodies, len(bodies) * 2, len(bodies))  # warm up
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors: dict[str, int] = {}
        dropped: list[tuple[str, float, bool]] = []  # (kind, seconds held, told 408)
        most_files = 0
        stop = time.monotonic() + args.soak

        async def normal(client: RawClient) -> None:
            n = 0
            while time.monotonic() < stop:
                body = bodies[n % len(bodies)]
                n += 1
                start = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(client.post(path, json=body), 30)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as err:
                    errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1

        async def held(kind: str, send) -> None:
            """Open a connection, ``send`` on it, and wait until the server drops it; again until the end."""
            while time.monotonic() < stop:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                start = time.monotonic()
                sender = asyncio.ensure_future(send(writer))
                try:
                    got = await asyncio.wait_for(reader.read(), max(stop - time.monotonic(), 0.01))
                except TimeoutError:  # still held at the end: not dropped
                    got = None
                except OSError:
                    got = b""
                sender.cancel()
                writer.close()
                if got is not None:
                    dropped.append((kind, time.monotonic() - start, got.startswith(b"HTTP/1.1 408 ")))

        partial = b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Le"
        whole = (
            b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(_dumps(bodies[0]))
        ) + _dumps(bodies[0])

        async def half_open(writer: asyncio.StreamWriter) -> None:
            writer.write(partial)
            await writer.drain()
            await asyncio.sleep(3600)

        async def trickle(writer: asyncio.StreamWriter) -> None:
            for byte in whole:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(args.trickle_s)

        async def files() -> None:
            nonlocal most_files
            where = Path(f"/proc/{pid}/fd")
            while time.monotonic() < stop and where.exists():
                most_files = max(most_files, len(list(where.iterdir())))
                await asyncio.sleep(0.25)

        clients = [RawClient(port) for _ in range(args.clients)]
        started = time.perf_counter()
        tasks = [normal(c) for c in clients]
        tasks += [held("half-open", half_open) for _ in range(args.half_open)]
        tasks += [held("slow", trickle) for _ in range(args.slow)]
        await asyncio.gather(*tasks, files())
        wall = time.perf_counter() - started
        for c in clients:
            await c.__aexit__(None, None, None)
        still = (await health(connect))["status"]
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [float("nan")] * 99
    server_errors = sum(n for status, n in statuses.items() if status >= 500)

    def drops(kind: str) -> dict:
        mine = [(t, told) for k, t, told in dropped if k == kind]
        return {
            "dropped": len(mine), "told_408": sum(told for _, told in mine),
            "held_s_mean": statistics.fmean(t for t, _ in mine) if mine else None,
            "held_s_max": max((t for t, _ in mine), default=None),
        }

    return {
        "device": device, "seconds": args.soak, "clients": args.clients, "half_open": args.half_open, "slow": args.slow,
        "requests": len(latencies), "rps": len(latencies) / wall, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
        "max_ms": max(latencies, default=float("nan")) * 1e3, "statuses": statuses, "server_errors": server_errors,
        "connection_errors": errors, "half_open_drops": drops("half-open"), "slow_drops": drops("slow"),
        "most_files": most_files, "health_after": still,
        "target_met": q[98] < 1.0 and server_errors == 0 and not errors and still == "ok",
    }


def print_soak(row: dict, args: argparse.Namespace) -> None:
    timeout = f"--timeout-read {args.timeout_read:g}" if args.timeout_read else "the default --timeout-read"
    print(
        f"soak {row['seconds']:g} s on loopback ({row['device']}, {os.cpu_count()} CPU cores, {timeout}): "
        f"{row['clients']} normal clients, {row['half_open']} half-open, {row['slow']} slow (a byte every {args.trickle_s:g} s)"
    )
    print(
        f"normal clients: {row['requests']} requests, {row['rps']:.1f} req/s, p50 {row['p50_ms']:.1f} ms, "
        f"p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms; answers {row['statuses']}; "
        f"5xx: {row['server_errors']}; connection errors: {sum(row['connection_errors'].values())} {row['connection_errors'] or ''}"
    )
    for kind in ("half_open", "slow"):
        d = row[f"{kind}_drops"]
        held = f", held {d['held_s_mean']:.1f} s on average ({d['held_s_max']:.1f} s at most)" if d["dropped"] else ""
        print(f"{kind.replace('_', '-')} connections dropped by the server: {d['dropped']} ({d['told_408']} told 408){held}")
    print(f"server files open at most: {row['most_files']}; /health after: {row['health_after']}")
    print("target (p99 < 1 s, no 5xx, no connection error):", "met" if row["target_met"] else "MISSED")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per model, mode and transport")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--window-ms", type=float, default=2.0, help="batching window of the batched mode")
    parser.add_argument("--max-batch", type=int, default=256, help="most queries per oracle call, batched mode")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (the server's)")
    parser.add_argument("--samples", type=int, default=1000, help="draws behind each interval")
    parser.add_argument("--threads", type=int, default=0, help="the server's torch intra-op threads (0: torch's choice)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="the load generator (loopback)")
    parser.add_argument("--transport", choices=("loopback", "in-process", "both"), default="loopback")
    parser.add_argument("--timeout", type=float, default=900, help="stop (and kill the servers) after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    batching = parser.add_argument_group("one large batch")
    batching.add_argument("--batch", type=int, default=0, help="time one /ask/batch of this many alarm queries instead")
    batching.add_argument("--structures", type=int, default=20, help="structures of the mixed batch")
    batching.add_argument("--repeats", type=int, default=5, help="timed requests per row (the median)")
    soaking = parser.add_argument_group("soak")
    soaking.add_argument("--soak", type=float, default=0, help="soak for this many seconds instead (see above)")
    soaking.add_argument("--half-open", type=int, default=50, help="clients that send part of a request and stall")
    soaking.add_argument("--slow", type=int, default=20, help="clients that trickle a request byte by byte")
    soaking.add_argument("--trickle-s", type=float, default=0.5, help="seconds between a slow client's bytes")
    soaking.add_argument("--timeout-read", type=float, default=0, help="the server's --timeout-read (0: its default)")
    parser.add_argument("--ray", action="store_true", help="compare crux serve --ray with the embedded server (bench.serve_ray)")
    args, rest = parser.parse_known_args(argv)
    if args.ray:
        from bench.serve_ray import main as ray_main

        argv = sys.argv[1:] if argv is None else argv
        ray_main([a for a in argv if a != "--ray"])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.batch:
        try:
            rows = asyncio.run(asyncio.wait_for(batch_bench(args), args.timeout))
            single = asyncio.run(asyncio.wait_for(per_request(args), args.timeout))
        except TimeoutError:
            sys.exit(f"bench.serve: stopped after --timeout {args.timeout:g} s")
        if args.json:
            print(json.dumps({"batch": rows, "per_request": single}, indent=2))
        else:
            print_batch(rows, args)
            print_per_request(single)
        return
    if args.soak:
        if "--clients" not in (argv if argv is not None else sys.argv[1:]):
            args.clients = 50
        try:
            row = asyncio.run(asyncio.wait_for(soak(args), args.soak + args.timeout))
        except TimeoutError:
            sys.exit(f"bench.serve: stopped after --timeout {args.timeout:g} s")
        if args.json:
            print(json.dumps(row, indent=2))
        else:
            print_soak(row, args)
        sys.exit(0 if row["target_met"] else 1)
    try:
        rows = asyncio.run(asyncio.wait_for(bench(args), args.timeout))
    except TimeoutError:
        sys.exit(f"bench.serve: stopped after --timeout {args.timeout:g} s")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    device = rows[0]["device"]
    threads = args.threads or "torch's default"
    if device == "cuda" and torch.cuda.is_available():
        detail = torch.cuda.get_device_name()
    else:
        detail = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, server intra-op threads: {threads}"
    load_avg = ", load average %.1f before the run" % LOAD_AT_START if LOAD_AT_START is not None else ""
    print(f"device: {device} ({detail}){load_avg}")
    print(
        f"{args.requests} requests per row from {args.clients} concurrent clients ({args.client} client on loopback); "
        f"samples {args.samples}"
    )
    print(
        f"{'transport':11} {'model':16} {'mode':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'calls':>6} {'batch':>6} {'busy':>5}  answers"
    )
    for r in rows:
        print(
            f"{r['transport']:11} {r['model']:16} {r['mode']:12} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['calls']:6d} {r['batch']:6.1f} {r['busy']:5.0%}  {r['answers']}"
        )
    for transport, model in dict.fromkeys((r["transport"], r["model"]) for r in rows):
        one, many = (
            next(r for r in rows if (r["transport"], r["model"], r["mode"]) == (transport, model, m))
            for m in ("per-request", "batched")
        )
        print(f"{transport} {model}: dynamic batching gives {many['rps'] / one['rps']:.2f}x the throughput of one call per request")


if __name__ == "__main__":
    main()
