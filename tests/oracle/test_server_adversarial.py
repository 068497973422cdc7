"""`crux serve` against hostile clients: bodies Python's json reads but standard JSON does not
(NaN, Infinity, numbers too large, keys twice), malformed JSON, a foreign Host (DNS rebinding),
requests that ask for too many draws, the bounded oracle cache, and a real uvicorn server whose
half-open and trickling connections are answered 408 and closed while others are served.  The
tests of an app run against both back ends (the embedded batcher, and Ray Serve: see
tests/oracle/backends.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from crux.dialogue.cli.app import app as cli
from crux.oracle import server
from crux.oracle.batching import Batcher
from crux.oracle.query import Query
from crux.oracle.server import create_app
from tests.conftest import CANONICAL
from tests.oracle.backends import BACKENDS, serve
from crux.worldmodel.errors import CruxError
from crux.worldmodel.model import load_model

MODELS = {"squirrel_or_cat": load_model(CANONICAL)}
TOKEN = "s3cret-token-for-tests"
GOOD = b'{"do": {"action": "brake"}}'
JSON = {"content-type": "application/json"}


def client(app, *, host: str = "localhost", headers: dict | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", headers=headers or {})


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    """Which back end answers: ``embedded`` or ``ray``."""
    return request.param


@pytest.fixture(scope="module")
def app(request, backend):
    made = serve(request, backend, MODELS, batch_window_ms=1)
    yield made
    made.state.batcher.close()


@pytest.fixture
def make_app(request, backend):
    """``make_app(**settings)``: create_app over MODELS on the CPU with the test's back end."""
    made = []

    def make(**settings):
        made.append(serve(request, backend, MODELS, **settings))
        return made[-1]

    yield make
    for app in made:
        app.state.batcher.close()


def detail(response: httpx.Response) -> dict:
    """The one problem of a 4xx answer (which must be JSON)."""
    (problem,) = response.json()["detail"]
    return problem


# -- bodies that are not standard JSON: 400, and the connection goes on ---------------------------------


NOT_STANDARD = [
    (b'{"do": {"action": "brake"}, "samples": NaN}', "NaN is not a JSON number"),
    (b'{"do": {"action": "brake"}, "seed": Infinity}', "Infinity is not a JSON number"),
    (b'{"queries": [{"do": {"action": "brake"}}], "samples": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"do": {"action": "brake"}, "samples": 1e400}', "1e400 is too large"),
    (b'{"do": {"action": "brake"}, "seed": ' + b"7" * 5000 + b"}", "5,000 digits is too large"),
    (b'{"do": {"action": "brake"}, "seed": -' + b"9" * 400 + b"}", "400 digits is too large"),
    (b'{"do": {"action": "brake"}, "do": {"action": "swerve"}}', "'do' is given twice"),
    (b'{"do": {"action": "brake", "action": "swerve"}}', "'action' is given twice"),
    (b'{"queries": [{"given": {"road": "wet", "road": "dry"}}]}', "'road' is given twice"),
    (b'{"do": {"action": "brake"', "not valid JSON"),
    (b'{"do": {"action": "brake"},}', "not valid JSON"),
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
]


@pytest.mark.parametrize(("body", "words"), NOT_STANDARD, ids=[words for _, words in NOT_STANDARD])
async def test_a_body_that_is_not_standard_json_is_a_400(app, body, words):
    path = "/ask/batch" if b"queries" in body else "/ask"
    async with client(app) as http:
        refused = await http.post(path, content=body, headers=JSON)
        untyped = await http.post(path, content=body)  # no Content-Type: checked all the same
        after = await http.post("/ask", content=GOOD, headers=JSON)
    for response in (refused, untyped):
        assert response.status_code == 400, response.text
        assert detail(response)["loc"] == ["body"] and words in detail(response)["msg"]
    assert after.status_code == 200, after.text


async def test_finite_numbers_and_large_seeds_still_read(app):
    async with client(app) as http:
        seeded = await http.post(
            "/ask", content=b'{"do": {"action": "brake"}, "seed": 9223372036854775807, "samples": 2e2}', headers=JSON
        )
        too_big = await http.post("/ask", content=b'{"do": {"action": "brake"}, "seed": 9223372036854775808}', headers=JSON)
        fraction = await http.post("/ask", content=b'{"do": {"action": "brake"}, "samples": 2.5}', headers=JSON)
    assert seeded.status_code == 200, seeded.text
    assert too_big.status_code == 422 and detail(too_big)["loc"] == ["body", "seed"]
    assert fraction.status_code == 422 and detail(fraction)["loc"] == ["body", "samples"]


async def test_validation_errors_never_echo_the_input(app):
    async with client(app) as http:
        not_utf8 = await http.post("/ask", content=b"\xff\xfe", headers={"content-type": "text/plain"})
        long = await http.post("/ask/batch", json={"queries": [{"do": {"action": "brake"}}] * 1001})
        text = await http.post("/ask", json={"do": {"action": "brake"}, "samples": "lots"})
    assert not_utf8.status_code == 422 and detail(not_utf8)["loc"] == ["body"]  # was a 500
    assert long.status_code == 422 and "input" not in detail(long) and detail(long)["ctx"]["max_length"] == 1000
    assert text.status_code == 422 and "lots" not in text.text and detail(text)["loc"] == ["body", "samples"]


# -- the Host header without a token ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "localhost:8765", "127.0.0.1", "127.0.0.1:8765", "[::1]", "[::1]:8765", "LOCALHOST"])
async def test_loopback_hosts_are_answered(app, host):
    async with client(app, host=host) as http:
        assert (await http.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8765", "localhost.evil.example", "127.0.0.1.nip.io", "10.0.0.1", "[::2]:80",
             "localhost:http", "[::1]x"],
)
async def test_other_hosts_are_refused_without_a_token(app, host):
    async with client(app, headers={"Host": host}) as http:
        response = await http.post("/ask", content=GOOD, headers=JSON)
    assert response.status_code == 400, response.text
    assert detail(response)["loc"] == ["header", "host"] and "--token" in detail(response)["msg"]


async def test_with_a_token_any_host_is_answered(make_app):
    guarded = make_app(token=TOKEN)
    async with client(guarded, host="crux.example", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert (await http.get("/health")).status_code == 200
    guarded.state.batcher.close()


# -- draws per request, and the oracles kept -----------------------------------------------------------


async def test_too_many_draws_are_refused_naming_the_limit(make_app):
    small = make_app(max_draws=5000, max_oracles=2)
    queries = [{"do": {"action": a}} for a in ("brake", "swerve", "continue")]
    async with client(small) as http:
        many = await http.post("/ask/batch", json={"queries": queries, "samples": 2000, "seed": 1})
        defaults = await http.post("/ask/batch", json={"queries": queries * 2})  # 6 x the server's 1,000
        fits = await http.post("/ask/batch", json={"queries": queries[:2], "samples": 2000, "seed": 1})
        one = await http.post("/ask", json={"do": {"action": "brake"}, "samples": 5001})
    assert many.status_code == 422 and detail(many)["loc"] == ["body", "samples"]
    assert "6,000 interval draws" in many.text and "--max-draws" in many.text
    assert defaults.status_code == 422 and detail(defaults)["loc"] == ["body", "queries"]
    assert fits.status_code == 200, fits.text
    assert one.status_code == 422 and detail(one)["type"] == "too_many_draws"
    with pytest.raises(CruxError, match="max-draws"):
        create_app(MODELS, device="cpu", max_draws=999)
    small.state.batcher.close()


async def test_oracles_for_other_seeds_are_kept_few():
    app = create_app(MODELS, device="cpu", max_oracles=2)
    async with client(app) as http:
        for seed in (1, 2, 3, 2):
            response = await http.post("/ask", json={"do": {"action": "brake"}, "samples": 100, "seed": seed})
            assert response.status_code == 200
        default = await http.post("/ask", json={"do": {"action": "brake"}})
    assert default.status_code == 200
    assert list(app.state.oracles) == [("squirrel_or_cat", 100, 3), ("squirrel_or_cat", 100, 2)]  # the default apart
    app.state.batcher.close()


class _Timed:
    """An oracle that takes ``samples`` microseconds per query."""

    def __init__(self, key):
        self.key = key

    def answer(self, queries) -> list[str]:
        time.sleep(self.key[1] * len(queries) / 1e6)
        return [json.dumps({"key": list(self.key)}) for _ in queries]


async def test_cheap_requests_are_not_held_by_a_costly_one_gathered_with_them():
    batcher = Batcher(_Timed, window_s=0.05, max_batch=256, answer=lambda oracle, queries: oracle.answer(queries))
    costly = asyncio.ensure_future(batcher.submit(("m", 100_000, 7), [Query()] * 5))  # 0.5 s, arrives first
    await asyncio.sleep(0)
    cheap = asyncio.ensure_future(batcher.submit(("m", 1000, 0), [Query()]))
    done, _ = await asyncio.wait([costly, cheap], return_when=asyncio.FIRST_COMPLETED)
    assert done == {cheap} and [json.loads(a) for a in await cheap] == [{"key": ["m", 1000, 0]}]
    assert len(await costly) == 5
    batcher.close()


# -- a real server: timeouts, limits, keep-alive -----------------------------------------------------------


READ_TIMEOUT = 0.6


@pytest.fixture(scope="module")
def live_app(request, backend):
    made = serve(request, backend, MODELS, batch_window_ms=1)
    yield made
    made.state.batcher.close()


@pytest.fixture(scope="module")
def live(live_app):
    """``crux serve``'s uvicorn on a free port of 127.0.0.1 in a thread, with short timeouts."""
    import uvicorn

    app = live_app
    config = server.uvicorn_config(
        app, "127.0.0.1", 0, log_level="warning", timeout_read=READ_TIMEOUT, timeout_keep_alive=1.0,
        max_header_bytes=4096,
    )
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = listening.getsockname()[1]
    with connect(port) as warm:  # tables drawn, so that the timed requests below are quick
        warm.sendall(request())
        assert answer(warm)[0] == 200
    yield port
    uv.should_exit = True
    thread.join(10)
    app.state.batcher.close()
    listening.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def request(body: bytes = GOOD, path: str = "/ask", host: bytes = b"127.0.0.1") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (path.encode(), host, len(body))
    ) + body


def answer(sock: socket.socket) -> tuple[int, dict | None]:
    """Read one answer (with a Content-Length) off ``sock``: (status, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ")[1]), json.loads(rest) if rest else None


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock``, and what it sent before."""
    start, got = time.monotonic(), b""
    while chunk := sock.recv(65536):
        got += chunk
    return time.monotonic() - start, got


def test_half_open_and_trickling_requests_are_dropped_others_served(live):
    silent, partial, body_short, trickle = (connect(live) for _ in range(4))
    partial.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    body_short.sendall(request()[:-5])  # headers done, body 5 bytes short
    done = threading.Event()

    def drip():  # a whole request, one byte every 50 ms: 5 s of it
        for byte in request():
            if done.is_set():
                return
            try:
                trickle.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    normal = connect(live)  # meanwhile, a client that sends whole requests is answered at once
    start = time.monotonic()
    for _ in range(3):
        normal.sendall(request())
        status, body = answer(normal)
        assert status == 200 and body["query"]["do"] == {"action": "brake"}
    assert time.monotonic() - start < READ_TIMEOUT
    try:
        for sock, said in [(silent, False), (partial, True), (body_short, True), (trickle, True)]:
            waited, got = closed_after(sock)
            assert waited < READ_TIMEOUT + 1.0, (said, waited)
            if said:
                assert got.startswith(b"HTTP/1.1 408 ") and b'"type": "timeout"' in got, got
            else:
                assert got == b""  # said nothing, is told nothing
    finally:
        done.set()
        for sock in (silent, partial, body_short, trickle):
            sock.close()
    normal.sendall(request())  # the normal client's connection is still served
    assert answer(normal)[0] == 200
    normal.close()


def test_non_finite_numbers_do_not_break_the_connection(live):
    with connect(live) as sock:
        for body in (b'{"do": {"action": "brake"}, "samples": NaN}', b'{"seed": Infinity}', b'{"a": 1, "a": 2}', b"{"):
            sock.sendall(request(body))
            status, problem = answer(sock)
            assert status == 400 and problem["detail"][0]["loc"] == ["body"], problem
        sock.sendall(request())
        assert answer(sock)[0] == 200


def test_idle_connections_close_and_headers_are_bounded(live):
    with connect(live) as idle:
        idle.sendall(request())
        assert answer(idle)[0] == 200
        waited, got = closed_after(idle)  # keep-alive 1 s
        assert got == b"" and 0.5 < waited < 2.5
    with connect(live) as big:
        big.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 5000)  # and more to come
        waited, got = closed_after(big)
        assert got.startswith(b"HTTP/1.1 400 ") and waited < READ_TIMEOUT  # not held until the deadline
    with connect(live) as foreign:
        foreign.sendall(request(host=b"rebound.example:8765"))
        status, problem = answer(foreign)
        assert status == 400 and problem["detail"][0]["loc"] == ["header", "host"]


# -- the settings ---------------------------------------------------------------------------------------


def test_serve_passes_the_connection_settings(monkeypatch):
    started = []
    monkeypatch.setattr(server, "run", lambda app, **kw: started.append(kw))
    args = [
        "serve", str(CANONICAL), "--device", "cpu", "--timeout-read", "2.5", "--timeout-keep-alive", "3",
        "--limit-concurrency", "64", "--backlog", "16", "--max-header-bytes", "8192", "--max-draws", "20000",
        "--max-oracles", "1",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    (kw,) = started
    assert kw["timeout_read"] == 2.5 and kw["timeout_keep_alive"] == 3 and kw["limit_concurrency"] == 64
    assert kw["backlog"] == 16 and kw["max_header_bytes"] == 8192
    for bad in (["--timeout-read", "0"], ["--max-header-bytes", "100"], ["--max-draws", "10"]):
        refused = CliRunner().invoke(cli, [*args, *bad])
        assert refused.exit_code != 0 and "Traceback" not in refused.output + refused.stderr
    with pytest.raises(CruxError, match="timeout-read"):
        server.check_connections(0, 5, 512, 2048, 16384)
